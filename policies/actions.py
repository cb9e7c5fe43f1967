"""The one place canonical actions and policy-space actions convert.

Policies predict, for each step of a chunk, the target relative to the TCP pose at the
observation: position offset (3, base frame), rotation offset as a rotation vector
(3, base frame, q_target = exp(r) * q_now) and the gripper command (1, 0 open .. 1 closed)
— GRIF's 7-D (delta xyz, delta rotation, gripper). `decode` turns a prediction back into an
absolute `ActionChunk` with a time per step.
"""
from __future__ import annotations

import numpy as np

from robot_stack import transforms as tf
from robot_stack.types import ActionChunk

ACTION_DIM = 7
PROPRIO_DIM = 8


def _rotvec_between(q_target: np.ndarray, q_now: np.ndarray) -> np.ndarray:
    """Batched log(q_target * q_now^-1) as rotation vectors; both (..., 4) xyzw."""
    t, n = q_target, q_now
    # q_target * conj(q_now), written out for broadcasting
    x1, y1, z1, w1 = np.moveaxis(t, -1, 0)
    x2, y2, z2, w2 = np.moveaxis(n * np.array([-1, -1, -1, 1]), -1, 0)
    rel = np.stack((w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                    w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                    w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
                    w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2), axis=-1)
    rel = np.where(rel[..., 3:4] < 0, -rel, rel)
    s = np.linalg.norm(rel[..., :3], axis=-1, keepdims=True)
    angle = 2 * np.arctan2(s, rel[..., 3:4])
    scale = np.where(s > 1e-9, angle / np.maximum(s, 1e-12), 2.0)
    return rel[..., :3] * scale


def encode(ee_pose: np.ndarray, action_pose: np.ndarray, action_gripper: np.ndarray) -> np.ndarray:
    """Canonical actions -> policy space. ee_pose (..., 7); action_pose (..., T, 7); gripper (..., T, 1) -> (..., T, 7)."""
    now = ee_pose[..., None, :]
    dpos = action_pose[..., :3] - now[..., :3]
    drot = _rotvec_between(action_pose[..., 3:7], np.broadcast_to(now[..., 3:7], action_pose[..., 3:7].shape))
    return np.concatenate((dpos, drot, action_gripper.reshape(*action_pose.shape[:-1], 1)), axis=-1).astype(np.float32)


def decode(ee_pose: np.ndarray, actions: np.ndarray, stamp: float, dt: float) -> ActionChunk:
    """Policy space (T, 7) relative to `ee_pose` -> absolute ActionChunk; step k is reached at stamp + (k + 1) * dt."""
    actions = np.asarray(actions, dtype=np.float64)
    if actions.ndim != 2 or actions.shape[1] != ACTION_DIM or not np.all(np.isfinite(actions)):
        raise ValueError(f"policy produced an invalid action array of shape {actions.shape}")
    q_now = tf.normalize(ee_pose[3:7])
    quats = np.array([tf.normalize(tf.quat_mul(tf.axis_angle_to_quat(r), q_now)) for r in actions[:, 3:6]])
    return ActionChunk(times=stamp + dt * np.arange(1, len(actions) + 1), positions=ee_pose[:3] + actions[:, :3],
                       quats=quats, gripper=np.clip(actions[:, 6], 0.0, 1.0))


def proprio(ee_pose: np.ndarray, gripper_width: np.ndarray) -> np.ndarray:
    """TCP position, quaternion with w >= 0 (one sign per rotation) and finger width: (..., 8)."""
    quat = np.where(ee_pose[..., 6:7] < 0, -ee_pose[..., 3:7], ee_pose[..., 3:7])
    return np.concatenate((ee_pose[..., :3], quat, np.reshape(gripper_width, (*ee_pose.shape[:-1], 1))),
                          axis=-1).astype(np.float32)


def normalise(x, stats: dict, mode: str):
    """'meanstd' -> zero mean unit std; 'minmax' -> [-1, 1]. Works on numpy arrays and torch tensors."""
    if mode == "meanstd":
        return (x - _like(stats["mean"], x)) / _like(stats["std"], x)
    if mode == "minmax":
        lo, hi = _like(stats["min"], x), _like(stats["max"], x)
        return 2 * (x - lo) / (hi - lo) - 1
    raise ValueError(f"unknown normalisation {mode!r}")


def unnormalise(x, stats: dict, mode: str):
    if mode == "meanstd":
        return x * _like(stats["std"], x) + _like(stats["mean"], x)
    if mode == "minmax":
        lo, hi = _like(stats["min"], x), _like(stats["max"], x)
        return (x + 1) / 2 * (hi - lo) + lo
    raise ValueError(f"unknown normalisation {mode!r}")


def compute_stats(x: np.ndarray, eps: float = 1e-3) -> dict:
    """Per-dimension mean/std/min/max over all leading axes; spreads floored at eps so constant dims stay finite."""
    x = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
    lo, hi = x.min(0), x.max(0)
    wide = np.maximum(hi - lo, 2 * eps)
    mid = (hi + lo) / 2
    return {"mean": x.mean(0).tolist(), "std": np.maximum(x.std(0), eps).tolist(),
            "min": (mid - wide / 2).tolist(), "max": (mid + wide / 2).tolist()}


def _like(values, x):
    if isinstance(x, np.ndarray):
        return np.asarray(values, dtype=x.dtype)
    import torch
    return torch.as_tensor(values, dtype=x.dtype, device=x.device)
