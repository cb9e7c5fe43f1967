"""Networks of the RLPD agent: LayerNorm MLPs, a vectorised critic ensemble, a tanh-Gaussian actor,
the gripper critic, and the observation encoder with random-shift augmentation."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from robot_stack.learner.spaces import ObsSpec
from robot_stack.policies.augment import random_shift


def mlp(inp: int, hidden: tuple[int, ...], out: int, layer_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inp, width), *([nn.LayerNorm(width)] if layer_norm else []), nn.ReLU()]
        inp = width
    layers.append(nn.Linear(inp, out))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """N independent linear layers applied at once: input (N, B, in) -> (N, B, out)."""

    def __init__(self, n: int, inp: int, out: int):
        super().__init__()
        bound = 1.0 / math.sqrt(inp)
        self.weight = nn.Parameter(torch.empty(n, inp, out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class CriticEnsemble(nn.Module):
    """N Q-functions Q_i(s, a), each an MLP with LayerNorm (RLPD); forward returns (N, B)."""

    def __init__(self, n: int, inp: int, hidden: tuple[int, ...], layer_norm: bool):
        super().__init__()
        self.n = n
        self.layers = nn.ModuleList()
        self.norms = nn.ModuleList()
        for width in hidden:
            self.layers.append(EnsembleLinear(n, inp, width))
            self.norms.append(nn.LayerNorm(width) if layer_norm else nn.Identity())
            inp = width
        self.out = EnsembleLinear(n, inp, 1)

    def forward(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat((features, action), -1).unsqueeze(0).expand(self.n, -1, -1)
        for layer, norm in zip(self.layers, self.norms):
            x = F.relu(norm(layer(x)))
        return self.out(x).squeeze(-1)


class TanhGaussianActor(nn.Module):
    """A Gaussian squashed by tanh into [-1, 1]; log-probabilities corrected for the squashing."""

    def __init__(self, inp: int, act_dim: int, hidden: tuple[int, ...], layer_norm: bool,
                 log_std_range: tuple[float, float] = (-20.0, 2.0)):
        super().__init__()
        self.trunk = mlp(inp, hidden[:-1], hidden[-1], layer_norm) if len(hidden) > 1 else nn.Linear(inp, hidden[0])
        self.norm = nn.LayerNorm(hidden[-1]) if layer_norm else nn.Identity()
        self.mean = nn.Linear(hidden[-1], act_dim)
        self.log_std = nn.Linear(hidden[-1], act_dim)
        self.log_std_range = log_std_range

    def forward(self, features: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.norm(self.trunk(features)))
        mean = self.mean(h)
        if deterministic:
            return torch.tanh(mean), torch.zeros(mean.shape[0], device=mean.device)
        log_std = self.log_std(h).clamp(*self.log_std_range)
        std = log_std.exp()
        u = mean + std * torch.randn_like(mean)
        log_prob = (-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)   # log|d tanh(u)/du|
        return torch.tanh(u), log_prob


class ObservationEncoder(nn.Module):
    """State alone: the raw vector (state-based SAC). With cameras: a small CNN per camera trained from
    scratch (Dense + LayerNorm + tanh bottleneck) and the proprio state through Dense + LayerNorm + tanh."""

    def __init__(self, spec: ObsSpec, image_latent: int = 128, proprio_latent: int = 64, channels: int = 32):
        super().__init__()
        self.spec = spec
        # State standardisation (identity until set from the demos): a 2 cm object offset is as visible
        # to the first layer as a 20 cm one; these buffers travel with the weights to every actor.
        self.register_buffer("state_mean", torch.zeros(spec.state_dim))
        self.register_buffer("state_std", torch.ones(spec.state_dim))
        if not spec.cameras:
            self.dim = spec.state_dim
            return
        self.convs = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        for cam in spec.cameras:
            # A 4x4 patch stem first: a CPU learner cannot afford full-resolution convolutions at batch 256.
            conv = nn.Sequential(
                nn.Conv2d(3, channels, 4, stride=4), nn.ReLU(),
                nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(channels, channels, 3, stride=1, padding=1), nn.ReLU(),
                nn.Conv2d(channels, channels, 3, stride=1, padding=1), nn.ReLU(), nn.Flatten())
            with torch.no_grad():
                flat = conv(torch.zeros(1, 3, spec.image_size, spec.image_size)).shape[1]
            self.convs[cam] = conv
            self.heads[cam] = nn.Sequential(nn.Linear(flat, image_latent), nn.LayerNorm(image_latent), nn.Tanh())
        self.proprio = nn.Sequential(nn.Linear(spec.state_dim, proprio_latent), nn.LayerNorm(proprio_latent), nn.Tanh())
        self.dim = image_latent * len(spec.cameras) + proprio_latent

    def forward(self, obs: dict[str, torch.Tensor], augment_pad: int = 0) -> torch.Tensor:
        state = (obs["state"] - self.state_mean) / self.state_std
        if not self.spec.cameras:
            return state
        parts = [self.proprio(state)]
        for cam in self.spec.cameras:
            x = random_shift(obs[cam], augment_pad).permute(0, 3, 1, 2).float() / 255.0
            parts.append(self.heads[cam](self.convs[cam](x - 0.5)))
        return torch.cat(parts, -1)
