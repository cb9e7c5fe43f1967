"""RT-Trajectory (Gu et al. 2023): a policy conditioned on a trajectory sketch, for motions no training task shows."""
