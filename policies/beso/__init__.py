"""BESO: score-based diffusion policy with classifier-free goal guidance (Reuss et al. 2023)."""
from robot_stack.policies.beso import policy  # noqa: F401  (registers "beso")
