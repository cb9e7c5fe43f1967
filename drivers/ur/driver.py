"""URDriver: a UR e-Series arm servoed in Cartesian space at 500 Hz through ur_rtde.

One tick is one read_state()/command pair: read_state() waits out the rest of the previous
period (waitPeriod), starts the next (initPeriod), kicks the RTDE watchdog and reads the
receive interface; command_pose() sends servoL with dt = 1/frequency, so the robot
interpolates toward the target over exactly one period.

ur_rtde API used here, as bound in src/rtde_python_bindings.cpp (SDU Robotics ur_rtde; read
from the medra-ai/ur_rtde copy) with signatures from include/ur_rtde/rtde_control_interface.h:
  rtde_receive.RTDEReceiveInterface(hostname, frequency=-1.0, ...)
    getActualTCPPose() [x, y, z, rx, ry, rz] (axis-angle), getActualQ(), getActualQd(),
    getActualTCPForce(), getSpeedScaling(), getTimestamp() (s since the controller started),
    isProtectiveStopped(), isEmergencyStopped(), disconnect()
  rtde_control.RTDEControlInterface(hostname, frequency=-1.0, flags, ur_cap_port, rt_priority)
    servoL(pose, speed, acceleration, time, lookahead_time, gain) -> bool   (positional only)
    servoJ(q, speed, acceleration, time, lookahead_time, gain) -> bool      (positional only)
    servoStop(a=10.0), initPeriod() -> time point, waitPeriod(t_cycle_start),
    setWatchdog(min_frequency=10.0), kickWatchdog(), setTcp(tcp_offset),
    isProgramRunning(), reuploadScript(), stopScript(), disconnect()
  rtde_io.RTDEIOInterface(hostname, ...).setToolDigitalOut(output_id, signal_level), disconnect()
  dashboard_client.DashboardClient(hostname, port=29999).connect(), unlockProtectiveStop(), disconnect()
  Errors are C++ std::runtime_error, which pybind11 raises as RuntimeError.
Not confirmed from source: the frame of getActualTCPForce (UR's RTDE guide calls it the TCP
wrench; taken here as expressed in the base frame like the rest of the pose data).
"""
from __future__ import annotations

import importlib
import time
from typing import Callable

import numpy as np

from robot_stack import transforms as tf
from robot_stack.drivers.base import ArmDriver, DriverError
from robot_stack.drivers.common import ClockSync, GripperWorker
from robot_stack.drivers.registry import register_arm_driver
from robot_stack.drivers.ur.config import URConfig
from robot_stack.robots.spec import get_robot
from robot_stack.types import RobotState

# what a missing vendor library's error tells the user to run: the extra that brings it (setup.py)
INSTALL = "pip install 'robot_stack[ur]'"

VENDOR_ERRORS = (RuntimeError, OSError)


def rotvec_near(quat, reference) -> np.ndarray:
    """The UR rotation vector of `quat` closest to `reference`.

    A rotation has two rotation vectors within one turn (angle a about n, and 2*pi - a
    about -n). Near half a turn -- a tool pointing down -- the short one flips sign between
    ticks; choosing the one nearest the robot's own reading keeps commands continuous.
    """
    r = tf.quat_to_axis_angle(quat)
    angle = float(np.linalg.norm(r))
    if angle < 1e-9 or reference is None:
        return r
    other = r * (1.0 - 2.0 * np.pi / angle)
    return other if np.linalg.norm(other - reference) < np.linalg.norm(r - reference) else r


def ur_pose(pos, quat, reference=None) -> list[float]:
    """Our (position, x-y-z-w quaternion) as a UR pose [x, y, z, rx, ry, rz]."""
    return [float(v) for v in np.concatenate((np.asarray(pos, dtype=float), rotvec_near(quat, reference)))]


def from_ur_pose(pose) -> tuple[np.ndarray, np.ndarray]:
    """A UR pose [x, y, z, rx, ry, rz] as (position, x-y-z-w quaternion)."""
    p = np.asarray(pose, dtype=float)
    return p[:3].copy(), tf.axis_angle_to_quat(p[3:6])


