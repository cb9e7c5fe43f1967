"""Getting the arm out of a configuration from which a local method cannot reach its goal.

The set point follows its goal by damped least squares, one control period at a time (`ReachFilter`, the
joint-margin step): a local method. After a storm of random hand orientations the arm can end with a wrist joint
at its limit while the goal orientation lies the short way round through that limit; every local step toward the
goal is refused and the arm stays 20-30 cm from an in-box goal for good (7 of 40 storms in `bench envelope`),
until a person calls `/arm/home`. A global answer is cheap for one goal: inverse kinematics for the goal pose
from the home posture (and from where the arm is), inside the joint range kept clear of the margins, and a
straight line in joint space to it, as `/arm/home` moves, with the TCP checked against the box along the way and
timed so that the TCP keeps the speed limits. Where the straight line leaves the box, the path goes through the
home posture. `Controller` decides when the arm is stuck (`StuckDetector`) and plays the path.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from robot_stack import transforms as tf
from robot_stack.robots.kinematics import Kinematics

ROTATION_LENGTH = 0.1          # m per rad: how a rotation error counts against a position error
ITERATIONS_PER_TICK = 3        # IK iterations in one control period: planning never stalls the loop
SAMPLES_PER_TICK = 4           # path samples checked in one control period


def pose_distance(pos_a, quat_a, pos_b, quat_b) -> float:
    """Position error plus the rotation error at ROTATION_LENGTH metres per radian."""
    return float(np.linalg.norm(np.asarray(pos_a) - pos_b)) + ROTATION_LENGTH * tf.angle_between(quat_a, quat_b)


def solve_ik(kin: Kinematics, pos, quat, seed, lo, hi, iterations: int = 300, tolerance: float = 1e-4):
    """Joint angles inside [lo, hi] that put the TCP at (pos, quat), by clamped damped least squares from `seed`;
    None where it does not converge (unreachable within the range from this seed). `quat` None: the position
    alone, the hand turned as the seed's neighbourhood has it. A generator that yields every ITERATIONS_PER_TICK
    iterations, so the control loop spreads the work over its periods."""
    q = np.clip(np.asarray(seed, dtype=float), lo, hi)
    damping = 1e-4 * np.eye(6)
    err = np.empty(6)
    for k in range(iterations):
        if k and k % ITERATIONS_PER_TICK == 0:
            yield
        cur_pos, cur_quat, jac = kin.pose_and_jacobian(q)
        err[:3] = pos - cur_pos
        err[3:] = 0.0 if quat is None else tf.rotation_error(quat, cur_quat)
        if np.linalg.norm(err[:3]) < tolerance and np.linalg.norm(err[3:]) < 10 * tolerance:
            return q
        if quat is None:
            jac = jac[:3]
        step = jac.T @ np.linalg.solve(jac @ jac.T + damping[:len(jac), :len(jac)], err[:len(jac)])
        step *= min(1.0, 0.5 / max(float(np.abs(step).max()), 1e-12))      # at most 0.5 rad a joint per iteration
        q = np.clip(q + step, lo, hi)
    return None


@dataclass
class JointPath:
    """Joint-space waypoints after the start and the time each leg takes."""
    waypoints: list[np.ndarray]
    durations: list[float]


class UnwindPlanner:
    """`plan(q, pos, quat, goal_pos, goal_quat)` -> a JointPath to the goal pose that keeps the TCP in the box and
    within the speed limits, or None.

    The measured TCP pose and the model's pose of `q` may differ (a tool or calibration the model lacks): the
    difference is kept as an offset, as the reach filter keeps it, so the goal is reached as measured."""

    SAMPLES = 40               # TCP checks per leg
    SPEED_SHARE = 0.8          # of the linear and angular speed limits the TCP may use on the way

    def __init__(self, kin: Kinematics, lo, hi, home, box_low, box_high, max_linear_speed: float,
                 max_angular_speed: float, joint_speed):
        self.kin = kin
        self.lo, self.hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        self.home = np.clip(np.asarray(home, dtype=float), self.lo, self.hi)
        self.box_low, self.box_high = np.asarray(box_low, dtype=float), np.asarray(box_high, dtype=float)
        self.v_max, self.w_max = max_linear_speed, max_angular_speed
        self.joint_speed = np.asarray(joint_speed, dtype=float)

    def plan(self, q, pos, quat, goal_pos, goal_quat, via_home: bool = False):
        """A generator: advance it once per control period; it returns (StopIteration.value) the path or None.
        `via_home`: only the path through the home posture (the direct one was blocked last time)."""
        q = np.asarray(q, dtype=float)
        model_pos, model_quat = self.kin.fk(q)
        offset_pos = np.asarray(pos, dtype=float) - model_pos
        offset_quat = tf.normalize(tf.quat_mul(quat, tf.quat_conj(model_quat)))
        # The goal in the model's terms: measured = offset_quat * model, position shifted by offset_pos.
        target_pos = np.asarray(goal_pos, dtype=float) - offset_pos
        target_quat = tf.normalize(tf.quat_mul(tf.quat_conj(offset_quat), goal_quat))
        solutions = []
        for seed in (self.home, q):
            solution = yield from solve_ik(self.kin, target_pos, target_quat, seed, self.lo, self.hi)
            if solution is not None:
                solutions.append(solution)
        if not solutions:
            return None
        solutions.sort(key=lambda s: float(np.abs(s - q).max()))
        # The home posture turned to where the arm points (the first joint is the base's yaw on both arms): from
        # there the hand comes up and back over the base, off whatever it was pressed against.
        tucked = self.home.copy()
        tucked[0] = np.clip(q[0], self.lo[0], self.hi[0])
        # The hand taken to the box's centre (the same branch, the wrist as wound as it is): a wrist wound
        # round to its limit with the arm at a corner of the box swings the hand out of the box wherever it
        # unwinds there (UR5e storm 10: wrist 1 at -2 pi, the TCP at the box's top corner).
        centre = yield from solve_ik(self.kin, (self.box_low + self.box_high) / 2 - offset_pos, None, q,
                                     self.lo, self.hi)
        for goal_q in solutions:
            # after a block, only through home: the hand comes up and back from whatever held it
            routes = [] if via_home else [[goal_q]]
            routes += [[self.home, goal_q], [tucked, self.home, goal_q]]
            if centre is not None:
                routes += [[centre, self.home, goal_q]] if via_home else [[centre, goal_q], [centre, self.home, goal_q]]
            for waypoints in routes:
                legs, start = [], q
                for w in waypoints:
                    yield
                    duration = yield from self._leg_duration(start, w, offset_pos)
                    if duration is None:
                        break
                    legs.append(duration)
                    start = w
                else:
                    return JointPath([w.copy() for w in waypoints], legs)
        return None

    def _leg_duration(self, q0, q1, offset_pos):
        """The time the straight joint line q0 -> q1 takes with every joint, the TCP's speed and the hand's
        turning rate within their limits; None where the TCP leaves the box on the way. A generator, as `solve_ik`:
        SAMPLES_PER_TICK samples a period."""
        d = np.asarray(self.kin.spec.d, dtype=float)[:, None]
        tcp, quats, lowest = [], [], []
        for k, f in enumerate(np.linspace(0.0, 1.0, self.SAMPLES + 1)):
            if k and k % SAMPLES_PER_TICK == 0:
                yield
            frames = self.kin.chain(q0 + f * (q1 - q0))        # one pass for the TCP and the joints
            tcp.append(frames[-1, :3, 3] + offset_pos)
            quats.append(tf.mat_to_quat(frames[-1, :3, :3]))
            lowest.append(float((frames[2:-1, :3, 3] + d[2:] * frames[2:-1, :3, 2])[:, 2].min()))
        tcp = np.array(tcp)
        # An arm that starts a hair outside the box (pinned at a face after a storm) may leave along a path that
        # takes it no further out; every other point is inside.
        outside = np.linalg.norm(tcp - np.clip(tcp, self.box_low, self.box_high), axis=1)
        if np.any(outside > outside[0] + 1e-6):
            return None
        # The arm's joints stay above the box's floor too (the table), or no lower than they start: a path that
        # swept the wrist through it pressed the hand into the table.
        if min(lowest) < min(self.box_low[2], lowest[0]) - 1e-6:
            return None
        step = float(np.max(np.linalg.norm(np.diff(tcp, axis=0), axis=1)))
        turn = max(tf.angle_between(a, b) for a, b in zip(quats[:-1], quats[1:]))
        per_sample = max(step / (self.SPEED_SHARE * self.v_max), turn / (self.SPEED_SHARE * self.w_max))
        return max(per_sample * self.SAMPLES, float(np.max(np.abs(q1 - q0) / self.joint_speed)))


PEAK_SPEED = 1.875             # a minimum-jerk leg's peak speed over its mean speed
MAX_JOINT_LEAD = 0.1           # rad the joint set point may lead the measured joints


class JointPathPlayer:
    """Plays a JointPath one control period at a time, each leg a minimum-jerk move (q0 + (q1 - q0) s(t / T),
    s = 10 u^3 - 15 u^4 + 6 u^5) that starts and ends at rest: a constant-velocity leg's steps in joint velocity
    made the twin's joint tracking overshoot to 2.5x the joint speed limit. Each leg's duration is stretched by
    PEAK_SPEED, so the peak speed is what the planner allowed on average."""

    def __init__(self, start, path: JointPath, dt: float):
        self.dt = dt
        self._legs = list(zip(path.waypoints, path.durations))
        self._q0 = np.asarray(start, dtype=float)
        self.q = self._q0.copy()
        self._t = 0.0
        self.waiting = 0.0          # s the path has waited for the arm

    @property
    def done(self) -> bool:
        return not self._legs

    def step(self, q_measured) -> np.ndarray:
        """The joint set point of the next period; the path waits while the arm is more than MAX_JOINT_LEAD behind
        it (held by a contact), as the pose set point's lead is bounded: a path run on ahead of a blocked arm had it
        catch up at 2.5x the joint speed limit once it came free."""
        if not self._legs or np.abs(self.q - q_measured).max() > MAX_JOINT_LEAD:
            self.waiting += self.dt if self._legs else 0.0
            return self.q
        goal, duration = self._legs[0]
        self._t += self.dt
        u = min(1.0, self._t / (PEAK_SPEED * duration))
        self.q = self._q0 + (goal - self._q0) * (u ** 3 * (10.0 - 15.0 * u + 6.0 * u * u))
        if u >= 1.0:
            self._legs.pop(0)
            self._q0, self._t = np.array(goal, dtype=float), 0.0
        return self.q


class StuckDetector:
    """Whether the set point has stopped getting nearer a goal it is still far from, with the joint limits the
    reason: over `window` seconds its pose distance to the goal fell by less than `progress` while the goal
    stayed more than `far` away and a limit held the step in most periods."""

    def __init__(self, dt: float, window: float = 1.0, progress: float = 0.01, far: float = 0.02):
        self.n = max(2, int(round(window / dt)))
        self.progress, self.far = progress, far
        self._dist: deque[float] = deque(maxlen=self.n)
        self._held: deque[bool] = deque(maxlen=self.n)

    def reset(self) -> None:
        self._dist.clear()
        self._held.clear()

    def update(self, distance: float, held_by_limit: bool) -> bool:
        self._dist.append(distance)
        self._held.append(held_by_limit)
        if len(self._dist) < self.n or distance <= self.far:
            return False
        return bool(self._dist[0] - distance < self.progress and sum(self._held) > self.n // 2)
