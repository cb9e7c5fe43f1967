"""Rigid-body helpers in the project's conventions: quaternions are (x, y, z, w).

MuJoCo stores quaternions as (w, x, y, z); `to_mj`/`from_mj` are the only place that
order is converted, so everything above the simulator speaks one order.

Single quaternions and 3x3 matrices are computed with `math` on Python floats, not numpy:
the arm node's 1 kHz control tick calls these a dozen times, and numpy's per-call overhead
on 4-element arrays (5-25 us per call) was a third of the tick (docs/design.md, "The arm node's control thread").
Every function still takes any sequence and returns numpy arrays.
"""
from __future__ import annotations

import math

import numpy as np


def _floats(v, n: int) -> list[float]:
    """`v` (array, list or tuple of n numbers) as Python floats."""
    out = v.tolist() if isinstance(v, np.ndarray) else [float(x) for x in v]
    if len(out) != n or (out and not isinstance(out[0], float)):
        out = [float(x) for x in np.asarray(v, dtype=float).reshape(-1)]
        if len(out) != n:
            raise ValueError(f"expected {n} numbers, got {np.shape(v)}")
    return out


def from_mj(q_wxyz: np.ndarray) -> np.ndarray:
    w, x, y, z = _floats(q_wxyz, 4)
    return np.array([x, y, z, w])


def to_mj(q_xyzw: np.ndarray) -> np.ndarray:
    x, y, z, w = _floats(q_xyzw, 4)
    return np.array([w, x, y, z])


def _unit(x: float, y: float, z: float, w: float, original) -> tuple[float, float, float, float]:
    scale = max(abs(x), abs(y), abs(z), abs(w))
    if not (scale > 1e-12 and math.isfinite(x + y + z + w)):    # zero, NaN or infinite entries
        raise ValueError(f"not a valid quaternion: {np.asarray(original, dtype=float)}")
    x, y, z, w = x / scale, y / scale, z / scale, w / scale     # no overflow for huge entries
    n = math.sqrt(x * x + y * y + z * z + w * w)
    return x / n, y / n, z / n, w / n


def normalize(q: np.ndarray) -> np.ndarray:
    return np.array(_unit(*_floats(q, 4), q))


def _mul(ax, ay, az, aw, bx, by, bz, bw) -> tuple[float, float, float, float]:
    return (aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array(_mul(*_floats(a, 4), *_floats(b, 4)))


def quat_conj(q: np.ndarray) -> np.ndarray:
    x, y, z, w = _floats(q, 4)
    return np.array([-x, -y, -z, w])


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    x, y, z, w = _unit(*_floats(q, 4), q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def mat_to_quat(m: np.ndarray) -> np.ndarray:
    """Rotation matrix to (x, y, z, w) with w >= 0 (Shepperd's method)."""
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = np.asarray(m, dtype=float).reshape(3, 3).tolist()
    tr = m00 + m11 + m22
    if tr > 0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = ((m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s, 0.25 * s)
    elif m00 > m11 and m00 > m22:
        s = 2.0 * math.sqrt(1.0 + m00 - m11 - m22)
        q = (0.25 * s, (m01 + m10) / s, (m02 + m20) / s, (m21 - m12) / s)
    elif m11 > m22:
        s = 2.0 * math.sqrt(1.0 + m11 - m00 - m22)
        q = ((m01 + m10) / s, 0.25 * s, (m12 + m21) / s, (m02 - m20) / s)
    else:
        s = 2.0 * math.sqrt(1.0 + m22 - m00 - m11)
        q = ((m02 + m20) / s, (m12 + m21) / s, 0.25 * s, (m10 - m01) / s)
    x, y, z, w = _unit(*q, q)
    return np.array([x, y, z, w] if w >= 0 else [-x, -y, -z, -w])


def _axis_angle_to_quat(rx: float, ry: float, rz: float) -> tuple[float, float, float, float]:
    angle = math.sqrt(rx * rx + ry * ry + rz * rz)
    if angle < 1e-12:
        return 0.0, 0.0, 0.0, 1.0
    s = math.sin(angle / 2) / angle
    return rx * s, ry * s, rz * s, math.cos(angle / 2)


def axis_angle_to_quat(rotvec: np.ndarray) -> np.ndarray:
    return np.array(_axis_angle_to_quat(*_floats(rotvec, 3)))


def _to_axis_angle(x: float, y: float, z: float, w: float, original) -> tuple[float, float, float]:
    x, y, z, w = _unit(x, y, z, w, original)
    if w < 0:
        x, y, z, w = -x, -y, -z, -w
    s = math.sqrt(x * x + y * y + z * z)
    if s < 1e-12:
        return 0.0, 0.0, 0.0
    k = 2.0 * math.atan2(s, w) / s
    return x * k, y * k, z * k


def quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """Rotation vector of q, taking the short way round (angle in [0, pi])."""
    return np.array(_to_axis_angle(*_floats(q, 4), q))


def _rotation_error(q_target, q_current) -> tuple[float, float, float]:
    tx, ty, tz, tw = _floats(q_target, 4)
    cx, cy, cz, cw = _floats(q_current, 4)
    return _to_axis_angle(*_mul(tx, ty, tz, tw, -cx, -cy, -cz, cw), (q_target, q_current))


def rotation_error(q_target: np.ndarray, q_current: np.ndarray) -> np.ndarray:
    """Rotation vector taking q_current to q_target, in the base frame."""
    return np.array(_rotation_error(q_target, q_current))


def angle_between(q_a: np.ndarray, q_b: np.ndarray) -> float:
    x, y, z = _rotation_error(q_a, q_b)
    return math.sqrt(x * x + y * y + z * z)


def slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    a = _unit(*_floats(q0, 4), q0)
    b = _unit(*_floats(q1, 4), q1)
    dot = a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]
    if dot < 0:
        b, dot = tuple(-v for v in b), -dot
    if dot > 0.9995:
        mixed = [u + t * (v - u) for u, v in zip(a, b)]
        return np.array(_unit(*mixed, mixed))
    theta = math.acos(min(max(dot, -1.0), 1.0))
    s = math.sin(theta)
    wa, wb = math.sin((1 - t) * theta) / s, math.sin(t * theta) / s
    return np.array([wa * u + wb * v for u, v in zip(a, b)])


def euler_to_quat(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Extrinsic x-y-z (roll about x, then pitch about y, then yaw about z)."""
    qx = _axis_angle_to_quat(roll, 0.0, 0.0)
    qy = _axis_angle_to_quat(0.0, pitch, 0.0)
    qz = _axis_angle_to_quat(0.0, 0.0, yaw)
    return np.array(_mul(*qz, *_mul(*qy, *qx)))


def pose_to_mat(pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3] = quat_to_mat(quat)
    t[:3, 3] = pos
    return t
