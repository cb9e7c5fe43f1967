"""GRIF (Myers et al., 2023): goal-image and instruction tasks in one aligned embedding, one policy head."""
from robot_stack.policies.grif.policy import GRIFPolicy  # noqa: F401  (registers "grif")
