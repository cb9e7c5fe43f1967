"""The safety envelope the arm node applies to every set point, whoever commanded it.

Independent of the interpolator that produced the set point: a workspace box, per-tick
linear and angular speed limits, joint-limit margins and a gripper force cap. NaN/inf is
never clipped into something plausible; it is rejected.

The box is a promise about the measured TCP, not only the set point: `observe_tcp` watches the
measured TCP, and where it has gone past a face the set point's box is drawn in on that side by
the excursion (an integral correction: a steady overshoot, such as a controller trading position
for orientation at the reach edge, is cancelled; a transient one costs a few millimetres of the
box for a while). The inset relaxes at `INSET_RELAX` once the TCP is back inside.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robot_stack import transforms as tf


class SafetyViolation(ValueError):
    """A command that must not be executed at all (non-finite, malformed)."""


@dataclass
class SafetyLimits:
    workspace_low: tuple[float, float, float] = (0.15, -0.55, -0.005)
    workspace_high: tuple[float, float, float] = (0.85, 0.55, 0.65)
    max_linear_speed: float = 0.5        # m/s
    max_angular_speed: float = 2.0       # rad/s
    joint_margin: float = 0.05           # rad kept from each joint limit
    max_gripper_force: float = 70.0      # N
    watchdog_timeout: float = 0.2        # s without a fresh command: hold
    max_command_age: float = 0.5         # s: older stamps are stale (and newer than now by this: a wrong clock)
    chunk_horizon: float = 2.0           # s: a chunk spanning more, or with a step further ahead of now, is refused
    max_chunk_steps: int = 500           # steps per chunk: refused before it is parsed beyond this
    max_box_inset: float = 0.05          # m: the most the set point box is drawn in to correct a measured excursion
    max_contact_force: float = 100.0     # N on the hand: beyond it the set point presses no deeper than the force allows
    max_lead: float = 0.03               # m the set point may lead the measured TCP (the impedance spring's stretch)
    max_lead_angle: float = 0.2          # rad the set point's orientation may lead the measured hand's
    elbow_joint: int = -1                # index of the elbow (reach) joint, kept off its stretched angle; -1: none
    elbow_clearance: float = 0.15        # rad kept from the stretched elbow


@dataclass
class SafetyEvents:
    """Counts of what the envelope did, for /diagnostics."""

    counts: dict[str, int] = field(default_factory=dict)
    last: str = ""

    def add(self, kind: str, detail: str = "") -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.last = f"{kind}: {detail}" if detail else kind


class SafetyEnvelope:
    def __init__(self, limits: SafetyLimits, q_min, q_max):
        self.limits = limits
        self.low = np.array(limits.workspace_low, dtype=float)
        self.high = np.array(limits.workspace_high, dtype=float)
        self.q_min = np.array(q_min, dtype=float)
        self.q_max = np.array(q_max, dtype=float)
        self.events = SafetyEvents()
        self.inset_low = np.zeros(3)      # how far the set point box is drawn in from each face (m)
        self.inset_high = np.zeros(3)
        self.max_excursion = 0.0          # the largest measured TCP excursion outside the box since start (m)
        self._inset = False               # any inset non-zero

    INSET_RELAX = 0.01                    # m/s: the inset's return once the measured TCP is back in the box

    def observe_tcp(self, tcp, dt: float) -> float:
        """Take the measured TCP into account; returns how far it is outside the box (m)."""
        tcp = np.asarray(tcp, dtype=float)
        if not self._inset and (tcp >= self.low).all() and (tcp <= self.high).all():
            return 0.0                    # the common case, every control period: nothing to do
        over_low = np.maximum(self.low - tcp, 0.0)
        over_high = np.maximum(tcp - self.high, 0.0)
        relax = self.INSET_RELAX * dt
        cap = self.limits.max_box_inset
        self.inset_low = np.where(over_low > 0, np.minimum(self.inset_low + over_low, cap),
                                  np.maximum(self.inset_low - relax, 0.0))
        self.inset_high = np.where(over_high > 0, np.minimum(self.inset_high + over_high, cap),
                                   np.maximum(self.inset_high - relax, 0.0))
        self._inset = bool(self.inset_low.any() or self.inset_high.any())
        excursion = float(np.sqrt(np.sum(over_low ** 2 + over_high ** 2)))
        if excursion > 0:
            if excursion > self.max_excursion:
                self.max_excursion = excursion
            self.events.add("tcp_outside_box", f"{1000 * excursion:.1f} mm")
        return excursion

    @property
    def setpoint_low(self) -> np.ndarray:
        """The box the set point is held in: the workspace box drawn in by the measured excursions."""
        return np.minimum(self.low + self.inset_low, (self.low + self.high) / 2)

    @property
    def setpoint_high(self) -> np.ndarray:
        return np.maximum(self.high - self.inset_high, (self.low + self.high) / 2)

    def check_target(self, pos, quat, gripper: float) -> tuple[np.ndarray, np.ndarray, float]:
        """Validate a commanded target; clip it into the box. Raises SafetyViolation."""
        pos = np.asarray(pos, dtype=float)
        quat = np.asarray(quat, dtype=float)
        if pos.shape != (3,) or quat.shape != (4,):
            raise SafetyViolation(f"target must be 3 + 4 values, got {pos.shape} and {quat.shape}")
        if not (np.isfinite(pos).all() and np.isfinite(quat).all() and np.isfinite(gripper)):
            raise SafetyViolation(f"non-finite target rejected: pos={pos.tolist()} quat={quat.tolist()} gripper={gripper}")
        try:
            quat = tf.normalize(quat)
        except ValueError as exc:
            raise SafetyViolation(str(exc)) from exc
        clipped = np.clip(pos, self.low, self.high)
        if not np.array_equal(clipped, pos):
            self.events.add("workspace_clip", f"{np.round(pos, 3).tolist()} -> {np.round(clipped, 3).tolist()}")
        g = float(np.clip(gripper, 0.0, 1.0))
        if g != gripper:
            self.events.add("gripper_clip", f"{gripper}")
        return clipped, quat, g

    def clip_to_box(self, pos) -> np.ndarray:
        """`pos` in the set point box."""
        return np.clip(pos, self.setpoint_low, self.setpoint_high) if self._inset else np.clip(pos, self.low, self.high)

    def limit_contact(self, pos, tcp, force) -> np.ndarray:
        """`pos`, drawn back toward the measured TCP along the contact force while that force is over the limit.

        An impedance controller presses on an obstacle with a force that grows with how far its set point is past
        the TCP; a set point driven into the table took the TCP's contact to 300-500 N, and the hand skidded out of
        the box. The depth past the TCP along the force is scaled by limit / force, so the press settles near the
        limit (the force grows about linearly with the depth)."""
        force = np.asarray(force, dtype=float)
        f = float(np.linalg.norm(force))
        if f <= self.limits.max_contact_force:
            return pos
        n = force / f                                     # away from the obstacle
        depth = float((np.asarray(tcp, dtype=float) - pos) @ n)
        if depth <= 0.0:
            return pos
        self.events.add("contact_force_limit", f"{f:.0f} N")
        return pos + n * (depth * (1.0 - self.limits.max_contact_force / f))

    def limit_lead(self, pos, quat, tcp, tcp_quat, tcp_velocity=None) -> tuple[np.ndarray, np.ndarray]:
        """(`pos`, `quat`) at most `max_lead` and `max_lead_angle` from the measured TCP pose, and, while the measured
        TCP moves faster than the speed limit, not ahead of it along its motion.

        The set point's speed limit says nothing about the arm's: an impedance controller accelerates the TCP in
        proportion to how far the set point leads it. An arm held back (a joint margin, a reach limit, a posture it
        has to unwind) while the set point ran on was 8-11 cm behind it, and once free it shot after it at 1.3 m/s
        against a 0.5 m/s limit; a hand turning hard toward an orientation far off pulled the TCP sideways at 0.8
        m/s. Bounding the stretch bounds both, as SERL's impedance controller clips its translational and rotational
        errors; the bounds sit at the lag of a move at the speed limits (2.9 cm and 0.14 rad with the twin's gains),
        so a move at full speed pays little for them. What is left of a transient (0.75 m/s seen) the speed
        governor takes: over the limit, the set point keeps only the part of its lead that brakes the TCP (a sideways
        pull turned a 0.53 m/s TCP into a 0.59 m/s one), and the controller's damping does the rest."""
        pos = np.asarray(pos, dtype=float)
        tcp = np.asarray(tcp, dtype=float)
        lead = pos - tcp
        dist = float(np.linalg.norm(lead))
        if dist > self.limits.max_lead:
            self.events.add("lead_limit", f"{1000 * dist:.0f} mm")
            lead = lead * (self.limits.max_lead / dist)
        if tcp_velocity is not None:
            speed = float(np.linalg.norm(tcp_velocity))
            if speed > self.limits.max_linear_speed:
                along = tcp_velocity / speed
                ahead = float(lead @ along)
                self.events.add("tcp_speed_governor", f"{speed:.2f} m/s")
                lead = min(ahead, 0.0) * along          # only what brakes it
                quat = np.asarray(tcp_quat, dtype=float)
        angle = tf.angle_between(quat, tcp_quat)
        if angle > self.limits.max_lead_angle:
            self.events.add("lead_limit", f"{angle:.2f} rad")
            quat = tf.slerp(tcp_quat, quat, self.limits.max_lead_angle / angle)
        return tcp + lead, quat

    def limit_step(self, prev_pos, prev_quat, pos, quat, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """Clamp the change of set point in one control period to the speed limits, and keep it in the box
        (the set point box: drawn in where the measured TCP went out). A previous set point outside the
        drawn-in box moves into it at the speed limit, not in one jump."""
        pos = self.clip_to_box(np.asarray(pos, dtype=float))
        delta = pos - prev_pos
        dist = float(np.linalg.norm(delta))
        max_dist = self.limits.max_linear_speed * dt
        if dist > max_dist * (1 + 1e-9):
            pos = prev_pos + delta * (max_dist / dist)
            self.events.add("linear_speed_limit")
        angle = tf.angle_between(quat, prev_quat)
        max_angle = self.limits.max_angular_speed * dt
        if angle > max_angle * (1 + 1e-9):
            quat = tf.slerp(prev_quat, quat, max_angle / angle)
            self.events.add("angular_speed_limit")
        return pos, quat

    def joints_near_limits(self, q) -> np.ndarray:
        """Indices of joints inside the margin of their limits."""
        q = np.asarray(q, dtype=float)
        m = self.limits.joint_margin
        return np.flatnonzero((q < self.q_min + m) | (q > self.q_max - m))

    def clip_joints(self, q) -> np.ndarray:
        q = np.asarray(q, dtype=float)
        if q.shape != self.q_min.shape or not np.isfinite(q).all():
            raise SafetyViolation(f"joint target must be {self.q_min.shape[0]} finite values, got {q.tolist()}")
        m = self.limits.joint_margin
        clipped = np.clip(q, self.q_min + m, self.q_max - m)
        if not np.array_equal(clipped, q):
            self.events.add("joint_margin_clip")
        return clipped


class Watchdog:
    """Fresh while a command arrived within `timeout` seconds (monotonic clock)."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.last_feed = -np.inf

    def feed(self, now: float) -> None:
        self.last_feed = now

    def age(self, now: float) -> float:
        return now - self.last_feed

    def expired(self, now: float) -> bool:
        return self.age(now) > self.timeout
