"""RTTrajectoryConfig: everything that defines an RT-Trajectory run and how its checkpoint is executed."""
from __future__ import annotations

from dataclasses import dataclass

from robot_stack.policies.base import PolicyConfig


@dataclass
class RTTrajectoryConfig(PolicyConfig):
    """Sizes are CPU-scale; the paper's trunk is RT-1's (EfficientNet-B3 + TokenLearner, 6 frames, 8 layers)."""

    # data
    image_size: int = 128
    camera: str = "front"                # the camera the sketch is drawn in and the policy sees (the paper: one)
    obs_horizon: int = 3                 # frames of history, each fused with the sketch (paper: 6)
    action_horizon: int = 4              # chunk steps predicted at once (RT-1: one step)
    # the sketch (robot_stack.sketches.SketchStyle); h_min/h_max are fixed for the whole dataset
    sketch_mode: str = "2.5d"            # "2d" | "2.5d"
    sketch_line_width: float = 1 / 64
    sketch_marker_radius: float = 1 / 32
    sketch_h_min: float = 0.0
    sketch_h_max: float = 0.4
    # action tokens: every dimension of every step in `bins` uniform bins of its min-max-normalised range
    bins: int = 256
    # network
    channels: tuple = (32, 64, 128)      # conv trunk stages (stem stride 4, then stride 2 each)
    tokens_per_frame: int = 8            # TokenLearner outputs per frame (RT-1: 8)
    width: int = 128
    layers: int = 4
    heads: int = 4
    dropout: float = 0.0                 # its random masks cost ~8% of a CPU step
    shift_pad: int = 4                   # random-shift augmentation (image and sketch moved together); 0: off
    # training and deployment
    lr: float = 3e-4
    weight_decay: float = 1e-4
    execute_steps: int = 2
    chunk_blend: float = 0.3

    def __post_init__(self):
        super().__post_init__()
        self.channels = tuple(self.channels)
        if self.sketch_mode not in ("2d", "2.5d"):
            raise ValueError(f"sketch_mode must be '2d' or '2.5d', got {self.sketch_mode!r}")
        if self.bins < 2:
            raise ValueError(f"bins must be at least 2, got {self.bins}")
        if self.image_size % (4 * 2 ** (len(self.channels) - 1)):
            raise ValueError(f"image_size {self.image_size} must divide by the trunk's stride "
                             f"{4 * 2 ** (len(self.channels) - 1)}")
