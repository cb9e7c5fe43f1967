"""Keeping the set point where the arm can follow it with every joint clear of its margins.

The workspace box alone does not keep the measured TCP in the box: a box corner or face can lie
beyond the arm's reach for the commanded orientation (the Panda cannot hold a top-down hand at
x = 0.85 m, z = 0.3 m), and an impedance controller chasing an unreachable set point stretches
the arm into its elbow limit and swings the TCP past the face it was aimed at. A controller that
then refuses every step pushing the measured joints deeper into their margins leaves the arm
stuck there.

`ReachFilter` is a kinematic copy of the arm (the reference configuration `q`) that follows the
set point by damped least squares, one control period at a time, never leaving the joint range
shrunk by the margins. A joint that would cross its bound is fixed at the bound and the step is
solved again with the others (saturation in the null space, Flacco et al. 2012), so the set point
still goes as far as the free joints can take it; the set point sent to the arm is the reference
configuration's TCP pose. An unreachable goal then leaves the set point at the nearest pose the
arm reaches with margins, and any later goal it can reach pulls the reference back, because no
step is ever refused outright. The redundancy is resolved toward the measured posture (pulled
away from the limits), so the reference stays the configuration the arm actually takes.

The one place a local method cannot find its way back is the stretched elbow: the reach is
greatest at one elbow angle (the Panda's -0.47 rad, where its link offsets line up; the UR's 0),
and a reference that passes through it comes out on the other branch, where moving in means
stretching further, into the joint limit (the arm stuck at the reach edge). The elbow is kept
`elbow_clearance` from that angle, on one side: the wider side where one side is a sliver (the
Panda's hyperextended elbow), else the side the arm is on.
"""
from __future__ import annotations

import numpy as np

from robot_stack import transforms as tf
from robot_stack.robots.kinematics import Kinematics


