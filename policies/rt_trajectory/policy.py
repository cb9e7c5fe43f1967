"""RT-Trajectory (Gu et al. 2023): imitation conditioned on a trajectory sketch, fused early with every frame.

What follows the paper: the sketch (robot_stack.sketches: time-graded red, 2.5D height in green, close and
open markers) is concatenated channel-wise with each RGB frame of the history before the first
convolution; an RT-1-style trunk turns each frame into TokenLearner tokens; a transformer reads the
frames' tokens; every action dimension is one of 256 uniform bins, trained with cross-entropy; there is
no language input. Differences, for this CPU: a small conv trunk instead of EfficientNet-B3, 3 frames
instead of 6, and a short chunk of actions (learned queries, one token per dimension and step) instead
of one step per decision.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from robot_stack.policies import actions as act_space
from robot_stack.policies.augment import random_shift
from robot_stack.policies.base import DataSpec, Policy, register
from robot_stack.policies.rt_trajectory.config import RTTrajectoryConfig
from robot_stack.policies.rt_trajectory.model import RTTrajectoryNet
from robot_stack.policies.rt_trajectory.tokens import from_bins, to_bins
from robot_stack.types import Observation, Task


@register
class RTTrajectoryPolicy(Policy):
    name = "rt_trajectory"
    conditioning = frozenset({"sketch"})
    Config = RTTrajectoryConfig

    def __init__(self, config: RTTrajectoryConfig | None = None, stats: dict | None = None):
        super().__init__(config or RTTrajectoryConfig(), stats)
        c = self.config
        self.net = RTTrajectoryNet(c.obs_horizon, c.action_horizon, act_space.ACTION_DIM, c.bins, c.channels,
                                   c.tokens_per_frame, c.width, c.layers, c.heads, c.dropout)

    def data_spec(self) -> DataSpec:
        c = self.config
        return DataSpec(cameras=(c.camera,), image_size=c.image_size, obs_horizon=c.obs_horizon,
                        action_horizon=c.action_horizon, goal_camera=c.camera, action_norm="minmax",
                        conditioning={"sketch": {"mode": c.sketch_mode, "line_width": c.sketch_line_width,
                                                 "marker_radius": c.sketch_marker_radius, "h_min": c.sketch_h_min,
                                                 "h_max": c.sketch_h_max}})

    def adapt_init_weights(self, tensors: dict) -> dict:
        """From an RGB-only trunk (3 input channels), the sketch's new input channels start at zero: the network
        begins as the RGB policy it was and learns to read the sketch (the paper's initialisation)."""
        key = "net.trunk.net.0.weight"
        w = tensors.get(key)
        if w is not None and w.shape[1] == 3:
            tensors = {**tensors, key: torch.cat((w, torch.zeros_like(w)), dim=1)}
        return tensors

    # --- inputs ---------------------------------------------------------------------------------
    def _frames(self, images, sketch, augment: bool) -> torch.Tensor:
        """uint8 history (B, T, H, W, 3) and sketch (B, H, W, 3) -> float (B, T, 6, H, W); shifted together."""
        images = torch.as_tensor(images)
        sketch = torch.as_tensor(sketch)
        b, t, h, w, _ = images.shape
        stacked = torch.cat((images.permute(0, 2, 3, 1, 4).reshape(b, h, w, t * 3), sketch), dim=-1)
        if augment and self.config.shift_pad:
            stacked = random_shift(stacked, self.config.shift_pad)
        frames = stacked[..., : t * 3].reshape(b, h, w, t, 3).permute(0, 3, 4, 1, 2)
        sk = stacked[..., t * 3:].permute(0, 3, 1, 2)[:, None].expand(b, t, 3, h, w)
        device = next(self.parameters()).device
        return torch.cat((frames, sk), dim=2).to(device).float().div_(255.0)

    # --- training -------------------------------------------------------------------------------
    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        c = self.config
        logits = self.net(self._frames(batch["images"][c.camera], batch["sketch"], augment=self.training))
        target = to_bins(torch.as_tensor(batch["action"], dtype=torch.float32, device=logits.device), c.bins)
        keep = ~torch.as_tensor(batch["action_is_pad"], device=logits.device)                  # (B, Ta)
        ce = F.cross_entropy(logits.flatten(0, 2), target.flatten(), reduction="none").view(target.shape)
        weight = keep[..., None].expand_as(ce).float()
        loss = (ce * weight).sum() / weight.sum().clamp(min=1.0)
        with torch.no_grad():
            right = (logits.argmax(-1) == target).float()
            accuracy = (right * weight).sum() / weight.sum().clamp(min=1.0)
        return loss, {"ce": float(loss.detach()), "bin_accuracy": float(accuracy)}

    # --- deciding -------------------------------------------------------------------------------
    @torch.no_grad()
    def _decide(self, images, sketch) -> torch.Tensor:
        """Normalised actions (B, Ta, 7): each dimension's most likely bin, at its centre."""
        logits = self.net(self._frames(images, sketch, augment=False))
        return from_bins(logits.argmax(-1), self.config.bins)

    def predict_batch(self, batch: dict) -> torch.Tensor:
        return self._decide(batch["images"][self.config.camera], batch["sketch"])

    def predict(self, obs: list[Observation], task: Task) -> np.ndarray:
        cam = self.config.camera
        images = np.stack([o.images[cam] for o in obs])[None]
        pred = self._decide(images, np.asarray(task.sketch)[None])[0].cpu().numpy()
        return act_space.unnormalise(pred.astype(np.float64), self.stats["action"], "minmax")
