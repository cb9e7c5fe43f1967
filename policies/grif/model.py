"""GRIF's networks: the image task encoder f(s0, g), the language projection of h(l), and the
FiLM-conditioned ResNet policy shared by both task modalities.

CPU-sized stand-ins for the paper's ResNets: a stem dividing the resolution by 4, then one
residual block per stage, each stage halving it again. GroupNorm instead of BatchNorm so that
training and act() (batch 1, eval) see the same normalisation, and the labelled rows passing
the policy twice (image z and language z) do not skew batch statistics.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robot_stack.policies.keypoints import SpatialSoftmax


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = _norm(cout)
        self.skip = (nn.Identity() if stride == 1 and cin == cout else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(cout)))

    def forward(self, x):
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(y)) + self.skip(x))


def make_stem(in_channels: int, out_channels: int, kind: str) -> nn.Sequential:
    """Both stems divide the resolution by 4. "conv": 3x3 stride-2 conv + 2x2 max-pool (ResNet-like);
    "patch": a 4x4 stride-4 conv, about half the cost on CPU."""
    if kind == "patch":
        return nn.Sequential(nn.Conv2d(in_channels, out_channels, 4, 4, bias=False), _norm(out_channels), nn.ReLU())
    if kind == "conv":
        return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 2, 1, bias=False), _norm(out_channels),
                             nn.ReLU(), nn.MaxPool2d(2, 2))
    raise ValueError(f"stem must be 'conv' or 'patch', got {kind!r}")


class ResNetTrunk(nn.Module):
    """Stem (resolution / 4) then stages of `blocks` residual blocks, the first strided (the last stage's
    first block by `last_stride`: 1 keeps an 8x8 map at 128 px for keypoints)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], blocks: int = 1, stem: str = "conv",
                 last_stride: int = 2):
        super().__init__()
        self.stem = make_stem(in_channels, channels[0], stem)
        stages, cin = [], channels[0]
        for j, cout in enumerate(channels):
            stride = last_stride if j == len(channels) - 1 else 2
            stages.append(nn.Sequential(*[BasicBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                                          for i in range(blocks)]))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.channels = tuple(channels)


def pooled_dim(channels: tuple[int, ...], image_size: int, how: str, keypoints: int = 0) -> int:
    if how == "avg":
        return channels[-1]
    if how == "keypoints":
        return 2 * keypoints
    side = image_size // 4                  # both stems divide by 4 (sizes are multiples of 4)
    for _ in channels:                      # one strided block per stage
        side = (side + 1) // 2
    return channels[-1] * side * side


