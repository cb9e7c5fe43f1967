"""ZeroMimic (Shi et al. 2025): a post-grasp skill policy learned from human video only.

What follows the paper (repo configs/policy/ACT.yaml): the current and the goal image through one shared
ResNet-18 trained from scratch, the current 6-D wrist pose in; out a chunk of 10 future wrist poses relative
to the current one (position offsets and rotations, camera frame); a CVAE transformer trained with L1 and
KL weight 10, latent 32, z = 0 at inference, no temporal aggregation; one policy per skill.

At deployment the camera frame is the robot's front camera: the TCP is turned into the wrist pose a hand
holding the same grasp would have (`hand_to_tcp`), the predicted wrist poses go back to TCP targets in the
base frame with the camera's extrinsics (the `wrist_pose` conditioning kind's `camera_pose`), and the
chunk leaves as the canonical action through the arm node's safety envelope, gripper closed: the object is
held (the grasp stage put it there).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from robot_stack.policies import actions as act_space
from robot_stack.policies.augment import random_shift
from robot_stack.policies.base import DataSpec, Policy, register
from robot_stack.policies.conditioning.base import ConditioningError
from robot_stack.policies.conditioning.wrist_pose import camera_matrix
from robot_stack.policies.errors import MissingConditioning
from robot_stack.policies.zeromimic import poses
from robot_stack.policies.zeromimic.config import ZeroMimicConfig
from robot_stack.policies.zeromimic.model import ZeroMimicNet, kl_divergence
from robot_stack.types import Observation, Task


def _norm(x, stats):
    return (x - np.asarray(stats["mean"], dtype=np.float32)) / np.asarray(stats["std"], dtype=np.float32)


@register
class ZeroMimicPolicy(Policy):
    name = "zeromimic"
    conditioning = frozenset({"goal_image", "wrist_pose"})
    Config = ZeroMimicConfig

    def __init__(self, config: ZeroMimicConfig | None = None, stats: dict | None = None):
        super().__init__(config or ZeroMimicConfig(), stats)
        c = self.config
        self.net = ZeroMimicNet(poses.POSE_DIM, poses.ACTION_DIM, c.chunk_size, c.image_hw, c.resnet_width,
                                c.hidden, c.ffn, c.heads, c.enc_layers, c.dec_layers, c.latent, c.dropout)

    def data_spec(self) -> DataSpec:
        c = self.config
        return DataSpec(cameras=(c.camera,), image_size=c.image_hw[1], obs_horizon=1, action_horizon=c.chunk_size,
                        goal_camera=c.camera, policy_dt=0.1)

    # --- inputs ---------------------------------------------------------------------------------
    def _check_image(self, label: str, image) -> None:
        """Camera and goal images: HxWx3 uint8, at least half the policy's size a side and at most 1024; they
        are centre-cropped to the policy's 3:4 and resized here."""
        image = np.asarray(image)
        h, w = self.config.image_hw
        ok = image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.shape[0] >= h // 2 \
            and image.shape[1] >= w // 2 and max(image.shape[:2]) <= 1024
        if not ok:
            from robot_stack.policies.errors import BadObservation
            raise BadObservation(f"{label}: expected an HxWx3 uint8 image of at least {h // 2}x{w // 2} pixels "
                                 f"(the policy sees {h}x{w}), got {image.shape} {image.dtype}")

    def _resized(self, images) -> np.ndarray:
        import cv2
        h, w = self.config.image_hw
        images = np.asarray(images)
        if images.shape[1:3] == (h, w):
            return images
        ih, iw = images.shape[1:3]
        ch, cw = (ih, round(ih * w / h)) if ih * w <= iw * h else (round(iw * h / w), iw)
        y0, x0 = (ih - ch) // 2, (iw - cw) // 2
        return np.stack([cv2.resize(np.ascontiguousarray(i[y0:y0 + ch, x0:x0 + cw]), (w, h),
                                    interpolation=cv2.INTER_AREA) for i in images])

    def _stat(self, key: str, dim: int) -> dict:
        """Normalisation statistics; identity where a checkpoint-less policy (bench) has none."""
        stats = self.stats.get(key)
        if not stats or len(stats.get("mean", ())) != dim:
            return {"mean": [0.0] * dim, "std": [1.0] * dim}
        return stats

    def _images(self, images, augment: bool) -> torch.Tensor:
        x = torch.as_tensor(self._resized(images) if not torch.is_tensor(images) else images)
        if augment and self.config.shift_pad:
            x = random_shift(x, self.config.shift_pad)
        device = next(self.parameters()).device
        return (x.to(device).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.25

    def _tensor(self, x) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float32), device=next(self.parameters()).device)

    # --- training -------------------------------------------------------------------------------
    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """batch: image, goal_image (B, H, W, 3) uint8; pose (B, 9); action (B, K, 6); action_is_pad (B, K)."""
        c = self.config
        pose = self._tensor(_norm(np.asarray(batch["pose"]), self._stat("pose", poses.POSE_DIM)))
        target = self._tensor(_norm(np.asarray(batch["action"]), self._stat("action", poses.ACTION_DIM)))
        pad = torch.as_tensor(np.asarray(batch["action_is_pad"]), device=pose.device)
        mu, logvar = self.net.posterior(pose, target, pad)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        pred = self.net(self._images(batch["image"], self.training), self._images(batch["goal_image"], self.training),
                        pose, z)
        keep = (~pad)[..., None].float()
        l1 = (F.l1_loss(pred, target, reduction="none") * keep).sum() / (keep.sum() * pred.shape[-1]).clamp(min=1)
        kl = kl_divergence(mu, logvar)
        return l1 + c.kl_weight * kl, {"l1": float(l1.detach()), "kl": float(kl.detach())}

    # --- deciding -------------------------------------------------------------------------------
    def _on_reset(self, task: Task) -> None:
        if task.goal_image is None or task.camera_pose is None:
            raise MissingConditioning(f"policy {self.name!r} needs a goal image and the camera's pose (wrist_pose); "
                                      f"the task provides {sorted(task.provides() - {'none'})}")
        if task.skill and task.skill != self.config.skill:
            raise ConditioningError(f"this checkpoint is the {self.config.skill!r} skill; asked for {task.skill!r}")

    @torch.no_grad()
    def predict_wrist(self, image: np.ndarray, goal: np.ndarray, camera_T_wrist: np.ndarray) -> np.ndarray:
        """Future wrist poses (K, 4, 4) in the camera frame for one image, goal and current wrist pose."""
        c = self.config
        pose = self._tensor(_norm(poses.pose_features(camera_T_wrist)[None], self._stat("pose", poses.POSE_DIM)))
        out = self.net(self._images(np.asarray(image)[None], False), self._images(np.asarray(goal)[None], False),
                       pose)[0].cpu().numpy().astype(np.float64)
        stats = self._stat("action", poses.ACTION_DIM)
        actions = out * np.asarray(stats["std"]) + np.asarray(stats["mean"])
        return poses.decode_chunk(camera_T_wrist, actions, c.action_mode)

    def predict(self, obs: list[Observation], task: Task) -> np.ndarray:
        c = self.config
        now = obs[-1]
        ee = np.asarray(now.ee_pose, dtype=np.float64)
        base_T_camera = camera_matrix(task.camera_pose)
        wrist = poses.robot_wrist_in_camera(ee, base_T_camera, c.hand_to_tcp)
        future = self.predict_wrist(now.images[c.camera], task.goal_image, wrist)
        targets = poses.camera_wrists_to_tcp(future, base_T_camera, c.hand_to_tcp)
        return act_space.encode(ee, targets, np.ones((len(targets), 1)))
