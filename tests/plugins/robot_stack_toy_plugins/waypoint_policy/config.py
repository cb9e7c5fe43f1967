from __future__ import annotations

from dataclasses import dataclass

from robot_stack.policies import PolicyConfig


@dataclass
class WaypointMLPConfig(PolicyConfig):
    image_size: int = 32
    action_horizon: int = 3
    hidden: int = 32
    lr: float = 3e-3
    execute_steps: int = 1
