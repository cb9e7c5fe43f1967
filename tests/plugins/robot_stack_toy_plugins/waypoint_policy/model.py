from __future__ import annotations

import torch


class WaypointMLP(torch.nn.Module):
    """front image mean colour (3) + proprio (8) + waypoint (3) -> a chunk of normalised actions."""

    def __init__(self, hidden: int, horizon: int):
        super().__init__()
        self.horizon = horizon
        self.net = torch.nn.Sequential(torch.nn.Linear(14, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, horizon * 7))

    def forward(self, image, proprio, waypoint):
        x = torch.cat((image.float().mean((1, 2)) / 255, proprio.float(), waypoint.float()), -1)
        return self.net(x).view(len(x), self.horizon, 7)
