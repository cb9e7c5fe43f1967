"""SwitchVLA's network: a vision-language-contact embedding, a flow-matching action expert, mode and contact heads.

Tokens: [CLS] + each camera's grid of CNN features + proprio + previous and current instruction (frozen MiniLM
embeddings through a trained projection) + their change (current - previous through its own projection) + the
previous contact state (an MLP), each with a learned type embedding, read by a transformer encoder. The change
token is ours: "no switch" is then an exact zero, not something to infer from two nearly equal tokens (two
instructions about different blocks are 0.86 cosine-similar in MiniLM). The expert is a transformer decoder whose queries are the noisy
action chunk (with step and noise-level embeddings) and whose memory is the encoder's output; it returns the
flow velocity. The heads read the encoder's CLS token.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from robot_stack.policies.switchvla.config import SwitchVLAConfig

N_MODES = 3
PROPRIO_DIM = 8


class ConvTokens(nn.Module):
    """A small CNN from scratch: stride-2 stem, stride-2 stages, pooled to a grid x grid map of `width` tokens."""

    def __init__(self, channels: tuple, width: int, grid: int):
        super().__init__()
        c_in = channels[0]
        layers = [nn.Conv2d(3, c_in, 5, stride=2, padding=2), nn.GroupNorm(8, c_in), nn.GELU()]
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(8, c), nn.GELU(),
                       nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(8, c), nn.GELU()]
            c_in = c
        self.net = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.out = nn.Linear(c_in, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, 3, H, W) -> (N, grid * grid, width)."""
        return self.out(self.pool(self.net(x)).flatten(2).transpose(1, 2))


def sinusoid(x: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) values in [0, 1] -> (B, dim) sinusoidal features."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = 1000.0 * x.float()[:, None] * freqs[None]
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


class SwitchVLANet(nn.Module):
    def __init__(self, c: SwitchVLAConfig, action_dim: int):
        super().__init__()
        w = c.width
        self.cnn = ConvTokens(c.channels, w, c.grid)
        self.camera_embed = nn.Parameter(torch.zeros(len(c.cameras), 1, w))
        self.grid_embed = nn.Parameter(torch.randn(1, c.grid * c.grid, w) * 0.02)
        self.text_proj = nn.Sequential(nn.Linear(c.text_dim, w), nn.GELU(), nn.Linear(w, w))
        self.change_proj = nn.Sequential(nn.Linear(c.text_dim, w), nn.GELU(), nn.Linear(w, w))
        self.contact_mlp = nn.Sequential(nn.Linear(1, w), nn.GELU(), nn.Linear(w, w))
        self.proprio = nn.Linear(PROPRIO_DIM, w)
        self.cls = nn.Parameter(torch.randn(1, 1, w) * 0.02)
        # proprio, previous, current, contact, cls, change
        self.type_embed = nn.Parameter(torch.randn(6, 1, w) * 0.02)
        layer = lambda: nn.TransformerEncoderLayer(w, c.heads, 4 * w, dropout=0.0, batch_first=True,  # noqa: E731
                                                   norm_first=True)
        self.encoder = nn.TransformerEncoder(layer(), c.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(w)
        self.mode_head = nn.Linear(w, N_MODES)
        self.contact_head = nn.Linear(w, 2)
        # the conditional execution expert
        self.action_in = nn.Linear(action_dim, w)
        self.step_embed = nn.Parameter(torch.randn(1, c.action_horizon, w) * 0.02)
        self.sigma_mlp = nn.Sequential(nn.Linear(w, w), nn.GELU(), nn.Linear(w, w))
        dec = nn.TransformerDecoderLayer(w, c.heads, 4 * w, dropout=0.0, batch_first=True, norm_first=True)
        self.expert = nn.TransformerDecoder(dec, c.expert_layers)
        self.action_out = nn.Sequential(nn.LayerNorm(w), nn.Linear(w, action_dim))
        self.width = w

    def embed(self, images: list[torch.Tensor], proprio: torch.Tensor, previous: torch.Tensor, current: torch.Tensor,
              contact_prev: torch.Tensor) -> torch.Tensor:
        """images: per camera float (B, 3, H, W); proprio (B, 8); previous/current (B, text_dim); contact_prev (B,)
        -> encoder tokens (B, N, width), CLS first."""
        b = len(proprio)
        cams = [self.cnn(x) + self.camera_embed[k] + self.grid_embed for k, x in enumerate(images)]
        te = self.type_embed
        tokens = [self.cls.expand(b, 1, -1) + te[4], *cams,
                  (self.proprio(proprio) + te[0])[:, None],
                  (self.text_proj(previous) + te[1])[:, None],
                  (self.text_proj(current) + te[2])[:, None],
                  (self.change_proj(current - previous) + te[5])[:, None],
                  (self.contact_mlp(contact_prev.reshape(b, 1).float()) + te[3])[:, None]]
        return self.norm(self.encoder(torch.cat(tokens, dim=1)))

    def heads(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mode logits (B, 3), contact logits (B, 2)) from the CLS token."""
        return self.mode_head(memory[:, 0]), self.contact_head(memory[:, 0])

    def velocity(self, memory: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The flow velocity (B, T, D) of noisy actions x (B, T, D) at noise level sigma (B,)."""
        q = self.action_in(x) + self.step_embed[:, : x.shape[1]] + self.sigma_mlp(sinusoid(sigma, self.width))[:, None]
        return self.action_out(self.expert(q, memory))