class ReachFilter:
    """`step(pos, quat, q_measured)` -> the reachable set point nearest (pos, quat), one period on.

    `kinematics`: the arm's model (robots.Kinematics; no simulator, so a real arm's node has none); `q_lo`/`q_hi`: the joint range the reference may use (limits minus
    margins); `dq_max`: joint speeds (rad/s) the reference may move at.
    """

    DAMPING = 1e-4           # (m or rad)^2: bounded joint steps near the stretched-arm singularity
    POSTURE_GAIN = 10.0      # 1/s: how fast the redundancy drifts toward the preferred posture (the arm's own)
    POSTURE_INSET = 0.3      # rad: the preferred posture keeps this far inside the range where it can
    PULL_IN_SPEED = 0.2      # rad/s: a reference outside its range (a start inside a margin) comes back at this rate
    INSET_TIME = 0.05        # s: integral time of the bound's correction for a measured joint inside its margin
    INSET_RELAX = 0.05       # rad/s: the correction's return once the measured joint is out of the margin
    MAX_INSET = 0.2          # rad
    BOUND_RATE = 10.0        # 1/s: a joint closes at most this fraction of its distance to a bound per second

    def __init__(self, kinematics: Kinematics, q_lo, q_hi, dq_max, dt: float, elbow: int | None = None, elbow_clearance: float = 0.15,
                 clearance: float = 0.0):
        """`clearance`: how far inside the margins `q_lo`/`q_hi` are; a measured joint further out than that (inside
        its margin: the arm took another configuration for the same pose) draws the reference's bound in."""
        self.kin = kinematics
        self.clearance = clearance
        self._inset_lo = np.zeros(len(q_lo))
        self._inset_hi = np.zeros(len(q_hi))
        self._range = (np.array(q_lo, dtype=float), np.array(q_hi, dtype=float))
        if np.any(self._range[0] >= self._range[1]):
            raise ValueError(f"joint margins leave no range: low {self._range[0].tolist()} high {self._range[1].tolist()}")
        self.dt = dt
        self.max_step = np.asarray(dq_max, dtype=float) * dt
        self.elbow = elbow
        self.elbow_clearance = elbow_clearance
        self.stretched = None if elbow is None else self.stretched_elbow_angle(elbow)
        self._set_range(*self._range)
        self.q = np.zeros(len(self.lo))
        self._jac = np.empty((6, len(self.lo)))
        self._damp = self.DAMPING * np.eye(6)
        self._offset_pos = np.zeros(3)
        self._offset_quat = np.array([0.0, 0.0, 0.0, 1.0])
        self.saturated = False       # the last step could not follow its goal (a bound or the reach held it)

    def stretched_elbow_angle(self, elbow: int) -> float:
        """The elbow angle of greatest reach: the distance from the shoulder (the second joint) to the joint after
        the elbow depends on the elbow angle alone; it is scanned over the elbow's range."""
        spec = self.kin.spec
        q = np.array(spec.q_home, dtype=float)
        angles = np.linspace(spec.q_min[elbow], spec.q_max[elbow], 4001)
        dist = np.empty_like(angles)
        for k, a in enumerate(angles):
            q[elbow] = a
            anchors = self.kin.joint_anchors(q)
            dist[k] = np.linalg.norm(anchors[elbow + 1] - anchors[1])
        return float(angles[int(np.argmax(dist))])

    def _set_range(self, lo: np.ndarray, hi: np.ndarray, elbow_q: float | None = None) -> None:
        lo, hi = lo.copy(), hi.copy()
        if self.elbow is not None:
            e, c = self.elbow, self.elbow_clearance
            below = (lo[e], min(hi[e], self.stretched - c))        # the two sides of the stretched elbow
            above = (max(lo[e], self.stretched + c), hi[e])
            widths = (below[1] - below[0], above[1] - above[0])
            if min(widths) < 1.0 or elbow_q is None:
                side = below if widths[0] >= widths[1] else above
            else:
                side = below if elbow_q < self.stretched else above
            lo[e], hi[e] = side
        self.lo, self.hi = lo, hi
        inset = np.minimum(self.POSTURE_INSET, 0.25 * (hi - lo))
        self._post_lo, self._post_hi = lo + inset, hi - inset

    def _kinematics(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The reference's TCP pose at `q` (with the measured offset), and its Jacobian in `_jac`."""
        pos, quat, self._jac = self.kin.pose_and_jacobian(q)
        return pos + self._offset_pos, tf.quat_mul(self._offset_quat, quat)

    def reset(self, q, pos=None, quat=None) -> tuple[np.ndarray, np.ndarray]:
        """Put the reference at the measured configuration; returns its pose.

        With the measured TCP pose given, the difference from the model's pose of `q` (a tool
        offset or calibration the model lacks) is kept as an offset, so the reference's pose is
        the measured one and re-seeding does not move the set point."""
        self.q = np.array(q, dtype=float)
        self.saturated = False
        if self.elbow is not None:
            self._set_range(*self._range, elbow_q=float(self.q[self.elbow]))
        self._offset_pos = np.zeros(3)
        self._offset_quat = np.array([0.0, 0.0, 0.0, 1.0])
        model_pos, model_quat = self._kinematics(self.q)
        if pos is None or quat is None:
            return model_pos, model_quat
        self._offset_pos = np.asarray(pos, dtype=float) - model_pos
        self._offset_quat = tf.normalize(tf.quat_mul(quat, tf.quat_conj(model_quat)))
        return np.array(pos, dtype=float), tf.normalize(quat)

    def _bounds(self, q_measured) -> tuple[np.ndarray, np.ndarray]:
        """The reference's range this period: drawn in, joint by joint, while the measured joint is inside its margin
        (an integral correction, as the set point box's for the TCP), so the reference and the arm after it back
        out; it relaxes at INSET_RELAX once the joint is out."""
        q_measured = np.asarray(q_measured, dtype=float)
        over_lo = np.maximum(self._range[0] - self.clearance - q_measured, 0.0)
        over_hi = np.maximum(q_measured - self._range[1] - self.clearance, 0.0)
        if not (over_lo.any() or over_hi.any() or self._inset_lo.any() or self._inset_hi.any()):
            return self.lo, self.hi            # the common case, every period
        gain, relax = self.dt / self.INSET_TIME, self.INSET_RELAX * self.dt
        self._inset_lo = np.where(over_lo > 0, np.minimum(self._inset_lo + gain * over_lo, self.MAX_INSET),
                                  np.maximum(self._inset_lo - relax, 0.0))
        self._inset_hi = np.where(over_hi > 0, np.minimum(self._inset_hi + gain * over_hi, self.MAX_INSET),
                                  np.maximum(self._inset_hi - relax, 0.0))
        mid = (self.lo + self.hi) / 2
        return np.minimum(self.lo + self._inset_lo, mid), np.maximum(self.hi - self._inset_hi, mid)

    def step(self, pos, quat, q_measured) -> tuple[np.ndarray, np.ndarray]:
        q = self.q
        cur_pos, cur_quat = self._kinematics(q)
        jac = self._jac
        err = np.empty(6)
        err[:3] = pos - cur_pos
        err[3:] = tf.rotation_error(quat, cur_quat)
        # Bounds for this period: the shrunk range, except that a reference already outside it (seeded from a
        # measured configuration inside a margin) is not thrown back at once but brought in at PULL_IN_SPEED.
        pull = self.PULL_IN_SPEED * self.dt
        lo_bound, hi_bound = self._bounds(q_measured)
        lo = np.minimum(lo_bound, q + pull)
        hi = np.maximum(hi_bound, q - pull)
        # Bounds are approached ever more slowly (at BOUND_RATE times the distance left): a reference that reached
        # the stretched-elbow bound at full joint speed had the arm overshoot it and flip to the other elbow branch.
        close = self.BOUND_RATE * self.dt
        lo = np.where(q > lo, q - close * (q - lo), lo)
        hi = np.where(q < hi, q + close * (hi - q), hi)
        drift = self.POSTURE_GAIN * self.dt * (np.clip(q_measured, self._post_lo, self._post_hi) - q)
        dq = np.zeros_like(q)
        free = np.ones(len(q), dtype=bool)
        jf, rest = jac, err
        while True:
            # Damped least squares for the task, and the posture drift projected into its null space:
            # dq = J+ e + (I - J+ J) drift, with J+ = J^T (J J^T + damping)^-1, one 6x6 solve for both.
            rhs = np.stack((rest, jf @ drift[free]), axis=1)
            sol = jf.T @ np.linalg.solve(jf @ jf.T + self._damp, rhs)
            dq[free] = sol[:, 0] + drift[free] - sol[:, 1]
            # One period's joint motion stays under the joint speeds, in the direction solved for.
            ratio = float(np.max(np.abs(dq) / self.max_step))
            if ratio > 1.0:
                dq /= ratio
            new = q + dq
            over = free & ((new < lo) | (new > hi))
            if not over.any():
                break
            # A joint that would cross its bound stops at it; the others take up what it cannot do.
            dq[over] = np.clip(new[over], lo[over], hi[over]) - q[over]
            free &= ~over
            if not free.any():
                break
            jf = jac[:, free]
            rest = err - jac[:, ~free] @ dq[~free]
        self.q = np.clip(q + dq, lo, hi)
        dq = self.q - q
        # The pose of the new reference to first order: its error is second order in one period's joint step
        # (micrometres), and it does not add up, since the next period starts from the exact pose.
        twist = jac @ dq
        out_pos = cur_pos + twist[:3]
        out_quat = tf.quat_mul(tf.axis_angle_to_quat(twist[3:]), cur_quat)
        self.saturated = not free.all()
        return out_pos, out_quat
