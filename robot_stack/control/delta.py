"""The 7-D delta action of RL and teleop: TCP translation and rotation vector (base frame), then gripper.

Each entry lies in [-1, 1]; translation and rotation scale to at most `max_translation` m and
`max_rotation` rad per step, and the gripper entry maps [-1, 1] to a command in [0, 1]. The sim
wrapper, the ROS env and demo conversion all use these two functions, so the three agree exactly.
"""
from __future__ import annotations

import numpy as np

from robot_stack import transforms as tf


def apply_delta(action: np.ndarray, pos: np.ndarray, quat: np.ndarray, max_translation: float,
                max_rotation: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(target position, target quaternion xyzw, gripper command) reached from (pos, quat) by `action`."""
    action = np.clip(np.asarray(action, dtype=float), -1.0, 1.0)
    target = np.asarray(pos, dtype=float) + action[:3] * max_translation
    target_quat = tf.normalize(tf.quat_mul(tf.axis_angle_to_quat(action[3:6] * max_rotation), quat))
    return target, target_quat, float((action[6] + 1.0) / 2.0)


def delta_between(start_pos: np.ndarray, start_quat: np.ndarray, end_pos: np.ndarray, end_quat: np.ndarray,
                  gripper_cmd: float, max_translation: float, max_rotation: float) -> np.ndarray:
    """The action that moves (start_pos, start_quat) to (end_pos, end_quat), clipped to [-1, 1]: the inverse of
    `apply_delta` for steps within the limits."""
    dpos = (np.asarray(end_pos) - start_pos) / max_translation
    drot = tf.quat_to_axis_angle(tf.quat_mul(end_quat, tf.quat_conj(start_quat))) / max_rotation
    return np.clip(np.concatenate((dpos, drot, [2.0 * gripper_cmd - 1.0])), -1.0, 1.0)
