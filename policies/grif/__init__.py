"""GRIF (Myers et al., 2023): goal-image and instruction tasks in one aligned embedding, one policy head."""
