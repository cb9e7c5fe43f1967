"""Set-point interpolation from policy rate (5-30 Hz) to control rate (0.5-1 kHz).

A new target starts a constant-velocity segment from the current set point: linear in
position, constant angular velocity in rotation (which is slerp), lasting the policy
period or longer when the end-effector speed limits demand it. Work per tick is a few
multiply-adds, so it fits a 1 kHz Python loop.
"""
from __future__ import annotations

import math

import numpy as np

from robot_stack import transforms as tf


class PoseInterpolator:
    def __init__(self, dt: float, max_linear_speed: float, max_angular_speed: float):
        self.dt = dt
        self.max_linear_speed = max_linear_speed
        self.max_angular_speed = max_angular_speed
        self.pos = np.zeros(3)
        self.quat = np.array([0.0, 0.0, 0.0, 1.0])
        self._dp = np.zeros(3)
        self._dq = np.array([0.0, 0.0, 0.0, 1.0])
        self._ticks_left = 0

    def reset(self, pos: np.ndarray, quat: np.ndarray) -> None:
        """Put the set point at `pos`, `quat` and stop moving."""
        self.pos = np.array(pos, dtype=float)
        self.quat = tf.normalize(quat)
        self._ticks_left = 0

    def set_goal(self, pos: np.ndarray, quat: np.ndarray, duration: float) -> int:
        """Head for the goal over `duration` seconds, slower if the limits need; returns ticks."""
        delta = np.asarray(pos, dtype=float) - self.pos
        rotvec = tf.rotation_error(np.asarray(quat, dtype=float), self.quat)
        step = self.dt
        ticks = max(
            1,
            math.ceil(duration / step - 1e-9),
            math.ceil(np.linalg.norm(delta) / (self.max_linear_speed * step) - 1e-9),
            math.ceil(np.linalg.norm(rotvec) / (self.max_angular_speed * step) - 1e-9),
        )
        self._dp = delta / ticks
        self._dq = tf.axis_angle_to_quat(rotvec / ticks)
        self._ticks_left = ticks
        return ticks

    @property
    def moving(self) -> bool:
        return self._ticks_left > 0

    def step(self) -> tuple[np.ndarray, np.ndarray]:
        if self._ticks_left > 0:
            self.pos = self.pos + self._dp
            self.quat = tf.quat_mul(self._dq, self.quat)
            self._ticks_left -= 1
            if self._ticks_left == 0:
                self.quat = tf.normalize(self.quat)
        return self.pos, self.quat


class JointInterpolator:
    """Constant-velocity joint set points, each joint capped at its speed limit."""

    def __init__(self, dt: float, max_speed: np.ndarray):
        self.dt = dt
        self.max_speed = np.asarray(max_speed, dtype=float)
        self.q = np.zeros_like(self.max_speed)
        self._dq = np.zeros_like(self.max_speed)
        self._ticks_left = 0

    def reset(self, q: np.ndarray) -> None:
        self.q = np.array(q, dtype=float)
        self._ticks_left = 0

    def set_goal(self, q: np.ndarray, duration: float) -> int:
        delta = np.asarray(q, dtype=float) - self.q
        ticks = max(1, math.ceil(duration / self.dt - 1e-9),
                    math.ceil(float(np.max(np.abs(delta) / (self.max_speed * self.dt))) - 1e-9))
        self._dq = delta / ticks
        self._ticks_left = ticks
        return ticks

    @property
    def moving(self) -> bool:
        return self._ticks_left > 0

    def step(self) -> np.ndarray:
        if self._ticks_left > 0:
            self.q = self.q + self._dq
            self._ticks_left -= 1
        return self.q
