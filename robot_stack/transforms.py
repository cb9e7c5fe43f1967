"""Rigid-body helpers in the project's conventions: quaternions are (x, y, z, w).

MuJoCo stores quaternions as (w, x, y, z); `to_mj`/`from_mj` are the only place that
order is converted, so everything above the simulator speaks one order.
"""
from __future__ import annotations

import numpy as np


def from_mj(q_wxyz: np.ndarray) -> np.ndarray:
    q = np.asarray(q_wxyz, dtype=float)
    return np.array([q[1], q[2], q[3], q[0]])


def to_mj(q_xyzw: np.ndarray) -> np.ndarray:
    q = np.asarray(q_xyzw, dtype=float)
    return np.array([q[3], q[0], q[1], q[2]])


def normalize(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=float)
    scale = np.max(np.abs(q)) if q.size and np.isfinite(q).all() else 0.0
    if not scale > 1e-12:                       # zero, NaN or infinite entries
        raise ValueError(f"not a valid quaternion: {q}")
    q = q / scale                               # no overflow for huge entries
    return q / np.linalg.norm(q)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ])


def quat_conj(q: np.ndarray) -> np.ndarray:
    return np.array([-q[0], -q[1], -q[2], q[3]])


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    x, y, z, w = normalize(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def mat_to_quat(m: np.ndarray) -> np.ndarray:
    """Rotation matrix to (x, y, z, w) with w >= 0 (Shepperd's method)."""
    m = np.asarray(m, dtype=float)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    q = normalize(np.array(q))
    return q if q[3] >= 0 else -q


def axis_angle_to_quat(rotvec: np.ndarray) -> np.ndarray:
    rotvec = np.asarray(rotvec, dtype=float)
    angle = np.linalg.norm(rotvec)
    if angle < 1e-12:
        return np.array([0.0, 0.0, 0.0, 1.0])
    axis = rotvec / angle
    s = np.sin(angle / 2)
    return np.array([axis[0] * s, axis[1] * s, axis[2] * s, np.cos(angle / 2)])


def quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """Rotation vector of q, taking the short way round (angle in [0, pi])."""
    q = normalize(q)
    if q[3] < 0:
        q = -q
    s = np.linalg.norm(q[:3])
    if s < 1e-12:
        return np.zeros(3)
    angle = 2.0 * np.arctan2(s, q[3])
    return q[:3] / s * angle


def rotation_error(q_target: np.ndarray, q_current: np.ndarray) -> np.ndarray:
    """Rotation vector taking q_current to q_target, in the base frame."""
    return quat_to_axis_angle(quat_mul(q_target, quat_conj(q_current)))


def angle_between(q_a: np.ndarray, q_b: np.ndarray) -> float:
    return float(np.linalg.norm(rotation_error(q_a, q_b)))


def slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    q0, q1 = normalize(q0), normalize(q1)
    dot = float(np.dot(q0, q1))
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        return normalize(q0 + t * (q1 - q0))
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    return (np.sin((1 - t) * theta) * q0 + np.sin(t * theta) * q1) / np.sin(theta)


def euler_to_quat(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Extrinsic x-y-z (roll about x, then pitch about y, then yaw about z)."""
    qx = axis_angle_to_quat([roll, 0, 0])
    qy = axis_angle_to_quat([0, pitch, 0])
    qz = axis_angle_to_quat([0, 0, yaw])
    return quat_mul(qz, quat_mul(qy, qx))


def pose_to_mat(pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3] = quat_to_mat(quat)
    t[:3, 3] = pos
    return t
