"""FrankaDriver: a Panda (or FR3) under Cartesian pose control at 1 kHz through pylibfranka.

The arm node owns the loop: `read_state()` calls the active control's `readOnce()`, which
blocks until the robot's next 1 kHz tick, and `command_pose()` answers that same tick with
`writeOnce(CartesianPose)`. libfranka stops the robot with a communication-constraints
reflex when a tick goes unanswered, so every read must be followed by one command.

pylibfranka API used here, as bound in frankarobotics/libfranka pylibfranka/src/pylibfranka.cpp
and shown in pylibfranka/examples/cartesian_pose_example.py:
  Robot(robot_ip_address, realtime_config=RealtimeConfig.kEnforce)
  Robot.set_collision_behavior(lower_torque[7], upper_torque[7], lower_force[6], upper_force[6])
  Robot.start_cartesian_pose_control(ControllerMode) / start_joint_position_control(ControllerMode)
      -> ActiveControlBase, whose methods are camelCase in the bindings:
  ActiveControlBase.readOnce() -> (RobotState, Duration); ActiveControlBase.writeOnce(command)
  CartesianPose(O_T_EE: 16 floats, column-major), JointPositions(q: 7 floats), both with .motion_finished
  Robot.read_once() (outside a control loop), Robot.stop(), Robot.automatic_error_recovery()
  RobotState.O_T_EE (column-major), .O_T_EE_c, .q, .q_d, .dq, .tau_J, .O_F_ext_hat_K,
      .current_errors (falsy when none), .time (Duration; .to_sec())
  Gripper(address): move(width, speed), grasp(width, speed, force, epsilon_inner, epsilon_outer),
      read_once() -> GripperState(.width, .max_width, ...)
  Exceptions: FrankaException (an Exception) and CommandException, NetworkException,
      ControlException, InvalidOperationException, RealtimeException, each registered with
      RuntimeError as its base -- they are NOT subclasses of FrankaException, so all are caught.
Not confirmed from source: that a finished Cartesian motion (motion_finished=True) can be followed
at once by start_joint_position_control on the same Robot (libfranka allows one motion at a time
and a finished one releases it); pylibfranka has no close(): the connection ends when the Robot
object is destroyed, so disconnecting here means stopping motion and dropping every reference.
"""
from __future__ import annotations

import importlib
import time
from typing import Callable

import numpy as np

from robot_stack import transforms as tf
from robot_stack.drivers.base import ArmDriver, DriverError
from robot_stack.drivers.common import ClockSync, GripperWorker
from robot_stack.drivers.franka.config import FrankaConfig
from robot_stack.drivers.registry import register_arm_driver
from robot_stack.robots.spec import get_robot
from robot_stack.types import RobotState

# what a missing vendor library's error tells the user to run: the extra that brings it (setup.py)
INSTALL = "pip install 'robot_stack[franka]'"

VENDOR_EXCEPTIONS = ("FrankaException", "CommandException", "NetworkException", "ControlException",
                     "InvalidOperationException", "RealtimeException")


