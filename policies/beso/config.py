"""BESOConfig: everything that defines a BESO run and how its checkpoint is executed."""
from __future__ import annotations

from dataclasses import dataclass

from robot_stack.policies.base import PolicyConfig


@dataclass
class BESOConfig(PolicyConfig):
    """BESO's architecture, diffusion, guidance, training and deployment settings (PolicyConfig's fields too)."""


    # data
    image_size: int = 128
    obs_horizon: int = 1                 # the current frame: half the image encoding of 2 per sample
    proprio: bool = False                # images only. With the TCP pose as a token the network read its heading
                                         # from it and ignored the cameras where only they know the way (`robot-stack probe`)
    action_horizon: int = 10
    goal_final_prob: float = 1.0
    # network (CPU-sized; the paper's are 4-6 layers of width 240-360)
    width: int = 128
    layers: int = 4
    heads: int = 4
    dropout: float = 0.0                # dropout costs ~10% of a CPU step; the official code uses some
    cnn_channels: tuple = (16, 32, 64, 64)
    cnn_strides: tuple = (4, 2, 2, 1)    # 128 px -> 8x8 keypoint maps; see model.ImageEncoder
    keypoints: int = 32
    goal_encoder: str = "stacked"        # stacked: goal on the current front frame (6 channels); shared: the paper's
                                         # one CNN for goal and state. See model.ScoreTransformer
    shift_pad: int = 4                   # random-shift augmentation in training; 0 turns it off
    # diffusion
    sigma_data: float = 0.5
    sigma_min: float = 0.005
    sigma_max: float = 10.0              # the official 1.0 assumes actions within ~sigma_data; our scaled chunks reach
                                         # rms 1.2-2.8 and |a| 5.2 in the first second, so at sigma 1 the sampler's
                                         # initial noise passes for signal (docs/results.md, "BESO: sigma_max")
    sigma_loc: float | None = None       # log-logistic loc; None = ln(sigma_data) as in the official code
    sigma_scale: float = 1.0              # official 0.5; 1.0 puts 16% of training sigmas in [2, 10]
    sampling_steps: int = 3
    sampler: str = "beso"              # beso (DPM-Solver-1) | ddim | ddpm: the latter two for the speed comparison
    action_scale: float = 0.5            # meanstd-normalised actions * this -> data std ~ sigma_data
    # guidance
    goal_dropout: float = 0.1
    guidance: float = 1.0                # 0 = goal-free, 1 = plain conditional
    # training (AdamW, EMA of the weights) and deployment: a decision every 2 steps, blended 0.3 into the playing chunk
    lr: float = 1e-4
    execute_steps: int = 2
    chunk_blend: float = 0.3

    def __post_init__(self):
        super().__post_init__()
        self.cnn_channels, self.cnn_strides = tuple(self.cnn_channels), tuple(self.cnn_strides)   # JSON gives lists
