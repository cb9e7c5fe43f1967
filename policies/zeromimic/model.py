"""ZeroMimic's network: ACT (Zhao et al. 2023) with a current and a goal image and the wrist pose.

One ResNet-18 (written here: torchvision is not installable beside this torch) turns the current and the
goal image into feature maps; their cells become tokens with 2-D sine position embeddings. A transformer
encoder reads [latent, wrist pose, current tokens, goal tokens]; a decoder with `chunk` learned queries
reads the encoder's output and predicts the chunk. In training a CVAE encoder reads [CLS, wrist pose,
target chunk] and gives the latent's mean and log-variance; at inference the latent is zero.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class ResNet18(nn.Module):
    """ResNet-18's layout (stem, 4 stages of 2 basic blocks, stride 32); `width` channels in the first stage."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        stages, cin = [], width
        for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stages += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.out_channels = cin

    def forward(self, x):
        return self.stages(self.stem(x))


def sine_2d(h: int, w: int, dim: int) -> torch.Tensor:
    """DETR's 2-D sine position embedding, (h * w, dim)."""
    half = dim // 2
    freq = 10000 ** (-torch.arange(0, half, 2, dtype=torch.float32) / half)
    ys = torch.arange(h, dtype=torch.float32)[:, None] * freq
    xs = torch.arange(w, dtype=torch.float32)[:, None] * freq
    ey = torch.cat((ys.sin(), ys.cos()), dim=1)[:, None, :].expand(h, w, half)
    ex = torch.cat((xs.sin(), xs.cos()), dim=1)[None, :, :].expand(h, w, half)
    return torch.cat((ey, ex), dim=-1).reshape(h * w, dim)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over latent dimensions, averaged over the batch (ACT's)."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(dim=1).mean()


class ZeroMimicNet(nn.Module):
    def __init__(self, pose_dim: int, action_dim: int, chunk: int, image_hw: tuple, resnet_width: int = 64,
                 hidden: int = 512, ffn: int = 3200, heads: int = 8, enc_layers: int = 4, dec_layers: int = 7,
                 latent: int = 32, dropout: float = 0.1):
        super().__init__()
        self.chunk, self.latent, self.action_dim = chunk, latent, action_dim
        self.backbone = ResNet18(resnet_width)
        self.project = nn.Conv2d(self.backbone.out_channels, hidden, 1)
        cells = [math.ceil(v / 32) for v in image_hw]
        self.register_buffer("image_pos", sine_2d(cells[0], cells[1], hidden), persistent=False)
        self.image_which = nn.Parameter(torch.zeros(2, 1, hidden))     # current vs goal image
        self.pose_in = nn.Linear(pose_dim, hidden)
        self.latent_in = nn.Linear(latent, hidden)
        self.token_pos = nn.Parameter(torch.zeros(2, hidden))          # latent and pose tokens
        def layer():
            return nn.TransformerEncoderLayer(hidden, heads, ffn, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer(), enc_layers, enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(hidden, heads, ffn, dropout, batch_first=True, norm_first=True), dec_layers)
        self.queries = nn.Parameter(torch.randn(chunk, hidden) * 0.02)
        self.head = nn.Linear(hidden, action_dim)
        # the CVAE encoder (training only)
        self.cvae_cls = nn.Parameter(torch.zeros(1, 1, hidden))
        self.cvae_pose = nn.Linear(pose_dim, hidden)
        self.cvae_action = nn.Linear(action_dim, hidden)
        self.cvae_pos = nn.Parameter(torch.randn(chunk + 2, hidden) * 0.02)
        self.cvae_encoder = nn.TransformerEncoder(layer(), enc_layers, enable_nested_tensor=False)
        self.cvae_out = nn.Linear(hidden, 2 * latent)

    def image_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float -> (B, cells, hidden)."""
        f = self.project(self.backbone(images))
        return f.flatten(2).transpose(1, 2) + self.image_pos[: f.shape[2] * f.shape[3]]

    def posterior(self, pose: torch.Tensor, actions: torch.Tensor, pad: torch.Tensor):
        b = pose.shape[0]
        tokens = torch.cat((self.cvae_cls.expand(b, -1, -1), self.cvae_pose(pose)[:, None],
                            self.cvae_action(actions)), dim=1) + self.cvae_pos
        mask = torch.cat((torch.zeros(b, 2, dtype=torch.bool, device=pad.device), pad), dim=1)
        out = self.cvae_out(self.cvae_encoder(tokens, src_key_padding_mask=mask)[:, 0])
        return out[:, : self.latent], out[:, self.latent:]

    def forward(self, current: torch.Tensor, goal: torch.Tensor, pose: torch.Tensor, z: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Normalised chunk (B, chunk, action_dim); z = 0 unless given."""
        b = current.shape[0]
        both = self.image_tokens(torch.cat((current, goal), dim=0))
        cur, gol = both[:b] + self.image_which[0], both[b:] + self.image_which[1]
        if z is None:
            z = torch.zeros(b, self.latent, device=current.device)
        tokens = torch.cat((self.latent_in(z)[:, None] + self.token_pos[0], self.pose_in(pose)[:, None] +
                            self.token_pos[1], cur, gol), dim=1)
        memory = self.encoder(tokens)
        out = self.decoder(self.queries[None].expand(b, -1, -1), memory)
        return self.head(out)
