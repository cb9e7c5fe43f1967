"""GRIF (Myers et al., 2023): goal-image and instruction tasks in one aligned embedding, one policy head."""
from robot_stack.policies.grif.policy import GRIFConfig, GRIFPolicy  # importing registers "grif"

__all__ = ["GRIFConfig", "GRIFPolicy"]
