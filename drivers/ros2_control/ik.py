"""Joint positions for a TCP set point: damped least squares from the measured joints, inside the joint limits.

The set points come from the controller one control period apart and start at the measured pose, so the
measured joints are a seed a few millimetres from the answer: one or two iterations, and the solution
stays on the arm's current branch (no elbow or wrist flips) and keeps a redundant arm's posture.
"""
from __future__ import annotations

import numpy as np

from robot_stack import transforms as tf
from robot_stack.robots.kinematics import Kinematics


class IKError(ValueError):
    """No joint positions within the limits reach the pose within the tolerance from this seed."""


class DampedLeastSquaresIK:
    def __init__(self, kinematics: Kinematics, q_min, q_max, *, position_tolerance: float = 1e-3,
                 rotation_tolerance: float = 1e-2, iterations: int = 20, damping: float = 1e-3):
        self.kinematics = kinematics
        self.q_min, self.q_max = np.asarray(q_min, dtype=float), np.asarray(q_max, dtype=float)
        self.position_tolerance, self.rotation_tolerance = position_tolerance, rotation_tolerance
        self.iterations = iterations
        self._damping = damping ** 2 * np.eye(6)
        self.last_iterations = 0

    def solve(self, pos, quat, seed) -> np.ndarray:
        """Joint positions within [q_min, q_max] whose TCP is at (pos, quat), starting from `seed`. Raises IKError."""
        pos, quat = np.asarray(pos, dtype=float), tf.normalize(quat)
        q = np.clip(np.asarray(seed, dtype=float), self.q_min, self.q_max)
        err = np.empty(6)
        for i in range(self.iterations + 1):
            p, r, jac = self.kinematics.pose_and_jacobian(q)
            err[:3] = pos - p
            err[3:] = tf.rotation_error(quat, r)
            if np.linalg.norm(err[:3]) <= self.position_tolerance * 0.1 and \
                    np.linalg.norm(err[3:]) <= self.rotation_tolerance * 0.1:
                break
            if i == self.iterations:
                break
            # J^T (J J^T + l^2 I)^-1 e: bounded near singularities, where a plain pseudo-inverse throws joints away.
            q = np.clip(q + jac.T @ np.linalg.solve(jac @ jac.T + self._damping, err), self.q_min, self.q_max)
        self.last_iterations = i
        pos_err, rot_err = float(np.linalg.norm(err[:3])), float(np.linalg.norm(err[3:]))
        if not (pos_err <= self.position_tolerance and rot_err <= self.rotation_tolerance) or not np.isfinite(q).all():
            raise IKError(f"no joint solution within the limits: {1000 * pos_err:.1f} mm, {rot_err:.3f} rad from the "
                          f"set point after {i} iterations")
        return q
