"""The arm's control law with no ROS in it: what set point each control period sends, and why.

`Controller` takes commands (a target pose, an action chunk, a gripper command, stop / recover /
home / enable / reset) from any thread and, once per control period, turns the measured state
into the set point for the driver (`tick`). Between the commands and the driver sit the
interpolators, the chunk executor, the watchdog and the safety envelope (reach filter, workspace
box, contact limit, speed limits, joint margins), in that order, so the envelope is the last
thing before the driver whoever commanded the arm.

The arm node, the controller process and `robot-stack replay` all drive an arm through this one
class, so a recorded episode replays through the same set points the arm was sent. Time comes
from two injected clocks: `clock` (stamps, chunk step times: ROS time in the node) and
`monotonic` (the watchdog, command gaps); a replay gives both the simulated time.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from robot_stack import transforms as tf
from robot_stack.control.chunks import blend_chunks, check_chunk, chunk_target_at
from robot_stack.control.interpolation import JointInterpolator, PoseInterpolator
from robot_stack.control.loop_stats import LoopStats, RecentSamples
from robot_stack.control.reach import ReachFilter
from robot_stack.control.safety import SafetyEnvelope, SafetyLimits, SafetyViolation, Watchdog
from robot_stack.control.unwind import JointPathPlayer, StuckDetector, UnwindPlanner, pose_distance
from robot_stack.robots.kinematics import Kinematics
from robot_stack.robots.spec import RobotSpec
from robot_stack.types import ActionChunk, RobotState

REFERENCE_CLEARANCE = 0.03      # rad the reach filter's reference keeps beyond the joint margin
UNWIND_GOAL_CHANGE = 0.05       # pose distance (m, 0.1 m per rad) by which a new goal makes an unwind's path moot
UNWIND_SETTLE = 2.0             # s an unwind waits for the arm to follow its path (a contact can hold it)


def check_target(envelope: SafetyEnvelope, pos, quat, stamp: float, now: float) -> tuple[np.ndarray, np.ndarray]:
    """A target's admission: a fresh stamp (neither stale nor from a wrong clock), finite, a unit quaternion, in
    the box (clipped). Raises SafetyViolation."""
    limit = envelope.limits.max_command_age
    age = now - stamp
    if age > limit:
        raise SafetyViolation(f"stale stamp ({age:.3f} s old, limit {limit} s)")
    if -age > limit:
        raise SafetyViolation(f"stamp {-age:.3f} s in the future (limit {limit} s): the sender's clock is wrong")
    pos, quat, _ = envelope.check_target(pos, quat, 0.0)
    return pos, quat


def prepare_chunk(chunk: ActionChunk, envelope: SafetyEnvelope, now: float, horizon: float,
                  playing: ActionChunk | None, blend: float) -> ActionChunk:
    """A received chunk checked (`check_chunk`) and blended with the one playing (`chunk_blend` > 0): the work done
    off the control loop, by whoever receives chunks. Raises SafetyViolation."""
    chunk = check_chunk(chunk, envelope, now, horizon)
    if playing is not None and blend > 0:
        chunk = blend_chunks(playing, chunk, blend)
    return chunk


def checked_blend(value) -> float:
    """A chunk_blend value, or ValueError: the weight of the old chunk at the seam, in [0, 1)."""
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"chunk_blend must be in [0, 1), got {value}")
    return float(value)


@dataclass
class Setpoint:
    """What one control period sends: a TCP pose (`kind` "pose") or joint positions ("joints"), and the gripper."""

    kind: str
    pos: np.ndarray
    quat: np.ndarray
    q: np.ndarray | None
    gripper: float

    def send(self, driver) -> None:
        """Command `driver` (an ArmDriver) with this set point."""
        if self.kind == "joints":
            driver.command_joints(self.q, self.gripper)
        else:
            driver.command_pose(self.pos, self.quat, self.gripper)


class Controller:
    """One arm's control law. Command methods are thread-safe; `tick` runs on one thread (the control loop)."""

    def __init__(self, spec: RobotSpec, limits: SafetyLimits, *, command_period: float = 0.1,
                 chunk_blend: float = 0.0, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 on_stall: Callable[[float], None] | None = None):
        """`command_period`: interpolation time of a target until the command rate is measured; `on_stall(age)`:
        called on the control thread when a stream of commands stops mid-episode (the watchdog holds)."""
        self.spec, self.limits = spec, limits
        self.dt = 1.0 / spec.control_hz
        self.clock, self.monotonic, self.on_stall = clock, monotonic, on_stall
        self.safety = SafetyEnvelope(limits, spec.q_min, spec.q_max)
        self.watchdog = Watchdog(limits.watchdog_timeout)
        self.stats = LoopStats(self.dt)
        self.chunk_blend = chunk_blend
        self.kinematics = Kinematics(spec)      # the arm's own model: no simulator in a real arm's controller
        self._limit_damping = 1e-6 * np.eye(6)
        self._joint_mid = (self.safety.q_min + self.safety.q_max) / 2
        # The reference configuration keeps a little more than the margin, so the measured joints, a tracking
        # error behind it, stay out of the margin too.
        keep = limits.joint_margin + REFERENCE_CLEARANCE
        self.reach = ReachFilter(self.kinematics, self.safety.q_min + keep, self.safety.q_max - keep,
                                 np.array(spec.dq_max), self.dt,
                                 elbow=limits.elbow_joint if limits.elbow_joint >= 0 else None,
                                 elbow_clearance=limits.elbow_clearance, clearance=REFERENCE_CLEARANCE)
        self.pose_interp = PoseInterpolator(self.dt, limits.max_linear_speed, limits.max_angular_speed)
        self.joint_interp = JointInterpolator(self.dt, np.array(spec.dq_max) * 0.5)
        self.unwind_planner = UnwindPlanner(self.kinematics, self.safety.q_min + keep, self.safety.q_max - keep,
                                            spec.q_home, limits.workspace_low, limits.workspace_high,
                                            limits.max_linear_speed, limits.max_angular_speed,
                                            self.joint_interp.max_speed)
        self.stuck = StuckDetector(self.dt)
        self._goal: tuple[np.ndarray, np.ndarray] | None = None     # the pose the commands ask for now
        self._planning = None          # the unwind planner's generator while it works, one step a period
        self._blocked_goal = None      # the goal of the last unwind a contact blocked: the next goes through home
        self._stuck_goal = None        # the goal the stuck detector measures progress toward
        # while unwinding: (goal, the path's player, [periods spent settling at its end])
        self._unwind: tuple[tuple[np.ndarray, np.ndarray], JointPathPlayer, list] | None = None

        self._lock = threading.Lock()
        self._target: tuple[np.ndarray, np.ndarray, float] | None = None   # newest pose target, not yet taken
        self._chunk: ActionChunk | None = None
        self._gripper = 0.0
        self.estop = False
        self.enabled = True
        self._go_home = False
        self._last_target_time: float | None = None
        self._command_period = float(command_period)
        # Commands in the current stream (accepted with no watchdog hold between them): a hold after two or more is
        # a stream that stopped mid-episode, a fault until commands resume or the episode is ended on purpose.
        self._stream = 0
        self.stall_since: float | None = None       # monotonic time of the current stall, None when there is none
        self._stalls_unreported = 0
        self.setpoint: tuple[np.ndarray, np.ndarray] | None = None
        self.mode = "hold"
        self.command_age = float("inf")
        self.command_latency = RecentSamples(2000)    # target stamp -> the tick that takes it
        self.taken_latency: float | None = None       # this tick's sample of it, None when no target was taken
        self.taken_stamp: float | None = None         # the stamp of the target this tick took, None when none
        self._gripper_taken: float | None = None      # the gripper command of the last tick `took_command` reported
        self._last_tcp: tuple[float, np.ndarray] | None = None    # (stamp, position) of the last measured TCP
        self.chunk_latency = RecentSamples(20000)     # observation capture -> chunk accepted

    @property
    def chunk_blend(self) -> float:
        return self._chunk_blend

    @chunk_blend.setter
    def chunk_blend(self, value: float) -> None:
        self._chunk_blend = checked_blend(value)

    @property
    def gripper(self) -> float:
        return self._gripper

    @property
    def chunk(self) -> ActionChunk | None:
        """The chunk being played, if any."""
        return self._chunk

    # --- commands (any thread) ---------------------------------------------------------------
    def set_target(self, pos, quat, stamp: float) -> None:
        """A TCP target stamped `stamp` (clock time): validated, clipped into the box, interpolated over the measured
        command period. Raises SafetyViolation (non-finite, malformed, stale or future stamp)."""
        pos, quat = check_target(self.safety, pos, quat, stamp, self.clock())
        now = self.monotonic()
        with self._lock:
            if self._last_target_time is not None:
                gap = now - self._last_target_time
                self._command_period = float(np.clip(0.7 * self._command_period + 0.3 * gap, 1 / 60, 0.25))
            self._last_target_time = now
            self._target = (pos, quat, stamp)
            self._chunk = None
            self._accepted(now)

    def set_chunk(self, chunk: ActionChunk, stamp: float | None = None) -> None:
        """An action chunk (its step times on `clock`), checked and blended with the one playing; call it off the
        control thread. `stamp`: the capture time of the observation it answers, for the latency figure. Raises
        SafetyViolation."""
        self.play_chunk(prepare_chunk(chunk, self.safety, self.clock(), self.limits.chunk_horizon, self._chunk,
                                      self._chunk_blend))
        if stamp is not None:
            self.chunk_latency.append(self.clock() - stamp)

    def play_chunk(self, chunk: ActionChunk) -> None:
        """Play a chunk already blended by the sender; checked again here (finite, horizon, box), as any command
        is. Raises SafetyViolation."""
        chunk = check_chunk(chunk, self.safety, self.clock(), self.limits.chunk_horizon)
        with self._lock:
            self._chunk = chunk
            self._target = None
            self._accepted(self.monotonic())

    def set_gripper(self, g: float) -> None:
        """The gripper command in [0, 1] (0 open); kept until another comes. Raises SafetyViolation."""
        g = float(g)
        if not np.isfinite(g) or not 0.0 <= g <= 1.0:
            raise SafetyViolation(f"{g} is not in [0, 1]")
        with self._lock:
            self._gripper = g

    def stop(self) -> None:
        """Latch the e-stop: hold where the set point is until `recover()`."""
        with self._lock:
            self.estop = True
            self._target, self._chunk = None, None
            self._end_stream()
        self.safety.events.add("estop")

    def recover(self) -> None:
        """Release the e-stop (the caller has recovered the driver) and hold the measured pose."""
        with self._lock:
            self.estop = False
            self._target, self._chunk = None, None
            self._end_stream()
            self.setpoint = None                    # re-seed from the measured pose

    def home(self) -> tuple[bool, str]:
        """Move to the robot's home posture in joint space; refused while the e-stop is latched."""
        with self._lock:
            if self.estop:
                return False, "e-stop latched"
            self._go_home = True
            self._end_stream()
        return True, "moving to home"

    def end_stream(self) -> None:
        """The command source ended its stream on purpose (a policy server paused; an empty chunk, as a
        JointTrajectoryController takes an empty trajectory): drop what is queued, and the watchdog's hold that
        follows is no stall."""
        with self._lock:
            self._target, self._chunk = None, None
            self._end_stream()

    def enable(self, enabled: bool) -> None:
        """Disabled, the arm holds as on e-stop (without latching); commands are dropped either way."""
        with self._lock:
            self.enabled = bool(enabled)
            self._target, self._chunk = None, None
            self._end_stream()

    def reset(self) -> None:
        """A new episode (the driver was reset between ticks): drop every command, hold the measured pose, and
        restart the loop statistics (a reset's pause is not an overrun)."""
        with self._lock:
            self.stats = LoopStats(self.dt)
            self._target, self._chunk = None, None
            # The new episode starts with the hand open: a grasp held at the end of the last one, kept as the
            # command, closed the fingers on nothing and a policy reading the finger width took it for a held block.
            self._gripper = 0.0
            self._end_stream()
            self.setpoint = None
            self.mode = "hold"
            self._goal = self._planning = self._unwind = self._blocked_goal = self._stuck_goal = None
            self.stuck.reset()

    def fault(self, detail: str) -> None:
        """The driver failed: latch the e-stop and record why."""
        self.safety.events.add("driver_error", detail)
        with self._lock:
            self.estop = True

    def take_stalls(self) -> int:
        """Stalls (command streams that stopped mid-episode) since the last call."""
        with self._lock:
            n, self._stalls_unreported = self._stalls_unreported, 0
        return n

    def _accepted(self, now: float) -> None:
        """A command was accepted (lock held): the watchdog is fed and the stream goes on."""
        self.watchdog.feed(now)
        self._stream += 1
        self.stall_since = None

    def _end_stream(self) -> None:
        """The episode was ended on purpose (reset, home, disable, e-stop): a hold now is no stall."""
        self._stream = 0
        self.stall_since = None

    # --- the control period (control thread) -------------------------------------------------
    def took_command(self, gripper: float) -> bool:
        """Whether this tick took a target or set a new gripper command (`gripper`: its set point's), so that a row
        for `arm/commands_taken` is due: a replay hands each command over at the tick the live arm took it, not
        at its stamp, so a target that arrived late under load is replayed late too."""
        if self.taken_stamp is None and gripper == self._gripper_taken:
            return False
        self._gripper_taken = gripper
        return True

    def tick(self, state: RobotState) -> Setpoint:
        """The set point for this control period, from the measured `state`."""
        now = self.monotonic()
        self.stats.tick(now)
        self.taken_latency = self.taken_stamp = None
        with self._lock:
            if self.setpoint is None:
                self._seed_setpoint(state)
            target, self._target = self._target, None
            chunk, gripper = self._chunk, self._gripper
            estop, enabled, go_home = self.estop, self.enabled, self._go_home
            self.command_age = self.watchdog.age(now)
            self._go_home = False
        velocity = self._tcp_velocity(state)
        if estop or not enabled:
            self._hold("estop" if estop else "disabled")
            return self._sent(state, velocity, gripper)
        if go_home or self.mode == "home":
            return self._home_tick(state, go_home, gripper)
        if self.mode == "unwind":
            setpoint = self._unwind_tick(state, now, target, chunk, gripper)
            if setpoint is not None:
                return setpoint
        # Each new goal starts from the set point actually sent, which the reach filter or the box may have held
        # short of where the interpolator had got to.
        if target is not None:
            self.taken_stamp = target[2]
            self.taken_latency = self.clock() - target[2]                # stamp to the tick that uses it
            self.command_latency.append(self.taken_latency)
            self.pose_interp.reset(*self.setpoint)
            self.pose_interp.set_goal(target[0], target[1], self._command_period)
            self._goal = (target[0], target[1])
            self.mode = "target"
        elif chunk is not None:
            t = self.clock()
            pos, quat, gripper = chunk_target_at(chunk, t)
            # The chunk's gripper command is the gripper command until another comes: a hold that follows (the
            # watchdog, an e-stop) keeps the grasp instead of going back to an older gripper command.
            self._gripper = gripper
            self.pose_interp.reset(*self.setpoint)
            self.pose_interp.set_goal(pos, quat, self.dt)
            self._goal = (pos, quat)
            self.mode = "chunk"
            if t <= chunk.times[-1]:
                self.watchdog.feed(now)          # a chunk with steps ahead is a fresh command; past its end it is not
        if self.mode in ("target", "chunk") and self.watchdog.expired(now):
            self._watchdog_hold(now, chunk)
        self.safety.observe_tcp(state.ee_pos, self.dt)
        if self.mode == "hold":
            self.pose_interp.reset(*self.setpoint)
            pos, quat = self.setpoint
        else:
            pos, quat = self.pose_interp.step()
            pos = self.safety.limit_contact(self.safety.clip_to_box(pos), state.ee_pos, state.wrench[:3])
            pos, quat = self.reach.step(pos, quat, state.q)
            pos, quat = self.safety.limit_step(self.setpoint[0], self.setpoint[1], pos, quat, self.dt)
            # The measured arm can still be inside a margin (its configuration differs from the reference's for the
            # same pose, or it was pushed): no set point step takes it deeper. The step keeps what the other joints
            # can do (`_step_clear_of_joint_limits`); refusing all of it stranded the arm for good wherever the
            # short way to the goal orientation ran through a joint's limit (6 of 20 storms in `bench envelope`).
            held = self.reach.saturated
            if self._pushes_into_joint_limit(state, pos, quat):
                self.safety.events.add("joint_margin_hold")
                pos, quat = self._step_clear_of_joint_limits(state, pos, quat)
                held = True
            self._watch_progress(state, pos, quat, held)
        self.setpoint = (pos, quat)
        return self._sent(state, velocity, gripper)

    def _sent(self, state: RobotState, velocity: np.ndarray | None, gripper: float) -> Setpoint:
        """What goes to the arm: the set point, drawn to within `max_lead` of the measured TCP (and only braking it
        while the TCP is over the speed limit), kept in the box. Only what is sent is drawn in, as SERL clips the
        error inside its impedance law: the set point itself stays on its path, so an arm pushed off it (a contact,
        a joint at its limit) is pulled back toward the path and not followed. A set point that followed the TCP
        let the arm wander into the table in 5 of 20 storms."""
        pos, quat = self.safety.limit_lead(*self.setpoint, state.ee_pos, state.ee_quat, velocity)
        return Setpoint("pose", self.safety.clip_to_box(pos), quat, None, gripper)

    def _tcp_velocity(self, state: RobotState) -> np.ndarray | None:
        """The measured TCP's velocity from this state and the last (their stamps); None across a gap or a reset."""
        last, self._last_tcp = self._last_tcp, (state.stamp, state.ee_pos.copy())
        if last is None:
            return None
        elapsed = state.stamp - last[0]
        if not 0.0 < elapsed <= 5 * self.dt:
            return None
        return (state.ee_pos - last[1]) / elapsed

    def _seed_setpoint(self, state: RobotState) -> None:
        """Set point, interpolator and reach reference at the measured pose: no motion."""
        self.setpoint = self.reach.reset(state.q, state.ee_pos, state.ee_quat)
        self.pose_interp.reset(*self.setpoint)

    def _watchdog_hold(self, now: float, chunk: ActionChunk | None) -> None:
        """Commands stopped: hold where the set point is. A chunk past its end is over, not paused."""
        self.mode = "hold"
        self.stuck.reset()
        with self._lock:
            if chunk is not None and self._chunk is chunk:
                self._chunk = None
            stalled = self._stream >= 2 and self.stall_since is None
            self._stream = 0
            if stalled:
                self.stall_since = now
                self._stalls_unreported += 1
        self.safety.events.add("watchdog_hold", f"no command for {self.command_age:.3f} s")
        if stalled:
            self.safety.events.add("command_stall", f"commands stopped mid-episode; holding after "
                                                    f"{self.command_age:.3f} s")
            if self.on_stall is not None:
                self.on_stall(self.command_age)

    def _watch_progress(self, state: RobotState, pos, quat, held: bool) -> None:
        """When the set point is stuck short of its goal at the joint limits, plan a way out (a few IK iterations a
        period, `unwind.UnwindPlanner`) and, once planned and still wanted, start playing it (`_unwind_tick`)."""
        if self._goal is None:
            return
        if self._planning is None:
            # progress is measured toward one goal: a goal that moves on (a storm, a teleop hand) starts it again
            if self._stuck_goal is None or pose_distance(*self._goal, *self._stuck_goal) > UNWIND_GOAL_CHANGE:
                self.stuck.reset()
                self._stuck_goal = self._goal
            if self.stuck.update(pose_distance(pos, quat, *self._goal), held):
                via_home = self._blocked_goal is not None and \
                    pose_distance(*self._goal, *self._blocked_goal) <= UNWIND_GOAL_CHANGE
                self._planning = (self._goal, self.unwind_planner.plan(state.q, state.ee_pos, state.ee_quat,
                                                                       *self._goal, via_home=via_home))
            return
        goal, planning = self._planning
        try:
            next(planning)
            return
        except StopIteration as done:
            path = done.value
        self._planning = None
        self.stuck.reset()
        if path is None:
            self.safety.events.add("unwind_failed", f"no joint path to {np.round(goal[0], 3).tolist()} in the box")
            return
        if pose_distance(*goal, *self._goal) > UNWIND_GOAL_CHANGE:
            return                                          # the goal moved on while planning
        self.safety.events.add("unwind", f"stuck short of {np.round(goal[0], 3).tolist()}: joint path over "
                                         f"{len(path.waypoints)} waypoint(s), {sum(path.durations):.1f} s")
        self._unwind = (goal, JointPathPlayer(state.q, path, self.dt), [0])
        self.mode = "unwind"

    def _unwind_tick(self, state: RobotState, now: float, target, chunk, gripper: float) -> Setpoint | None:
        """One period of the joint path out of a stuck configuration. It is dropped for a new goal (the path was for
        the old one) and when commands stop (the arm does not move on its own); once over, the set point starts
        from the measured pose and None is returned."""
        if target is not None:
            self._goal = (target[0], target[1])
        elif chunk is not None:
            t = self.clock()
            self._goal = chunk_target_at(chunk, t)[:2]
            if t <= chunk.times[-1]:
                self.watchdog.feed(now)
        aim, player, settling = self._unwind
        over = pose_distance(*self._goal, *aim) > UNWIND_GOAL_CHANGE
        if not over and self.watchdog.expired(now):
            self._watchdog_hold(now, chunk)
            over = True
        if not over:
            q = player.step(state.q)
            if player.done:
                settling[0] += 1
            # over once the arm is there, or when it cannot get on (blocked): the set point then holds where it is
            over = (player.done and np.abs(state.q - q).max() < 0.01) or \
                max(settling[0] * self.dt, player.waiting) > UNWIND_SETTLE
            if player.waiting > UNWIND_SETTLE:
                self._blocked_goal = aim
                self.safety.events.add("unwind_failed", f"the arm was held {player.waiting:.1f} s on the path")
            if not over:
                return Setpoint("joints", self.setpoint[0], self.setpoint[1], q, gripper)
        self._unwind = None
        self.mode = "hold"
        self._seed_setpoint(state)
        self.stuck.reset()
        return None

    def _hold(self, reason: str) -> None:
        if self.mode != reason:
            self.mode = reason
            self.pose_interp.reset(*self.setpoint)

    def _home_tick(self, state: RobotState, start: bool, gripper: float) -> Setpoint:
        if start or self.mode != "home":
            self.joint_interp.reset(state.q)
            self.joint_interp.set_goal(self.safety.clip_joints(self.spec.q_home), 0.0)
            self.mode = "home"
        q = self.joint_interp.step()
        if not self.joint_interp.moving and np.abs(state.q - q).max() < 0.01:
            self.mode = "hold"
            self._seed_setpoint(state)
        return Setpoint("joints", self.setpoint[0], self.setpoint[1], q, gripper)

    def _step_twist(self, pos, quat) -> np.ndarray:
        twist = np.empty(6)
        twist[:3] = pos - self.setpoint[0]
        twist[3:] = tf.rotation_error(quat, self.setpoint[1])
        return twist

    def _joint_step(self, jac: np.ndarray, twist: np.ndarray) -> np.ndarray:
        """The joint motion of a step: damped least squares, J^T (J J^T + l^2 I)^-1 twist, a 6x6 solve where pinv's
        SVD was a sixth of the loop's CPU near a limit; the damping keeps it bounded near singularities."""
        return jac.T @ np.linalg.solve(jac @ jac.T + self._limit_damping, twist)

    def _deeper(self, state: RobotState, near: np.ndarray, dq: np.ndarray) -> np.ndarray:
        """The joints of `near` that `dq` drives further into their margins."""
        return near[dq[near] * np.sign(state.q[near] - self._joint_mid[near]) > 1e-9]

    def _pushes_into_joint_limit(self, state: RobotState, pos, quat) -> bool:
        """Whether the step from the set point to (pos, quat) drives a joint inside its margin further in."""
        near = self.safety.joints_near_limits(state.q)
        if near.size == 0:
            return False
        dq = self._joint_step(self.kinematics.jacobian(state.q), self._step_twist(pos, quat))
        return bool(self._deeper(state, near, dq).size)

    def _step_clear_of_joint_limits(self, state: RobotState, pos, quat):
        """A step that drives no joint further into its margin, toward the step asked for: its translation alone
        (the hand keeps its orientation), solved again without the columns of the joints it drove deeper (as IK
        clamps a saturated joint) until it drives none deeper, and taken only if it still goes the way asked. The
        orientation waits: the short way to the goal orientation is what ran into the limit. Damped least squares
        never gives more than was asked, so the step keeps within the speed limit (and, from a set point in the
        box, clipping into it only shortens it). Otherwise the set point holds."""
        near = self.safety.joints_near_limits(state.q)
        jac = self.kinematics.jacobian(state.q)
        twist = np.zeros(6)
        twist[:3] = pos - self.setpoint[0]
        free = np.ones(jac.shape[1], dtype=bool)
        for _ in range(near.size + 1):
            dq = np.zeros(jac.shape[1])
            dq[free] = self._joint_step(jac[:, free], twist)
            deeper = self._deeper(state, near, dq)
            if deeper.size == 0:
                done = jac @ dq
                if float(done[:3] @ twist[:3]) <= 0.5 * float(twist[:3] @ twist[:3]):
                    break                                   # the joints left cannot go the way asked
                return (self.safety.clip_to_box(self.setpoint[0] + done[:3]),
                        tf.quat_mul(tf.axis_angle_to_quat(done[3:]), self.setpoint[1]))
            free[deeper] = False
            if not free.any():
                break
        return self.setpoint
