"""Ros2ControlDriver: the arm node's safety-checked set points to a running ros2_control JointTrajectoryController.

A lab that already runs franka_ros2 or the Universal Robots ROS 2 driver keeps it: its controller_manager runs
the hard real-time loop, and this driver feeds its JointTrajectoryController (JTC) through the controller's
standard topic, `/<controller>/joint_trajectory` (trajectory_msgs/JointTrajectory), with the measured state from
`/joint_states` (sensor_msgs/JointState, mapped by joint name).

Per control period `command_pose()` takes the controller's set point, which has passed the safety envelope.
Every `publish_hz` (decimated from the control rate) the newest one becomes joint positions (damped least
squares IK from the measured joints, `ik.py`) and goes out as a trajectory of one point, `point_time` ahead.
One point, not a horizon: the points are exactly the set points the envelope passed, where a horizon would
have to extrapolate set points nobody checked; the JTC interpolates between its current desired state and the
point, and a new message replaces the old trajectory, so with `point_time` a little over the publish period it
is always moving toward the newest set point (MoveIt Servo feeds a JTC the same way). If the points stop (a
fault, a stall, this process dies), the JTC reaches the last one and holds there.

Nothing non-finite, outside the joint limits, or further from the last point than the joint speed limits
allow (an IK branch flip) is ever published: such a target is a DriverError, which the arm node turns into a
latched fault and a hold. A /joint_states older than `stale_after` (or only the arm node's own echo of it,
see `state_publisher`) makes read_state() report mode "error" and every command a DriverError, latched as
the Franka driver latches a reflex: until fresh states come back and recover() is called.

Not covered: the FollowJointTrajectory action (control_msgs has no PyPI wheel, and the stack's rule is no
message packages that need a colcon build), the wrench (zeros: franka_ros2 reports it in franka_msgs), and a
gripper beyond a JointGroupPositionController topic.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from robot_stack.drivers.base import ArmDriver, DriverError
from robot_stack.drivers.common import ClockSync, Pacer
from robot_stack.drivers.registry import register_arm_driver
from robot_stack.drivers.ros2_control.config import Ros2ControlConfig
from robot_stack.drivers.ros2_control.ik import DampedLeastSquaresIK, IKError
from robot_stack.robots.kinematics import Kinematics
from robot_stack.robots.spec import get_robot
from robot_stack.types import RobotState

JUMP_FACTOR = 2.0       # a step over this many times what the speed limits allow since the last point is a jump


@register_arm_driver("ros2_control", Ros2ControlConfig)
class Ros2ControlDriver(ArmDriver):
    """An arm behind a ros2_control JointTrajectoryController (see the module docstring)."""

    def __init__(self, config: Ros2ControlConfig | None = None, clock: Callable[[], float] = time.time):
        self.config = c = config or Ros2ControlConfig()
        self.spec = spec = get_robot(c.robot)
        self.clock = clock
        self.kinematics = Kinematics(spec)
        self.q_min, self.q_max = np.array(spec.q_min), np.array(spec.q_max)
        self.dq_max = np.array(spec.dq_max)
        self.ik = DampedLeastSquaresIK(self.kinematics, self.q_min, self.q_max,
                                       position_tolerance=c.ik_position_tolerance,
                                       rotation_tolerance=c.ik_rotation_tolerance,
                                       iterations=c.ik_iterations, damping=c.ik_damping)
        self.bridge = None
        self._dt = 1.0 / spec.control_hz
        self._publish_period = 1.0 / c.publish_hz
        self.pacer = Pacer(self._dt)
        self._sync = ClockSync(clock)
        self._snap = None                        # the snapshot this tick's state came from
        self._stamp = 0.0
        self._stale: str | None = None           # why the measured state went stale; latched until recover()
        self._stopped = False
        self._last_target: np.ndarray | None = None       # the last joint point published
        self._last_publish: float | None = None           # time.monotonic() of it
        self._gripper_sent: float | None = None
        self.published = 0

    # --- connection --------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.bridge is not None

    def _where(self) -> str:
        return f"ros2_control {self.config.controller}"

    def connect(self) -> None:
        """Join the ROS graph on a context of our own and wait for the first /joint_states of the arm."""
        if self.connected:
            return
        from robot_stack.drivers.ros2_control.bridge import Ros2ControlBridge
        c = self.config
        self.bridge = bridge = Ros2ControlBridge(c)
        try:
            bridge.start()
            deadline = time.monotonic() + c.connect_timeout
            while bridge.latest is None:
                if time.monotonic() > deadline:
                    who = f" from {c.state_publisher}" if c.state_publisher else ""
                    raise DriverError(f"{self._where()}: no {c.state_topic}{who} with joints "
                                      f"{', '.join(c.joint_names)} within {c.connect_timeout} s (is the controller "
                                      f"manager running? `ros2 control list_controllers`; {bridge.ignored} "
                                      f"messages from other publishers ignored)")
                time.sleep(0.01)
        except BaseException:
            self.disconnect()
            raise
        self._stopped, self._last_target, self._last_publish, self._gripper_sent = False, None, None, None
        self.pacer.restart()

    def disconnect(self) -> None:
        bridge, self.bridge = self.bridge, None
        if bridge is not None:
            bridge.close()

    def _require(self):
        if self.bridge is None:
            raise DriverError(f"{self._where()}: not connected")
        return self.bridge

    # --- state ---------------------------------------------------------------------------------
    def read_state(self) -> RobotState:
        """Wait for the next control period (this driver paces the loop itself), then the newest joint state."""
        bridge = self._require()
        self.pacer.wait()
        snap = bridge.latest
        now = time.monotonic()
        if snap is not self._snap:
            self._snap = snap
            # The publisher's capture stamp on our clock; a message without a stamp counts from its receipt.
            self._stamp = self._sync.stamp(snap.stamp) if snap.stamp > 0 else self.clock() - (now - snap.received)
        age = now - snap.received
        limit = self.config.stale_after
        if age > limit and self._stale is None:          # latched: fresh states again do not clear it, recover() does
            self._stale = f"{self.config.state_topic} went stale ({age:.3f} s old, limit {limit} s)"
        pos, quat = self.kinematics.fk(snap.q)
        mode = "stopped" if self._stopped else ("error" if self._stale else "ok")
        return RobotState(stamp=self._stamp, q=snap.q.copy(), dq=snap.dq.copy(), ee_pos=pos, ee_quat=quat,
                          gripper_width=snap.gripper_width, wrench=np.zeros(6),
                          tau=None if snap.tau is None else snap.tau.copy(), mode=mode)

    # --- commands ------------------------------------------------------------------------------
    def _check_commandable(self) -> None:
        self._require()
        if self._stopped:
            raise DriverError(f"{self._where()}: stopped; call recover() to accept commands again")
        if self._stale:
            raise DriverError(f"{self._where()}: {self._stale}; call recover() (the controller holds its last point)")
        if self._snap is None:
            raise DriverError(f"{self._where()}: read_state() must come before the first command")

    def _due(self) -> bool:
        """Whether this period's set point goes out (one point per publish period)."""
        return self._last_publish is None or \
            time.monotonic() - self._last_publish >= self._publish_period - 0.5 * self._dt

    def command_pose(self, pos, quat, gripper: float):
        self._check_commandable()
        pos, quat = np.asarray(pos, dtype=float).reshape(3), np.asarray(quat, dtype=float).reshape(4)
        if not (np.isfinite(pos).all() and np.isfinite(quat).all()):
            raise DriverError(f"{self._where()}: refusing a non-finite set point {pos}, {quat}")
        if self._due():
            # Seeded from the last point sent (the measured joints before the first): damped least squares moves
            # least from its seed, so consecutive points stay on one branch of a 7-joint arm's redundancy. Seeded
            # from the measured joints, which lag the points, consecutive points can differ in the null space (the
            # likely cause of a 0.06 rad jump in 10 ms refused at start-up in one full test run).
            seed = self._last_target if self._last_target is not None else self._snap.q
            try:
                q = self.ik.solve(pos, quat, seed)
            except IKError as exc:
                raise DriverError(f"{self._where()}: set point {np.round(pos, 4).tolist()}: {exc}") from exc
            self._publish(q)
        return pos, quat, self._command_gripper(gripper)

    def command_joints(self, q, gripper: float):
        self._check_commandable()
        q = np.asarray(q, dtype=float).reshape(self.spec.dof)
        self._check_joints(q)                    # every period, published or not: a bad set point is reported at once
        if self._due():
            self._publish(q)
        return q, self._command_gripper(gripper)

    def _check_joints(self, q: np.ndarray) -> None:
        if not np.isfinite(q).all():
            raise DriverError(f"{self._where()}: refusing non-finite joint positions {q}")
        outside = np.flatnonzero((q < self.q_min) | (q > self.q_max))
        if outside.size:
            raise DriverError(f"{self._where()}: refusing joint positions outside the limits "
                              f"(joints {', '.join(self.config.joint_names[i] for i in outside)}): {q}")

    def _publish(self, q: np.ndarray) -> None:
        """The last check before the wire: finite, inside the limits, no jump; then one point, timed so no joint
        goes faster than speed_fraction of its limit from the last point."""
        self._check_joints(q)
        now = time.monotonic()
        reference = self._last_target if self._last_target is not None else self._snap.q
        elapsed = self._publish_period if self._last_publish is None else max(now - self._last_publish,
                                                                              self._publish_period)
        step = np.abs(q - reference)
        jump = step > JUMP_FACTOR * self.dq_max * elapsed + 1e-6
        if jump.any():
            i = int(np.argmax(step / self.dq_max))
            raise DriverError(f"{self._where()}: refusing a jump of {step[i]:.3f} rad in {self.config.joint_names[i]} "
                              f"{elapsed:.3f} s after the last point (an IK branch flip or a jump in the set points)")
        duration = max(self.config.point_time, float(np.max(step / (self.dq_max * self.config.speed_fraction))))
        self._require().publish_point(q, duration)
        self._last_target, self._last_publish = q.copy(), now
        self.published += 1

    def _command_gripper(self, command: float) -> float:
        g = float(np.clip(command, 0.0, 1.0)) if np.isfinite(command) else (self._gripper_sent or 0.0)
        fingers = self.config.gripper_joint_names
        if self.config.gripper_command_topic and fingers and (self._gripper_sent is None
                                                              or abs(g - self._gripper_sent) > 0.01):
            self._require().publish_gripper([self.spec.gripper.max_opening * (1.0 - g)] * len(fingers))
            self._gripper_sent = g
        return g

    def stop(self) -> None:
        """Hold where the arm is: one point at the measured joints (clipped into the limits), then refuse commands."""
        if self.bridge is None:
            return
        self._stopped = True
        snap = self.bridge.latest
        if snap is not None and self._stale is None:
            q = np.clip(snap.q, self.q_min, self.q_max)
            self.bridge.publish_point(q, self.config.point_time)
            self._last_target, self._last_publish = q, time.monotonic()

    def recover(self) -> None:
        """Accept commands again once /joint_states is current; the next point starts from the measured joints."""
        bridge = self._require()
        snap = bridge.latest
        age = time.monotonic() - snap.received
        if age > self.config.stale_after:
            raise DriverError(f"{self._where()}: {self.config.state_topic} is still stale ({age:.3f} s old); "
                              f"cannot recover")
        self._stopped, self._stale, self._last_target, self._last_publish = False, None, None, None
