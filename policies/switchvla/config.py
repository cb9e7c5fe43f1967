"""SwitchVLAConfig: everything that defines a SwitchVLA run and how its checkpoint is executed."""
from __future__ import annotations

from dataclasses import dataclass

from robot_stack.policies.base import PolicyConfig
from robot_stack.policies.grif import language


@dataclass
class SwitchVLAConfig(PolicyConfig):
    """CPU-scale sizes; the paper's model is ~0.27B parameters (DaViT + BART + a flow-matching expert)."""

    # data
    image_size: int = 128
    cameras: tuple = ("front", "wrist")
    action_horizon: int = 8              # chunk steps generated at once
    switch_prob: float = 0.5             # share of training samples that are switch samples (rollback or advance)
    # vision-language-contact embedding
    channels: tuple = (32, 64, 128)      # CNN stages (from scratch), each stride 2 after a stride-2 stem
    grid: int = 3                        # each camera's feature map pooled to grid x grid tokens
    width: int = 128                     # token width
    layers: int = 3                      # transformer encoder layers
    heads: int = 4
    text_dim: int = language.TEXT_DIM    # frozen all-MiniLM-L6-v2; a trained projection maps it to `width`
    # conditional execution expert (flow matching)
    expert_layers: int = 2               # transformer decoder layers over the action tokens
    flow_steps: int = 10                 # Euler steps from noise to actions at run time
    # losses
    mode_weight: float = 0.1             # cross-entropy of the behaviour-mode head
    contact_weight: float = 0.1          # cross-entropy of the contact head
    aug_pad: int = 4                     # random shift of the images in training; 0: off
    # deployment
    contact_source: str = "estimate"     # "estimate": the contact head; "gripper_rule": robot_stack.contact_phases
    lr: float = 3e-4
    weight_decay: float = 1e-4
    execute_steps: int = 2
    chunk_blend: float = 0.0             # a switch must not be averaged with the chunk of the old instruction

    def __post_init__(self):
        super().__post_init__()
        self.cameras, self.channels = tuple(self.cameras), tuple(self.channels)
        if not self.cameras:
            raise ValueError("cameras must name at least one camera")
        if self.contact_source not in ("estimate", "gripper_rule"):
            raise ValueError(f"contact_source must be 'estimate' or 'gripper_rule', got {self.contact_source!r}")
        if self.flow_steps < 1 or self.action_horizon < 1:
            raise ValueError("flow_steps and action_horizon must be at least 1")
        if not 0.0 <= self.switch_prob <= 1.0:
            raise ValueError(f"switch_prob must be in [0, 1], got {self.switch_prob}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must divide by heads {self.heads}")
