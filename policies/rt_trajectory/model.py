"""The RT-1-style network: a conv trunk per frame over RGB + sketch (early fusion), TokenLearner, and a
transformer whose learned action queries read the frames' tokens and emit one token (bin) per action dimension."""
from __future__ import annotations

import torch
from torch import nn


class FrameTrunk(nn.Module):
    """(N, 6, H, W) RGB + sketch -> (N, C, H/s, W/s) features. The sketch enters at the first convolution."""

    def __init__(self, channels: tuple[int, ...], in_channels: int = 6):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], 4, stride=4), nn.GroupNorm(8, channels[0]),
                                   nn.GELU()]
        for a, b in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.GroupNorm(8, b), nn.GELU(),
                       nn.Conv2d(b, b, 3, padding=1), nn.GroupNorm(8, b), nn.GELU()]
        self.net = nn.Sequential(*layers)

    @property
    def first_conv(self) -> nn.Conv2d:
        return self.net[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TokenLearner(nn.Module):
    """RT-1's TokenLearner: `tokens` spatial attention maps pool a feature map into that many tokens."""

    def __init__(self, channels: int, tokens: int):
        super().__init__()
        self.attend = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, channels), nn.GELU(),
                                    nn.Linear(channels, tokens))

    def forward(self, features: torch.Tensor) -> torch.Tensor:      # (N, C, h, w) -> (N, tokens, C)
        x = features.flatten(2).transpose(1, 2)                      # (N, hw, C)
        weights = self.attend(x).softmax(dim=1)                      # (N, hw, tokens), a distribution over places
        return weights.transpose(1, 2) @ x


class RTTrajectoryNet(nn.Module):
    def __init__(self, frames: int, horizon: int, action_dim: int, bins: int, channels: tuple[int, ...],
                 tokens_per_frame: int, width: int, layers: int, heads: int, dropout: float):
        super().__init__()
        self.frames, self.horizon, self.action_dim = frames, horizon, action_dim
        self.trunk = FrameTrunk(channels)
        self.token_learner = TokenLearner(channels[-1], tokens_per_frame)
        self.project = nn.Linear(channels[-1], width)
        self.obs_pos = nn.Parameter(torch.zeros(1, frames * tokens_per_frame, width))
        self.queries = nn.Parameter(torch.zeros(1, horizon * action_dim, width))
        nn.init.normal_(self.obs_pos, std=0.02)
        nn.init.normal_(self.queries, std=0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout, batch_first=True, norm_first=True,
                                           activation="gelu")
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, bins)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 6, H, W) float frames fused with the sketch -> logits (B, horizon, action_dim, bins)."""
        b, t = frames.shape[:2]
        tokens = self.token_learner(self.trunk(frames.flatten(0, 1)))            # (B*T, k, C)
        tokens = self.project(tokens).reshape(b, t * tokens.shape[1], -1) + self.obs_pos
        x = self.transformer(torch.cat((tokens, self.queries.expand(b, -1, -1)), dim=1))
        out = self.head(self.norm(x[:, tokens.shape[1]:]))
        return out.reshape(b, self.horizon, self.action_dim, -1)
