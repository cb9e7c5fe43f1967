"""GRIFConfig: everything that defines a GRIF run and how its checkpoint is executed."""
from __future__ import annotations

from dataclasses import dataclass

from robot_stack.policies.base import PolicyConfig
from robot_stack.policies.grif import language


@dataclass
class GRIFConfig(PolicyConfig):
    """GRIF's architecture, alignment, training and deployment settings (PolicyConfig's fields too)."""


    image_size: int = 128
    action_horizon: int = 4              # paper: 1 step; a short chunk executes more smoothly at 10 Hz
    task_dim: int = 128                  # shared embedding space of f(s0, g) and h(l)
    channels: tuple = (32, 64, 128)      # policy ResNet stages
    task_channels: tuple = (32, 64, 128)  # image task encoder stages
    blocks_per_stage: int = 1
    stem: str = "patch"                  # "patch" (4x4 stride 4) or "conv" (3x3 stride 2 + max-pool: 2x the step time)
    pooling: str = "avg"                 # "avg" (paper's ResNet), "flatten" (keeps the spatial layout) or "keypoints"
                                         # (spatial softmax on an 8x8 map, as BESO's encoder)
    keypoints: int = 32
    film_hidden: int = 256
    head_hidden: int = 256
    lang_hidden: int = 256
    text_dim: int = language.TEXT_DIM    # all-MiniLM-L6-v2 sentence embedding
    tau_init: float = 0.07
    tau_min: float = 0.01
    tau_max: float = 1.0
    align_weight: float = 1.0            # 0 = the "without alignment" ablation
    aug_pad: int = 4                     # random shift (pad, random crop) in training; 0 turns it off
    prefer: str = "goal_image"           # modality used when a task carries both: "goal_image" | "instruction"
    cameras: tuple = ("front",)          # the paper's one camera; ("front", "wrist") adds a FiLM-conditioned wrist
                                         # view, as BESO reads; it did not move success at 1,000 episodes
                                         # (docs/results.md, "GRIF: wrist camera"). The task encoder reads "front".
    gripper_input: bool = False          # the finger width joins the pooled features: the front frame hardly shows
                                         # whether the fingers have closed, and without it the policy stalls at the
                                         # grasp, averaging "still closing" and "lift" (a rollout trace showed it)

    # training (AdamW, EMA of the weights) and deployment: a decision every 2 steps, blended 0.3 into the playing chunk
    lr: float = 3e-4
    execute_steps: int = 2
    chunk_blend: float = 0.3

    def __post_init__(self):
        super().__post_init__()
        self.channels, self.task_channels = tuple(self.channels), tuple(self.task_channels)
        self.cameras = tuple(self.cameras)
        if self.cameras not in (("front",), ("front", "wrist")):
            raise ValueError(f"cameras must be ['front'] or ['front', 'wrist'], got {list(self.cameras)}")
        if self.prefer not in ("goal_image", "instruction"):
            raise ValueError(f"prefer must be 'goal_image' or 'instruction', got {self.prefer!r}")
        if self.image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {self.image_size}")
        if self.stem not in ("conv", "patch"):
            raise ValueError(f"stem must be 'conv' or 'patch', got {self.stem!r}")
        if self.pooling not in ("avg", "flatten", "keypoints"):
            raise ValueError(f"pooling must be 'avg', 'flatten' or 'keypoints', got {self.pooling!r}")
