"""ZeroMimic's grasp stage: where to touch (an affordance heatmap learned from human clips, as VRB does),
a grasp near that point from the robot's own depth image (an antipodal sampler on the point cloud, standing
in for AnyGrasp), then a straight approach and close.

Affordance: a small encoder-decoder maps the first frame to a heatmap over pixels; the target is where the
hand first touched the object (the perceived grasp point of each clip projected into its first frame), as a
spatial softmax with cross-entropy against a Gaussian around it. Grasp: back-project the depth image and
score top-down grasp candidates around the affordance point (`antipodal_grasp`): the fingers must close on
opposite sides of what lies between them and touch nothing else. From one view the far faces are hidden,
so pairs of opposing surface normals (a classic antipodal test) are rarely both seen; GPD's
candidate-and-volume test works on what one camera sees. The feasible grasp nearest the affordance wins (as
AnyGrasp's grasps are filtered by VRB's point), then the narrowest (across a block's faces, not its diagonal).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from robot_stack import transforms as tf


class NoGraspFound(RuntimeError):
    """No valid grasp near the predicted affordance: the episode stops with this reason and the arm holds."""


# --- affordance -------------------------------------------------------------------------------
class AffordanceNet(nn.Module):
    """Image (B, 3, S, S) -> heatmap logits (B, S/4, S/4)."""

    def __init__(self, width: int = 32):
        super().__init__()
        c = width
        block = lambda i, o, s: nn.Sequential(nn.Conv2d(i, o, 3, s, 1), nn.GroupNorm(8, o), nn.ReLU())  # noqa: E731
        self.down = nn.Sequential(block(3, c, 2), block(c, c, 1), block(c, 2 * c, 2), block(2 * c, 2 * c, 1),
                                  block(2 * c, 4 * c, 2), block(4 * c, 4 * c, 1))
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                block(4 * c, 2 * c, 1), nn.Conv2d(2 * c, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(images))[:, 0]


def heatmap_target(uv: np.ndarray, size: int, sigma: float = 1.5) -> np.ndarray:
    """A normalised Gaussian (size, size) around pixel `uv` given in a size*4 image (heatmap cells = 4 px)."""
    ys, xs = np.mgrid[0:size, 0:size]
    cu, cv = (uv[0] + 0.5) / 4 - 0.5, (uv[1] + 0.5) / 4 - 0.5
    g = np.exp(-((xs - cu) ** 2 + (ys - cv) ** 2) / (2 * sigma ** 2))
    return (g / g.sum()).astype(np.float32)


def affordance_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the spatial softmax against the target distribution."""
    logp = torch.log_softmax(logits.flatten(1), dim=1)
    return -(target.flatten(1) * logp).sum(1).mean()


def predict_pixel(net: AffordanceNet, image: np.ndarray) -> np.ndarray:
    """The most likely contact pixel (u, v) of a uint8 (S, S, 3) image."""
    x = (torch.as_tensor(image).permute(2, 0, 1)[None].float() / 255.0 - 0.5) / 0.25
    with torch.no_grad():
        logits = net(x)[0]
    v, u = np.unravel_index(int(logits.argmax()), logits.shape)
    return np.array([u * 4 + 1.5, v * 4 + 1.5])


# --- grasp from depth ------------------------------------------------------------------------
@dataclass
class GraspConfig:
    radius: float = 0.08          # m around the affordance point where grasp centres are sampled
    centres: int = 48             # sampled candidate centres
    max_width: float = 0.075      # the gripper's opening (Panda 0.08)
    finger_depth: float = 0.02    # how far below the object's top the fingertips reach
    finger_size: tuple = (0.02, 0.02)   # finger extent along the TCP x and along the closing axis (m)
    table_z: float = 0.0          # the support surface in base (the twin's table top)
    yaws: int = 16                # candidate closing directions over 180 degrees
    min_points: int = 30


