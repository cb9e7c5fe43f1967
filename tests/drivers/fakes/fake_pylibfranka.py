"""A fake `pylibfranka` with the bindings' names and signatures (pylibfranka/src/pylibfranka.cpp).

Install with `monkeypatch.setitem(sys.modules, "pylibfranka", fake_pylibfranka)` after
`reset()`. The simulated robot tracks what it is told: the last Cartesian command becomes
the measured pose, time advances 1 ms per state read, as libfranka's 1 kHz loop does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tests.drivers.fakes import CallLog

LOG = CallLog()


# Exceptions: FrankaException has Exception as its base, the others RuntimeError (py::register_exception).
class FrankaException(Exception):
    pass


class CommandException(RuntimeError):
    pass


class NetworkException(RuntimeError):
    pass


class ControlException(RuntimeError):
    pass


class InvalidOperationException(RuntimeError):
    pass


class RealtimeException(RuntimeError):
    pass


class RealtimeConfig:
    kEnforce = "RealtimeConfig.kEnforce"
    kIgnore = "RealtimeConfig.kIgnore"


class ControllerMode:
    JointImpedance = "ControllerMode.JointImpedance"
    CartesianImpedance = "ControllerMode.CartesianImpedance"


class RobotMode:
    Other, Idle, Move, Guiding, Reflex, UserStopped, AutomaticErrorRecovery = (
        "Other", "Idle", "Move", "Guiding", "Reflex", "UserStopped", "AutomaticErrorRecovery")


def _array(values, n: int, what: str) -> np.ndarray:
    """pybind11 converts a sequence to std::array<double, n> or raises TypeError."""
    try:
        a = np.array([float(v) for v in values])
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what}: incompatible function arguments: {values!r}") from exc
    if a.shape != (n,):
        raise TypeError(f"{what}: expected {n} values, got {a.shape}")
    return a


class Duration:
    def __init__(self, seconds: float):
        self._s = float(seconds)

    def to_sec(self) -> float:
        return self._s


class Errors:
    def __init__(self, active: tuple[str, ...] = ()):
        self._active = tuple(active)

    def __bool__(self) -> bool:
        return bool(self._active)

    def __str__(self) -> str:
        return ", ".join(self._active)


def pose_column_major(pos, rot) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3] = rot
    t[:3, 3] = pos
    return t.flatten(order="F")


@dataclass
class RobotState:
    q: np.ndarray = field(default_factory=lambda: np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785]))
    q_d: np.ndarray = field(default_factory=lambda: np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785]))
    dq: np.ndarray = field(default_factory=lambda: np.zeros(7))
    tau_J: np.ndarray = field(default_factory=lambda: np.zeros(7))
    O_T_EE: np.ndarray = field(default_factory=lambda: pose_column_major([0.3, 0.0, 0.5], np.diag([1.0, -1.0, -1.0])))
    O_T_EE_c: np.ndarray = field(default_factory=lambda: pose_column_major([0.3, 0.0, 0.5], np.diag([1.0, -1.0, -1.0])))
    O_F_ext_hat_K: np.ndarray = field(default_factory=lambda: np.zeros(6))
    current_errors: Errors = field(default_factory=Errors)
    robot_mode: str = RobotMode.Idle
    time: Duration = field(default_factory=lambda: Duration(0.0))


class World:
    """The simulated robot behind the fake: what a read returns, what a write changes."""

    def __init__(self):
        self.state = RobotState()
        self.t = 100.0                         # robot clock (s since it booted)
        self.hand_width = 0.08
        self.hand_max_width = 0.08

    def tick(self) -> RobotState:
        self.t += 0.001
        s = self.state
        return RobotState(q=s.q.copy(), q_d=s.q_d.copy(), dq=s.dq.copy(), tau_J=s.tau_J.copy(),
                          O_T_EE=s.O_T_EE.copy(), O_T_EE_c=s.O_T_EE_c.copy(),
                          O_F_ext_hat_K=s.O_F_ext_hat_K.copy(), current_errors=s.current_errors,
                          robot_mode=s.robot_mode, time=Duration(self.t))


WORLD = World()


def reset() -> None:
    global LOG, WORLD
    LOG = CallLog()
    WORLD = World()


class CartesianPose:
    def __init__(self, O_T_EE):
        LOG.record("CartesianPose", O_T_EE)
        self.O_T_EE = _array(O_T_EE, 16, "CartesianPose")
        self.motion_finished = False


class JointPositions:
    def __init__(self, q):
        LOG.record("JointPositions", q)
        self.q = _array(q, 7, "JointPositions")
        self.motion_finished = False


class Torques:
    def __init__(self, tau_J):
        self.tau_J = _array(tau_J, 7, "Torques")
        self.motion_finished = False


class ActiveControlBase:
    def __init__(self, kind: str):
        self._kind = kind
        self._finished = False

    def readOnce(self):
        LOG.record("ActiveControlBase.readOnce")
        if self._finished:
            raise InvalidOperationException("motion already finished")
        return WORLD.tick(), Duration(0.001)

    def writeOnce(self, command):
        LOG.record("ActiveControlBase.writeOnce", command)
        expected = CartesianPose if self._kind == "cartesian" else JointPositions
        if not isinstance(command, expected):
            raise TypeError(f"writeOnce: a {self._kind} control takes {expected.__name__}, got {type(command).__name__}")
        if isinstance(command, CartesianPose):
            WORLD.state.O_T_EE = command.O_T_EE.copy()
            WORLD.state.O_T_EE_c = command.O_T_EE.copy()
        else:
            WORLD.state.q = command.q.copy()
            WORLD.state.q_d = command.q.copy()
        self._finished = command.motion_finished


class Robot:
    def __init__(self, robot_ip_address: str, realtime_config=RealtimeConfig.kEnforce):
        LOG.record("Robot", robot_ip_address, realtime_config)
        self.address = robot_ip_address

    def set_collision_behavior(self, lower_torque_thresholds, upper_torque_thresholds,
                               lower_force_thresholds, upper_force_thresholds):
        LOG.record("Robot.set_collision_behavior", lower_torque_thresholds, upper_torque_thresholds,
                   lower_force_thresholds, upper_force_thresholds)
        _array(lower_torque_thresholds, 7, "lower_torque_thresholds")
        _array(upper_torque_thresholds, 7, "upper_torque_thresholds")
        _array(lower_force_thresholds, 6, "lower_force_thresholds")
        _array(upper_force_thresholds, 6, "upper_force_thresholds")

    def start_cartesian_pose_control(self, control_type):
        LOG.record("Robot.start_cartesian_pose_control", control_type)
        return ActiveControlBase("cartesian")

    def start_joint_position_control(self, control_type):
        LOG.record("Robot.start_joint_position_control", control_type)
        return ActiveControlBase("joints")

    def start_torque_control(self):
        LOG.record("Robot.start_torque_control")
        return ActiveControlBase("torque")

    def read_once(self) -> RobotState:
        LOG.record("Robot.read_once")
        return WORLD.tick()

    def automatic_error_recovery(self) -> None:
        LOG.record("Robot.automatic_error_recovery")
        WORLD.state.current_errors = Errors()
        WORLD.state.robot_mode = RobotMode.Idle

    def stop(self) -> None:
        LOG.record("Robot.stop")


@dataclass
class GripperState:
    width: float
    max_width: float
    is_grasped: bool = False
    temperature: int = 30
    time: Duration = field(default_factory=lambda: Duration(0.0))


class Gripper:
    def __init__(self, franka_address: str):
        LOG.record("Gripper", franka_address)

    def homing(self) -> bool:
        LOG.record("Gripper.homing")
        WORLD.hand_width = WORLD.hand_max_width
        return True

    def move(self, width: float, speed: float) -> bool:
        LOG.record("Gripper.move", width, speed)
        WORLD.hand_width = float(width)
        return True

    def grasp(self, width: float, speed: float, force: float, epsilon_inner: float = 0.005,
              epsilon_outer: float = 0.005) -> bool:
        LOG.record("Gripper.grasp", width, speed, force, epsilon_inner, epsilon_outer)
        WORLD.hand_width = float(width)
        return True

    def read_once(self) -> GripperState:
        LOG.record("Gripper.read_once")
        return GripperState(width=WORLD.hand_width, max_width=WORLD.hand_max_width)

    def stop(self) -> bool:
        LOG.record("Gripper.stop")
        return True