class ImageTaskEncoder(nn.Module):
    """f(s0, g): start and goal stacked channel-wise (6 channels), so it encodes the change."""

    def __init__(self, channels, task_dim: int, blocks: int = 1, stem: str = "conv"):
        super().__init__()
        self.trunk = ResNetTrunk(6, channels, blocks, stem)
        self.proj = nn.Linear(channels[-1], task_dim)

    def forward(self, s0: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        x = self.trunk.stem(torch.cat((s0, goal), dim=1))
        for stage in self.trunk.stages:
            x = stage(x)
        return F.normalize(self.proj(x.mean((2, 3))), dim=-1)


class LanguageProjection(nn.Module):
    """The trained part of h(l): frozen sentence embedding -> MLP -> the shared task space."""

    def __init__(self, text_dim: int, hidden: int, task_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(text_dim, hidden), nn.ReLU(), nn.Linear(hidden, task_dim))

    def forward(self, text_emb: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(text_emb), dim=-1)


class FiLMView(nn.Module):
    """One camera's ResNet, FiLM-modulated by z after each stage, pooled to a feature vector."""

    def __init__(self, channels, task_dim: int, film_hidden: int, image_size: int, pooling: str, blocks: int,
                 stem: str, keypoints: int):
        super().__init__()
        self.pooling = pooling
        self.out_dim = pooled_dim(tuple(channels), image_size, pooling, keypoints)
        self.trunk = ResNetTrunk(3, channels, blocks, stem, last_stride=1 if pooling == "keypoints" else 2)
        self.keypoints = SpatialSoftmax(channels[-1], keypoints) if pooling == "keypoints" else None
        self.film = nn.Sequential(nn.Linear(task_dim, film_hidden), nn.ReLU(),
                                  nn.Linear(film_hidden, 2 * sum(channels)))
        nn.init.zeros_(self.film[-1].weight)     # identity modulation at init (z gets gradients from step 2)
        nn.init.zeros_(self.film[-1].bias)

    def stem(self, image: torch.Tensor) -> torch.Tensor:
        """The part before the first FiLM: independent of z, so training computes it once per frame."""
        return self.trunk.stem(image)

    def from_stem(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        film = self.film(z).split([c for c in self.trunk.channels for _ in (0, 1)], dim=-1)
        for i, stage in enumerate(self.trunk.stages):
            x = stage(x)
            gamma, beta = film[2 * i], film[2 * i + 1]
            x = x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
        return self.pool(x)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """avg: the paper's global average; flatten: the map as it is; keypoints: where each learned feature
        peaks (spatial softmax), the inductive bias for localising that generalises beyond the training scenes."""
        if self.pooling == "avg":
            return x.mean((2, 3))
        return self.keypoints(x) if self.keypoints is not None else x.flatten(1)


class FiLMPolicy(nn.Module):
    """One FiLMView per camera; their features (and the extra low-dimensional inputs) feed an MLP head.

    The head's first layer is split per camera: `head[0]` reads the first camera and the extra inputs,
    `view_inputs[j]` each further camera. That is the same layer as one Linear over the concatenation;
    split, with the further cameras' weights zero at init, a one-camera checkpoint fine-tunes into a
    two-camera policy starting from the same actions (`init_from`)."""

    def __init__(self, channels, task_dim: int, film_hidden: int, head_hidden: int, action_horizon: int,
                 action_dim: int, image_size: int, pooling: str = "avg", blocks: int = 1, stem: str = "conv",
                 extra_dim: int = 0, keypoints: int = 32, views: int = 1):
        super().__init__()
        self.views = nn.ModuleList(FiLMView(channels, task_dim, film_hidden, image_size, pooling, blocks, stem,
                                            keypoints) for _ in range(views))
        self.extra_dim = extra_dim            # low-dimensional inputs joined to the pooled image features (gripper width)
        feat = self.views[0].out_dim
        self.head = nn.Sequential(nn.Linear(feat + extra_dim, head_hidden), nn.ReLU(),
                                  nn.Linear(head_hidden, head_hidden), nn.ReLU(),
                                  nn.Linear(head_hidden, action_horizon * action_dim))
        self.view_inputs = nn.ModuleList(nn.Linear(feat, head_hidden, bias=False) for _ in range(views - 1))
        for lin in self.view_inputs:
            nn.init.zeros_(lin.weight)
        self.out_shape = (action_horizon, action_dim)

    def forward(self, images: list[torch.Tensor], z: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """images: one (B, 3, H, W) float per camera, z (B, task_dim), extra (B, extra_dim) -> (B, Ta, action_dim)."""
        return self.from_stem(self.stem(images), z, extra)

    def stem(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each camera's stem output: independent of z, so training computes it once per frame."""
        if torch.is_tensor(images) or len(images) != len(self.views):
            raise ValueError(f"the policy reads a list of {len(self.views)} camera frame(s)")
        return [view.stem(image) for view, image in zip(self.views, images)]

    def from_stem(self, xs: list[torch.Tensor], z: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        feats = [view.from_stem(x, z) for view, x in zip(self.views, xs)]
        first = feats[0]
        if self.extra_dim:
            if extra is None or extra.shape != (len(first), self.extra_dim):
                raise ValueError(f"the policy head needs extra inputs of shape ({len(first)}, {self.extra_dim}), "
                                 f"got {None if extra is None else tuple(extra.shape)}")
            first = torch.cat((first, extra), -1)
        h = self.head[0](first)
        for lin, f in zip(self.view_inputs, feats[1:]):
            h = h + lin(f)
        return self.head[1:](h).view(-1, *self.out_shape)