@register_arm_driver("ur", URConfig)
class URDriver(ArmDriver):
    """A UR arm behind the ArmDriver interface (see the module docstring for the API)."""

    def __init__(self, config: URConfig | None = None, clock: Callable[[], float] = time.time,
                 modules: dict | None = None):
        self.config = config or URConfig()
        self.spec = spec = get_robot(self.config.robot)
        self.clock = clock
        self._modules = dict(modules or {})       # injected ur_rtde modules by name; imported otherwise
        self._recv = self._ctrl = self._io = None
        self._worker: GripperWorker | None = None
        self._t_cycle = None
        self._watchdog_armed = False
        self._stopped = False
        self._error: str | None = None
        self._protective = self._emergency = False
        self._measured_rotvec: np.ndarray | None = None
        self._sync = ClockSync(clock)
        self._gripper_sent: float | None = None
        self._max_width = 2 * spec.gripper.max_opening
        self.speed_scaling = 1.0                  # the pendant's speed slider times any safety scaling

    # --- connection --------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._ctrl is not None

    def _where(self) -> str:
        return f"UR at {self.config.ip}"

    def _import(self, name: str):
        if name in self._modules:
            return self._modules[name]
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            raise DriverError(f"{self._where()}: {name} is not available ({INSTALL}, which brings ur_rtde): {exc}") \
                from exc

    def _call(self, what: str, fn, *args):
        """Call into ur_rtde; its errors come back as DriverError naming the robot."""
        try:
            return fn(*args)
        except DriverError:
            raise
        except VENDOR_ERRORS as exc:
            raise DriverError(f"{self._where()}: {what} failed: {type(exc).__name__}: {exc}") from exc

    def connect(self) -> None:
        if self.connected:
            return
        c = self.config
        if not c.ip:
            raise DriverError("UR: no robot IP configured (robot_ip)")
        rtde_receive, rtde_control = self._import("rtde_receive"), self._import("rtde_control")
        rtde_io = self._import("rtde_io") if c.gripper == "tool_digital_out" else None
        try:
            # Receive first: it only reads, so a refused control connection leaves nothing moving.
            self._recv = self._call("RTDEReceiveInterface", rtde_receive.RTDEReceiveInterface, c.ip, c.frequency)
            self._ctrl = self._call("RTDEControlInterface", rtde_control.RTDEControlInterface, c.ip, c.frequency)
            if c.tcp_offset is not None:
                self._call("setTcp", self._ctrl.setTcp, list(c.tcp_offset))
            if rtde_io is not None:
                self._io = self._call("RTDEIOInterface", rtde_io.RTDEIOInterface, c.ip)
            if c.gripper != "none":
                self._worker = GripperWorker(self._send_gripper, c.gripper_width, 20.0, name=f"ur-gripper-{c.ip}")
            self._t_cycle, self._watchdog_armed = None, False
            self._stopped, self._error, self._gripper_sent = False, None, None
        except BaseException:
            self._release()
            raise

    def disconnect(self) -> None:
        errors = self._release()
        if errors:
            raise DriverError(f"{self._where()}: while disconnecting: {'; '.join(errors)}")

    def _release(self) -> list[str]:
        """Stop servoing and the script, close every interface; returns what failed (all are tried)."""
        errors = []
        if self._worker is not None:
            self._worker.close()
        ctrl, recv, io = self._ctrl, self._recv, self._io
        self._worker = self._ctrl = self._recv = self._io = None
        steps = []
        if ctrl is not None:
            steps += [("servoStop", ctrl.servoStop, self.config.stop_deceleration), ("stopScript", ctrl.stopScript),
                      ("control disconnect", ctrl.disconnect)]
        if io is not None:
            steps.append(("io disconnect", io.disconnect))
        if recv is not None:
            steps.append(("receive disconnect", recv.disconnect))
        for what, fn, *args in steps:
            try:
                fn(*args)
            except VENDOR_ERRORS as exc:
                errors.append(f"{what}: {exc}")
        return errors

    def _require(self):
        if self._ctrl is None:
            raise DriverError(f"{self._where()}: not connected")
        return self._ctrl, self._recv

    # --- control -----------------------------------------------------------------------------
    def read_state(self) -> RobotState:
        ctrl, recv = self._require()
        if self._t_cycle is not None:
            self._call("waitPeriod", ctrl.waitPeriod, self._t_cycle)     # the rest of the last period
        self._t_cycle = self._call("initPeriod", ctrl.initPeriod)
        if not self._watchdog_armed:
            # Armed with the loop's first tick, not at connect: the node's start-up would trip it.
            self._call("setWatchdog", ctrl.setWatchdog, self.config.watchdog_min_frequency)
            self._watchdog_armed = True
        self._call("kickWatchdog", ctrl.kickWatchdog)
        tcp = np.asarray(self._call("getActualTCPPose", recv.getActualTCPPose), dtype=float)
        pos, quat = from_ur_pose(tcp)
        self._measured_rotvec = tcp[3:6].copy()      # the robot's own sign convention, for rotvec_near
        q = np.array(self._call("getActualQ", recv.getActualQ), dtype=float)
        dq = np.array(self._call("getActualQd", recv.getActualQd), dtype=float)
        wrench = np.array(self._call("getActualTCPForce", recv.getActualTCPForce), dtype=float)
        self.speed_scaling = float(self._call("getSpeedScaling", recv.getSpeedScaling))
        stamp = self._sync.stamp(float(self._call("getTimestamp", recv.getTimestamp)))
        self._protective = bool(self._call("isProtectiveStopped", recv.isProtectiveStopped))
        self._emergency = bool(self._call("isEmergencyStopped", recv.isEmergencyStopped))
        if self._stopped:
            mode = "stopped"
        elif self._error or self._protective or self._emergency:
            mode = "error"
        else:
            mode = "ok"
        return RobotState(stamp=stamp, q=q, dq=dq, ee_pos=pos, ee_quat=quat, gripper_width=self._gripper_width(),
                          wrench=wrench, tau=None, mode=mode)

    def _check_commandable(self) -> None:
        self._require()
        if self._stopped:
            raise DriverError(f"{self._where()}: stopped; call recover() to accept commands again")
        if self._emergency:
            raise DriverError(f"{self._where()}: emergency stop engaged")
        if self._protective:
            raise DriverError(f"{self._where()}: protective stop; call recover()")
        if self._error:
            raise DriverError(f"{self._where()}: {self._error}; call recover()")
        worker = self._worker
        if worker is not None and worker.error is not None:
            exc, worker.error = worker.error, None
            raise DriverError(f"{self._where()}: gripper failed: {type(exc).__name__}: {exc}") from exc

    def _servo(self, name: str, fn, target: list[float]) -> None:
        c = self.config
        ok = self._call(name, fn, target, c.servo_speed, c.servo_acceleration, c.dt, c.servo_lookahead_time,
                        c.servo_gain)
        if ok is False:                              # the control script is not running (stopped, faulted)
            self._error = f"{name} refused (is the control script running?)"
            raise DriverError(f"{self._where()}: {self._error}; call recover()")

    def command_pose(self, pos, quat, gripper: float):
        self._check_commandable()
        pos = np.asarray(pos, dtype=float).reshape(3)
        quat = tf.normalize(quat)
        if not np.isfinite(pos).all():
            raise DriverError(f"{self._where()}: refusing a non-finite position {pos}")
        self._servo("servoL", self._ctrl.servoL, ur_pose(pos, quat, self._measured_rotvec))
        return pos, quat, self._command_gripper(gripper)

    def command_joints(self, q, gripper: float):
        self._check_commandable()
        q = np.asarray(q, dtype=float).reshape(self.spec.dof)
        if not np.isfinite(q).all():
            raise DriverError(f"{self._where()}: refusing non-finite joint positions {q}")
        self._servo("servoJ", self._ctrl.servoJ, q.tolist())
        return q, self._command_gripper(gripper)

    def stop(self) -> None:
        """servoStop(): decelerate and hold; commands are refused until recover()."""
        if self._ctrl is None:
            return
        self._stopped = True
        self._call("servoStop", self._ctrl.servoStop, self.config.stop_deceleration)

    def recover(self) -> None:
        """Clear what the API allows: a protective stop (if configured) and a stopped control script."""
        ctrl, recv = self._require()
        if self._call("isEmergencyStopped", recv.isEmergencyStopped):
            raise DriverError(f"{self._where()}: emergency stop engaged; release it on the pendant, then recover()")
        if self._call("isProtectiveStopped", recv.isProtectiveStopped):
            if not self.config.unlock_protective_stop:
                raise DriverError(f"{self._where()}: protective stop; clear it on the pendant (or set "
                                  f"unlock_protective_stop), then recover()")
            self._unlock_protective_stop()
        if not self._call("isProgramRunning", ctrl.isProgramRunning):
            self._call("reuploadScript", ctrl.reuploadScript)
            if self.config.tcp_offset is not None:      # the TCP lives in the script
                self._call("setTcp", ctrl.setTcp, list(self.config.tcp_offset))
            self._watchdog_armed = False                # so is the watchdog: re-armed on the next tick
        self._t_cycle = None
        self._stopped, self._error, self._protective = False, None, False
        if self._worker is not None:
            self._worker.error = None

    def _unlock_protective_stop(self) -> None:
        dashboard = self._import("dashboard_client").DashboardClient
        client = self._call("DashboardClient", dashboard, self.config.ip)
        try:
            self._call("dashboard connect", client.connect)
            self._call("unlockProtectiveStop", client.unlockProtectiveStop)
        finally:
            try:
                client.disconnect()
            except VENDOR_ERRORS:
                pass

    # --- gripper -----------------------------------------------------------------------------
    def _command_gripper(self, command: float) -> float:
        """Clip to [0, 1] and hand over to the gripper thread only when the command changes."""
        g = float(np.clip(command, 0.0, 1.0)) if np.isfinite(command) else (self._gripper_sent or 0.0)
        if self._worker is None:
            self._gripper_sent = g
            return g
        last, thr = self._gripper_sent, self.config.gripper_threshold
        if last is None or abs(g - last) > self.config.gripper_deadband or (g >= thr) != (last >= thr):
            self._gripper_sent = g
            self._worker.submit(g)
        return g

    def _send_gripper(self, command: float) -> None:
        c = self.config
        if c.gripper == "tool_digital_out":
            closed = command >= c.gripper_threshold
            self._io.setToolDigitalOut(c.gripper_tool_output, closed == c.gripper_closed_level)
        else:
            c.gripper_command(command)

    def _gripper_width(self) -> float:
        """Measured when a width reader is configured, else the width the last command asked for."""
        if self.config.gripper == "none":
            return 0.0
        worker = self._worker
        if worker is not None and worker.width is not None:
            return float(worker.width)
        g = self._gripper_sent or 0.0
        if self.config.gripper == "tool_digital_out":
            g = 1.0 if g >= self.config.gripper_threshold else 0.0
        return self._max_width * (1.0 - g)

    def wait_gripper_idle(self, timeout: float = 5.0) -> bool:
        """Block until the last gripper command has been sent (for scripts and tests)."""
        return self._worker.wait_idle(timeout) if self._worker is not None else True
