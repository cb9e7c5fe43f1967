"""Wrist-pose maths of ZeroMimic: chunk encoding relative to the current pose, and camera -> robot base.

Poses are 4x4 transforms. The policy's 6-D pose input is the position and the first two columns of the
rotation (continuous, unlike Euler angles or quaternions); its outputs per chunk step are a position offset
and a rotation vector, relative to the current wrist pose (`reltraj_relori`: p_k = p + dp_k,
R_k = exp(r_k) R, both in the camera frame) or, for the ablation, absolute (p_k, log R_k).
"""
from __future__ import annotations

import numpy as np

from robot_stack import transforms as tf

POSE_DIM = 9
ACTION_DIM = 6


def rotvec(r: np.ndarray) -> np.ndarray:
    return tf.quat_to_axis_angle(tf.mat_to_quat(r))


def rotmat(v: np.ndarray) -> np.ndarray:
    return tf.quat_to_mat(tf.axis_angle_to_quat(v))


def pose_features(t: np.ndarray) -> np.ndarray:
    """(..., 4, 4) -> (..., 9): position and the rotation's first two columns."""
    return np.concatenate((t[..., :3, 3], t[..., :3, 0], t[..., :3, 1]), axis=-1).astype(np.float32)


def encode_chunk(current: np.ndarray, future: np.ndarray, mode: str = "relative") -> np.ndarray:
    """Future poses (K, 4, 4) as policy targets (K, 6) for the pose `current` (4, 4)."""
    out = np.empty((len(future), ACTION_DIM))
    for k, f in enumerate(future):
        if mode == "relative":
            out[k, :3] = f[:3, 3] - current[:3, 3]
            out[k, 3:] = rotvec(f[:3, :3] @ current[:3, :3].T)
        else:
            out[k, :3] = f[:3, 3]
            out[k, 3:] = rotvec(f[:3, :3])
    return out


def decode_chunk(current: np.ndarray, actions: np.ndarray, mode: str = "relative") -> np.ndarray:
    """Policy outputs (K, 6) back to poses (K, 4, 4) for the pose `current`."""
    out = np.repeat(np.eye(4)[None], len(actions), axis=0)
    for k, a in enumerate(np.asarray(actions, dtype=np.float64)):
        if mode == "relative":
            out[k, :3, 3] = current[:3, 3] + a[:3]
            out[k, :3, :3] = rotmat(a[3:]) @ current[:3, :3]
        else:
            out[k, :3, 3] = a[:3]
            out[k, :3, :3] = rotmat(a[3:])
    return out


def hand_to_tcp_matrix(hand_to_tcp) -> np.ndarray:
    p = np.asarray(hand_to_tcp, dtype=np.float64)
    return tf.pose_to_mat(p[:3], p[3:])


def robot_wrist_in_camera(ee_pose: np.ndarray, base_T_camera: np.ndarray, hand_to_tcp) -> np.ndarray:
    """The robot's TCP pose (7, base) as the wrist pose a human hand holding the same grasp would have, in the
    camera frame: camera_T_wrist = inv(base_T_camera) . base_T_tcp . inv(hand_T_tcp)."""
    base_T_tcp = tf.pose_to_mat(ee_pose[:3], ee_pose[3:7])
    return np.linalg.inv(base_T_camera) @ base_T_tcp @ np.linalg.inv(hand_to_tcp_matrix(hand_to_tcp))


def camera_wrists_to_tcp(camera_T_wrist: np.ndarray, base_T_camera: np.ndarray, hand_to_tcp) -> np.ndarray:
    """Camera-frame wrist poses (K, 4, 4) -> TCP targets in base as (K, 7) position + quaternion."""
    base_T_tcp = base_T_camera[None] @ camera_T_wrist @ hand_to_tcp_matrix(hand_to_tcp)[None]
    return np.array([np.concatenate((t[:3, 3], tf.normalize(tf.mat_to_quat(t[:3, :3])))) for t in base_T_tcp])
