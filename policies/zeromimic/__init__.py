"""ZeroMimic (Shi et al. 2025): skill policies distilled from human video, run on the robot."""