@register_arm_driver("franka", FrankaConfig)
class FrankaDriver(ArmDriver):
    """A Franka arm and Hand behind the ArmDriver interface (see the module docstring for the API)."""

    def __init__(self, config: FrankaConfig | None = None, clock: Callable[[], float] = time.time, vendor=None):
        self.config = config or FrankaConfig()
        self.spec = spec = get_robot(self.config.robot)
        self.clock = clock                        # host clock the stamps are put on (ROS time in the node)
        self._vendor = vendor                     # injected pylibfranka module; imported in connect() otherwise
        self._fr = None
        self._errors: tuple[type[BaseException], ...] = (RuntimeError,)
        self._robot = None
        self._gripper = None
        self._worker: GripperWorker | None = None
        self._control = None
        self._control_kind: str | None = None     # "cartesian" or "joints"
        self._last = None                         # last vendor RobotState
        self._stopped = False
        self._error: str | None = None
        self._sync = ClockSync(clock)
        self._gripper_sent: float | None = None
        self._max_width = 2 * spec.gripper.max_opening

    # --- connection --------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._robot is not None

    def _where(self) -> str:
        return f"Franka at {self.config.ip}"

    def _import(self):
        if self._vendor is not None:
            return self._vendor
        try:
            return importlib.import_module("pylibfranka")
        except ImportError as exc:
            raise DriverError(f"{self._where()}: pylibfranka is not installed ({INSTALL}): {exc}") from exc

    def _call(self, what: str, fn, *args):
        """Call into pylibfranka; its exceptions come back as DriverError naming the robot."""
        try:
            return fn(*args)
        except DriverError:
            raise
        except self._errors as exc:
            raise DriverError(f"{self._where()}: {what} failed: {type(exc).__name__}: {exc}") from exc

    def connect(self) -> None:
        if self.connected:
            return
        if not self.config.ip:
            raise DriverError("Franka: no robot IP configured (robot_ip)")
        fr = self._fr = self._import()
        self._errors = tuple(getattr(fr, n) for n in VENDOR_EXCEPTIONS if hasattr(fr, n)) + (RuntimeError,)
        c = self.config
        try:
            realtime = fr.RealtimeConfig.kEnforce if c.enforce_realtime else fr.RealtimeConfig.kIgnore
            self._robot = self._call("connect", fr.Robot, c.ip, realtime)
            # Thresholds first: a control started before them would run on the robot's defaults.
            self._call("set_collision_behavior", self._robot.set_collision_behavior,
                       list(c.lower_torque_thresholds), list(c.upper_torque_thresholds),
                       list(c.lower_force_thresholds), list(c.upper_force_thresholds))
            if c.gripper:
                self._gripper = self._call("gripper connect", fr.Gripper, c.ip)
                hand = self._call("gripper read_once", self._gripper.read_once)
                if hand.max_width > 0:            # measured at homing; the spec is the fallback
                    self._max_width = float(hand.max_width)
            self._start_control("cartesian")
            self._last = None
            self._stopped, self._error, self._gripper_sent = False, None, None
            if self._gripper is not None:
                self._worker = GripperWorker(self._send_gripper, self._read_gripper_width,
                                             c.gripper_state_hz, name=f"franka-hand-{c.ip}")
        except BaseException:
            self._release()
            raise

    def disconnect(self) -> None:
        self._release()

    def _release(self) -> None:
        """Stop motion, stop the gripper threads and drop every vendor object (this closes the sockets)."""
        if self._worker is not None:
            self._worker.close()
        robot, control = self._robot, self._control
        self._worker = self._gripper = self._robot = self._control = self._control_kind = None
        if robot is not None and control is not None:
            try:
                robot.stop()
            except self._errors:
                pass                             # going away regardless; the robot stops on lost packets

    # --- control -----------------------------------------------------------------------------
    def _start_control(self, kind: str) -> None:
        fr = self._fr
        mode = (fr.ControllerMode.CartesianImpedance if self.config.controller_mode == "cartesian_impedance"
                else fr.ControllerMode.JointImpedance)
        start = self._robot.start_cartesian_pose_control if kind == "cartesian" \
            else self._robot.start_joint_position_control
        self._control = self._call(f"start {kind} control", start, mode)
        self._control_kind = kind

    def _lose_control(self, what: str, exc: BaseException) -> DriverError:
        """A failed read/write ends libfranka's motion: forget it until recover()."""
        self._control, self._control_kind = None, None
        self._error = f"{what}: {type(exc).__name__}: {exc}"
        return DriverError(f"{self._where()}: {self._error}; call recover()")

    def _require(self):
        if self._robot is None:
            raise DriverError(f"{self._where()}: not connected")
        return self._robot

    def read_state(self) -> RobotState:
        robot = self._require()
        if self._control is not None:
            try:
                state, _period = self._control.readOnce()
            except self._errors as exc:
                raise self._lose_control("readOnce", exc) from exc
        else:                                    # stopped or after an error: keep reporting
            state = self._call("read_once", robot.read_once)
        self._last = state
        return self._to_robot_state(state)

    def _to_robot_state(self, s) -> RobotState:
        t = np.asarray(s.O_T_EE, dtype=float).reshape(4, 4).T       # column-major -> matrix
        worker = self._worker
        width = worker.width if worker is not None and worker.width is not None else 0.0
        if self._stopped:
            mode = "stopped"
        elif self._error or bool(s.current_errors):
            mode = "error"
        else:
            mode = "ok"
        return RobotState(
            stamp=self._sync.stamp(s.time.to_sec()),
            q=np.array(s.q, dtype=float), dq=np.array(s.dq, dtype=float),
            ee_pos=t[:3, 3].copy(), ee_quat=tf.mat_to_quat(t[:3, :3]),
            gripper_width=float(width),
            wrench=np.array(s.O_F_ext_hat_K, dtype=float),          # external wrench on the TCP, base frame
            tau=np.array(s.tau_J, dtype=float), mode=mode)

    def _check_commandable(self) -> None:
        self._require()
        if self._stopped:
            raise DriverError(f"{self._where()}: stopped; call recover() to accept commands again")
        if self._control is None:
            raise DriverError(f"{self._where()}: {self._error or 'no active control'}; call recover()")
        worker = self._worker
        if worker is not None and worker.error is not None:
            exc, worker.error = worker.error, None
            raise DriverError(f"{self._where()}: gripper failed: {type(exc).__name__}: {exc}") from exc

    def _write(self, command) -> None:
        try:
            self._control.writeOnce(command)
        except self._errors as exc:
            raise self._lose_control("writeOnce", exc) from exc

    def _switch(self, kind: str) -> None:
        """Finish the running motion where it is, then start the other kind (a pause of tens of ms)."""
        fr, last = self._fr, self._last
        if last is None:
            raise DriverError(f"{self._where()}: read_state() must come before the first command")
        if self._control_kind == "cartesian":
            hold = fr.CartesianPose(list(np.asarray(last.O_T_EE_c, dtype=float)))
        else:
            hold = fr.JointPositions(list(np.asarray(last.q_d, dtype=float)))
        hold.motion_finished = True
        self._write(hold)
        self._start_control(kind)
        try:
            self._last, _ = self._control.readOnce()   # the new control's first tick, answered by the caller
        except self._errors as exc:
            raise self._lose_control("readOnce", exc) from exc

    def command_pose(self, pos, quat, gripper: float):
        self._check_commandable()
        pos = np.asarray(pos, dtype=float).reshape(3)
        quat = tf.normalize(quat)
        if not np.isfinite(pos).all():
            raise DriverError(f"{self._where()}: refusing a non-finite position {pos}")
        if self._control_kind != "cartesian":
            self._switch("cartesian")
        pose = tf.pose_to_mat(pos, quat)
        self._write(self._fr.CartesianPose(pose.flatten(order="F").tolist()))
        return pos, quat, self._command_gripper(gripper)

    def command_joints(self, q, gripper: float):
        self._check_commandable()
        q = np.asarray(q, dtype=float).reshape(self.spec.dof)
        if not np.isfinite(q).all():
            raise DriverError(f"{self._where()}: refusing non-finite joint positions {q}")
        if self._control_kind != "joints":
            self._switch("joints")
        self._write(self._fr.JointPositions(q.tolist()))
        return q, self._command_gripper(gripper)

    def stop(self) -> None:
        """Stop the running motion; the robot holds where it is and commands are refused until recover()."""
        if self._robot is None:
            return
        self._stopped = True
        if self._control is not None:
            self._control, self._control_kind = None, None
            self._call("stop", self._robot.stop)

    def recover(self) -> None:
        """automatic_error_recovery() (clears reflexes), then Cartesian pose control again."""
        robot = self._require()
        if self._control is not None and not self._stopped and self._error is None:
            return                                   # nothing to recover; a motion is running
        self._call("automatic_error_recovery", robot.automatic_error_recovery)
        self._start_control("cartesian")
        self._stopped, self._error = False, None
        if self._worker is not None:
            self._worker.error = None

    # --- gripper -----------------------------------------------------------------------------
    def _command_gripper(self, command: float) -> float:
        """Clip to [0, 1] and hand over to the gripper thread only when the command changes."""
        g = float(np.clip(command, 0.0, 1.0)) if np.isfinite(command) else (self._gripper_sent or 0.0)
        if self._worker is None:
            return g
        last = self._gripper_sent
        thr = self.config.grasp_threshold
        if last is None or abs(g - last) > self.config.gripper_deadband or (g >= thr) != (last >= thr):
            self._gripper_sent = g
            self._worker.submit(g)
        return g

    def _send_gripper(self, command: float) -> None:
        """On the gripper thread: grasp (force-controlled) to close, move (position) otherwise."""
        c = self.config
        width = self._max_width * (1.0 - command)
        if command >= c.grasp_threshold:
            self._gripper.grasp(width, c.gripper_speed, c.grasp_force, c.grasp_epsilon_inner, c.grasp_epsilon_outer)
        else:
            self._gripper.move(width, c.gripper_speed)

    def _read_gripper_width(self) -> float:
        return self._gripper.read_once().width

    def wait_gripper_idle(self, timeout: float = 5.0) -> bool:
        """Block until the last gripper command has been sent (for scripts and tests)."""
        return self._worker.wait_idle(timeout) if self._worker is not None else True
