"""BESO's score network: a small from-scratch CNN shared by observation and goal images, and a
transformer over [sigma, goal, observations, noisy actions] whose action positions output F.

Deviation from the official code (a causal GPT over interleaved (state, action) pairs that
predicts one action per step): we predict a chunk of `action_horizon` actions, so attention is
left unmasked (every token sees every token) — simpler, and nothing here is autoregressive.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from robot_stack.policies.augment import random_shift
from robot_stack.policies.keypoints import SpatialSoftmax


def to_float(images: torch.Tensor, shift: int = 0) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1], channels-last (no copy for the permute); with
    shift > 0 each image first moves by a random offset in [-shift, shift] (DrQ, augment.random_shift)."""
    return random_shift(images, shift).float().mul_(1 / 255).permute(0, 3, 1, 2)


class ImageEncoder(nn.Module):
    """uint8 (N, H, W, C) -> (N, width): strided convs with GroupNorm/ReLU, spatial-softmax keypoints, a linear layer.

    A layer with stride >= 4 is a patchify stem (kernel = stride, no overlap): on a 2-core CPU the
    full-resolution activations of a stride-2 first layer cost more than the rest of the model.
    """

    def __init__(self, width: int, channels: tuple[int, ...], strides: tuple[int, ...], keypoints: int, shift_pad: int,
                 in_channels: int = 3):
        super().__init__()
        layers, c_in = [], in_channels
        for c, s in zip(channels, strides, strict=True):
            k, pad = (s, 0) if s >= 4 else (3, 1)
            layers += [nn.Conv2d(c_in, c, k, stride=s, padding=pad), nn.GroupNorm(max(1, c // 8), c),
                       nn.ReLU(inplace=True)]
            c_in = c
        self.convs = nn.Sequential(*layers)
        self.pool = SpatialSoftmax(c_in, keypoints)
        self.out = nn.Linear(2 * keypoints, width)
        self.shift_pad = shift_pad

    def forward(self, images: torch.Tensor, augment: bool) -> torch.Tensor:
        x = to_float(images, self.shift_pad if augment else 0)
        return self.out(self.pool(self.convs(x)))


def sinusoidal(x: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) -> (B, dim) sin/cos features at log-spaced frequencies."""
    freqs = torch.exp(torch.arange(dim // 2, device=x.device) * (-math.log(1000.0) / (dim // 2 - 1)))
    arg = x[:, None].float() * freqs * 10   # c_noise = ln(sigma)/4 spans ~[-1.3, 0]: fastest feature ~2 cycles
    return torch.cat((arg.sin(), arg.cos()), -1)


class ScoreTransformer(nn.Module):
    """F(c_in x, c_noise | observations, goal): tokens [sigma, goal, obs (cameras [+ proprio] per step), actions].
    proprio_dim 0 leaves the proprio token out.

    goal_encoder "shared": the goal image goes through the observation CNN (the paper). "stacked": a
    second CNN reads the goal stacked channel-wise on the newest frame of camera `goal_camera` (6
    channels), so the goal token encodes what is left to change, as GRIF's task encoder does with
    (s0, g). With "shared", telling which of three blocks the goal moved means comparing two pooled
    vectors: regressing the target from (front, goal), the shared CNN was twice as far off after
    1000 steps (43.1 against 22.5 mm; docs/results.md, "BESO: sigma_max and the stacked goal").
    """

    def __init__(self, n_cameras: int, obs_horizon: int, action_horizon: int, action_dim: int, proprio_dim: int,
                 width: int, layers: int, heads: int, dropout: float, channels: tuple[int, ...],
                 strides: tuple[int, ...], keypoints: int, shift_pad: int, goal_encoder: str = "shared",
                 goal_camera: int = 0):
        super().__init__()
        if goal_encoder not in ("shared", "stacked"):
            raise ValueError(f"goal_encoder must be 'shared' or 'stacked', got {goal_encoder!r}")
        self.n_cameras, self.obs_horizon, self.action_horizon = n_cameras, obs_horizon, action_horizon
        self.encoder = ImageEncoder(width, channels, strides, keypoints, shift_pad)
        self.stacked_goal = goal_encoder == "stacked"
        self.goal_camera = goal_camera
        self.goal_encoder = (ImageEncoder(width, channels, strides, keypoints, shift_pad, in_channels=6)
                             if self.stacked_goal else None)
        self.proprio_emb = nn.Linear(proprio_dim, width) if proprio_dim else None
        self.sigma_emb = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.action_emb = nn.Linear(action_dim, width)
        self.null_goal = nn.Parameter(torch.zeros(1, 1, width))                  # the dropped / absent goal
        self.n_obs_tokens = obs_horizon * (n_cameras + bool(proprio_dim))        # obs_horizon frames of cameras [+ proprio]
        self.pos_emb = nn.Parameter(torch.randn(1, 2 + self.n_obs_tokens + action_horizon, width) * 0.02)
        block = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, action_dim))
        self.width = width

    def encode_goal(self, goal_image: torch.Tensor, current: torch.Tensor | None = None,
                    augment: bool = False) -> torch.Tensor:
        """uint8 goal (B, H, W, 3) [and, for the stacked encoder, the goal camera's newest frame] -> (B, 1, width)."""
        if not self.stacked_goal:
            return self.encoder(goal_image, augment)[:, None]
        if current is None:
            raise ValueError("the stacked goal encoder needs the current frame of the goal camera")
        return self.goal_encoder(torch.cat((goal_image, current), -1), augment)[:, None]

    def encode_obs(self, images: list[torch.Tensor], proprio: torch.Tensor, augment: bool = False,
                   goal_image: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-camera uint8 (B, To, H, W, 3) and proprio (B, To, P) -> obs tokens (B, To*(cams[+1]), width)
        and, when given a goal image, its tokens from the same CNN call (one batched pass)."""
        b, t = images[0].shape[:2]
        shared_goal = goal_image is not None and not self.stacked_goal
        flat = [im.reshape(b * t, *im.shape[2:]) for im in images] + ([goal_image] if shared_goal else [])
        feats = self.encoder(torch.cat(flat), augment)
        cams = feats[: len(images) * b * t].reshape(len(images), b, t, -1).permute(1, 2, 0, 3)   # (B, To, cams, w)
        if self.proprio_emb is not None:
            cams = torch.cat((cams, self.proprio_emb(proprio)[:, :, None]), 2)
        tokens = cams.reshape(b, -1, self.width)
        if goal_image is None:
            goal = None
        elif shared_goal:
            goal = feats[len(images) * b * t:][:, None]
        else:
            goal = self.encode_goal(goal_image, images[self.goal_camera][:, -1], augment)
        return tokens, goal

    def forward(self, x_in: torch.Tensor, c_noise: torch.Tensor, obs_tokens: torch.Tensor,
                goal_tokens: torch.Tensor | None) -> torch.Tensor:
        """x_in (B, Ta, A) = c_in * noisy actions; c_noise (B,); goal_tokens None = the null goal -> F (B, Ta, A)."""
        b = x_in.shape[0]
        if goal_tokens is None:
            goal_tokens = self.null_goal.expand(b, -1, -1)
        sigma = self.sigma_emb(sinusoidal(c_noise.reshape(-1).expand(b), self.width))[:, None]
        seq = torch.cat((sigma, goal_tokens, obs_tokens, self.action_emb(x_in)), 1) + self.pos_emb
        return self.head(self.blocks(seq)[:, -self.action_horizon:])