def back_project(depth: np.ndarray, k: np.ndarray, base_T_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Base-frame points (N, 3) of the valid depth pixels (metres, 0 or non-finite = invalid), and their (v, u)."""
    v, u = np.nonzero(np.isfinite(depth) & (depth > 0))
    z = depth[v, u]
    cam = np.stack(((u - k[0, 2]) * z / k[0, 0], (v - k[1, 2]) * z / k[1, 1], z), axis=1)
    return cam @ base_T_camera[:3, :3].T + base_T_camera[:3, 3], np.stack((v, u), axis=1)


def antipodal_grasp(depth: np.ndarray, k: np.ndarray, base_T_camera: np.ndarray, pixel: np.ndarray,
                    cfg: GraspConfig | None = None, rng: np.random.Generator | None = None,
                    heading: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """A grasp near the affordance `pixel` (u, v): TCP position, TCP quaternion (z = approach from above,
    y = closing axis) and opening, in base; NoGraspFound where the depth has nothing graspable there.

    Candidates (GPD-style, from a single view): top-down grasps centred on object points within `radius`
    of the affordance point, at `yaws` closing directions. A candidate needs object points between the
    fingers whose extent along the closing axis fits the opening (the fingers close on opposite sides:
    antipodal for the faces they meet) and no point inside either finger's volume. As AnyGrasp's output is
    filtered by VRB's contact point, the feasible candidate nearest the affordance wins (ties: the
    narrower hold). A parallel gripper's grasp and its 180-degree turn about the approach are the same grasp;
    `heading` (base) picks the one whose closing axis points along it (the human hand's finger direction)."""
    cfg = cfg or GraspConfig()
    rng = rng or np.random.default_rng(0)
    points, vu = back_project(depth, k, base_T_camera)
    if len(points) == 0:
        raise NoGraspFound("the depth image has no valid points")
    nearest = np.argmin(((vu[:, ::-1] - pixel) ** 2).sum(1))
    if np.hypot(*(vu[nearest, ::-1] - pixel)) > 4:
        raise NoGraspFound(f"no valid depth within 4 px of the predicted affordance {np.round(pixel, 1).tolist()}")
    anchor = points[nearest]
    region = points[np.linalg.norm(points[:, :2] - anchor[:2], axis=1) < cfg.radius + cfg.max_width]
    obj = region[region[:, 2] > cfg.table_z + 0.005]
    seeds = obj[np.linalg.norm(obj[:, :2] - anchor[:2], axis=1) < cfg.radius]
    if len(seeds) < cfg.min_points:
        raise NoGraspFound(f"{len(seeds)} depth points above the table within {cfg.radius} m of the affordance; "
                           f"at least {cfg.min_points} needed")
    seeds = seeds[rng.choice(len(seeds), min(cfg.centres, len(seeds)), replace=False)]
    half_x, finger = cfg.finger_size[0] / 2, cfg.finger_size[1]
    z = np.array([0.0, 0.0, -1.0])
    best = None
    for centre in seeds:
        close = obj[np.linalg.norm(obj[:, :2] - centre[:2], axis=1) < cfg.max_width]
        column = close[np.linalg.norm(close[:, :2] - centre[:2], axis=1) < 0.025][:, 2]
        top, bottom = column.max(initial=centre[2]), column.min(initial=centre[2])
        # fingertips as deep as the object is seen to go, at most finger_depth: a block's middle, a bar's axis
        depth_in = float(np.clip(top - bottom, 0.004, cfg.finger_depth))
        rel = close - np.array([centre[0], centre[1], top])
        lz = rel @ z                                          # depth below the object's top
        for yaw in np.linspace(0.0, np.pi, cfg.yaws, endpoint=False):
            y = np.array([np.cos(yaw), np.sin(yaw), 0.0])
            x = np.cross(y, z)
            lx, ly = rel @ x, rel @ y
            between = (np.abs(lx) < half_x) & (lz > -0.005) & (lz < depth_in + 0.005) & \
                (np.abs(ly) < cfg.max_width / 2)
            if between.sum() < 5:
                continue
            lo, hi = ly[between].min(), ly[between].max()
            width = hi - lo + 0.01
            if width > cfg.max_width:
                continue
            # centred on the top band: from one side view the lower sides of a bar are seen on one side only
            top_band = between & (lz < 0.006)
            mid = 0.5 * (ly[top_band].min() + ly[top_band].max()) if top_band.sum() >= 3 else 0.5 * (lo + hi)
            reach = (np.abs(lx) < half_x) & (lz > -0.01) & (lz < depth_in)
            d = np.abs(ly - mid)
            if (reach & (d > width / 2 + 0.004) & (d < width / 2 + finger)).any():
                continue                                      # a finger would land on something
            pos = np.array([centre[0], centre[1], top - depth_in]) + mid * y
            score = (-round(float(np.linalg.norm(pos[:2] - anchor[:2])), 2), -round(width, 3))
            if best is None or score > best[0]:
                best = (score, pos, tf.mat_to_quat(np.stack((x, y, z), axis=1)), width)
    if best is None:
        raise NoGraspFound("no grasp near the affordance fits the gripper without touching something else")
    quat = best[2]
    if heading is not None and tf.quat_to_mat(quat)[:, 1] @ np.asarray(heading) < 0:
        quat = tf.quat_mul(quat, tf.axis_angle_to_quat([0.0, 0.0, np.pi]))   # turned about the approach axis
    return best[1], quat, float(best[3])


def approach_waypoints(pos: np.ndarray, quat: np.ndarray, back: float = 0.08, steps: int = 8) -> np.ndarray:
    """The linear approach: from `back` m behind the grasp along its approach axis (TCP z) to the grasp,
    `steps` poses (steps, 7); the caller closes the gripper at the last one."""
    z = tf.quat_to_mat(quat)[:, 2]
    s = np.linspace(0.0, 1.0, steps)[:, None]
    positions = (pos - back * z)[None] * (1 - s) + pos[None] * s
    return np.concatenate((positions, np.repeat(np.asarray(quat)[None], steps, axis=0)), axis=1)
