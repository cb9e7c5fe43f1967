"""ZeroMimicConfig: ZeroMimic's ACT configuration (repo configs/policy/ACT.yaml) and how a checkpoint is deployed."""
from __future__ import annotations

from dataclasses import dataclass

from robot_stack.policies.base import PolicyConfig


@dataclass
class ZeroMimicConfig(PolicyConfig):
    """Defaults are the paper's; `robot-stack human train` on this CPU uses smaller widths (see its manifest)."""

    skill: str = "drawer_open"           # one policy per skill
    # data
    image_hw: tuple = (96, 128)          # (height, width): 3:4 like the clips (240x320) and the robot's camera
    camera: str = "front"                # the robot camera the policy sees through at deployment
    chunk_size: int = 10                 # future wrist poses predicted per decision
    action_mode: str = "relative"        # "relative" (reltraj_relori: to the current pose) | "absolute" (ablation)
    # network: one ResNet-18 shared by the current and the goal image, trained from scratch
    resnet_width: int = 64               # channels of ResNet-18's first stage (64 in ResNet-18)
    hidden: int = 512
    ffn: int = 3200
    heads: int = 8
    enc_layers: int = 4
    dec_layers: int = 7
    latent: int = 32
    kl_weight: float = 10.0
    dropout: float = 0.1
    shift_pad: int = 6                   # random shift of both images in training (0: off)
    # deployment: the robot's TCP relative to the human wrist frame (x along the fingers, z out of the palm);
    # the gripper's z is the palm normal and its closing axis (y) the finger direction
    hand_to_tcp: tuple = (0.075, 0.0, 0.035, 0.0, 0.0, -0.7071067811865476, 0.7071067811865476)
    # training and deployment
    lr: float = 6e-5
    weight_decay: float = 1e-4
    ema_decay: float = 0.995
    execute_steps: int = 2
    chunk_blend: float = 0.0             # ZeroMimic: no temporal aggregation

    def __post_init__(self):
        super().__post_init__()
        self.hand_to_tcp = tuple(float(v) for v in self.hand_to_tcp)
        self.image_hw = tuple(int(v) for v in self.image_hw)
        if len(self.image_hw) != 2 or min(self.image_hw) < 32:
            raise ValueError(f"image_hw is (height, width), each at least 32; got {self.image_hw}")
        if self.action_mode not in ("relative", "absolute"):
            raise ValueError(f"action_mode must be 'relative' or 'absolute', got {self.action_mode!r}")
        if len(self.hand_to_tcp) != 7:
            raise ValueError("hand_to_tcp is position (3) and x, y, z, w quaternion (4)")
        if self.hidden % self.heads:
            raise ValueError(f"hidden {self.hidden} must divide by heads {self.heads}")
