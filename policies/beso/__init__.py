"""BESO: score-based diffusion policy with classifier-free goal guidance (Reuss et al. 2023)."""
