"""Settings for a UR e-Series arm driven through ur_rtde (one dataclass, LeRobot style)."""
from __future__ import annotations

from dataclasses import dataclass

from typing import Callable

from robot_stack.drivers.common import config_get, dataclass_overrides
from robot_stack.robots.spec import get_robot

GRIPPER_KINDS = ("none", "tool_digital_out", "callable")


@dataclass
class URConfig:
    robot: str = "ur5e"                 # the spec (limits, gripper, control rate) of the arm behind this address
    ip: str = "192.168.1.10"
    # RTDE and servo rate: 500 Hz on e-Series (125 Hz on CB3). servoL/servoJ get dt = 1/frequency
    # and initPeriod()/waitPeriod() pace the loop to it.
    frequency: float = 500.0
    # servoL(pose, speed, acceleration, dt, lookahead_time, gain): ur_rtde documents speed and
    # acceleration as unused by servo commands; they are passed through unchanged.
    servo_speed: float = 0.5
    servo_acceleration: float = 0.5
    servo_lookahead_time: float = 0.1   # s, [0.03, 0.2]: longer is smoother and lags more
    servo_gain: float = 300.0           # [100, 2000]: higher tracks tighter and can oscillate
    # RTDE watchdog: the robot's control script stops when our loop stops kicking it for
    # longer than 1/watchdog_min_frequency (a hung or killed control process stops the arm).
    watchdog_min_frequency: float = 50.0
    stop_deceleration: float = 10.0     # m/s^2 for servoStop()
    # TCP relative to the flange (x, y, z, rx, ry, rz), sent with setTcp() at connect so the
    # poses we read and command are the twin's TCP. None keeps the TCP set on the pendant.
    tcp_offset: tuple[float, ...] | None = (0.0, 0.0, 0.145, 0.0, 0.0, 0.0)
    # A protective stop needs a human look at the cell; recover() only clears it (through the
    # dashboard server's unlockProtectiveStop) when this is set.
    unlock_protective_stop: bool = False
    # Gripper. ur_rtde has no gripper API of its own, so the choice is explicit:
    #   "none": commands are accepted and ignored;
    #   "tool_digital_out": an on/off gripper wired to a tool digital output (rtde_io
    #       setToolDigitalOut), closed when the command reaches gripper_threshold;
    #   "callable": gripper_command(value in [0, 1]) is called, e.g. a Robotiq socket client.
    # Calls run on a background thread, only when the command changes. The width in
    # RobotState is measured only when gripper_width is given; otherwise it is the width
    # the last command asked for (max opening times (1 - command)).
    gripper: str = "none"
    gripper_tool_output: int = 0
    gripper_closed_level: bool = True   # output level that closes the gripper (wiring-specific)
    gripper_threshold: float = 0.5
    gripper_deadband: float = 0.01
    gripper_command: Callable[[float], None] | None = None
    gripper_width: Callable[[], float] | None = None

    def __post_init__(self):
        dof = get_robot(self.robot).dof
        if dof != 6:
            raise ValueError(f"the ur driver drives 6-joint arms; robot {self.robot!r} has {dof} joints")
        if self.gripper not in GRIPPER_KINDS:
            raise ValueError(f"URConfig.gripper must be one of {', '.join(GRIPPER_KINDS)}, got {self.gripper!r}")
        if self.gripper == "callable" and self.gripper_command is None:
            raise ValueError("URConfig.gripper='callable' needs gripper_command")
        if not 0.03 <= self.servo_lookahead_time <= 0.2:
            raise ValueError(f"URConfig.servo_lookahead_time must be in [0.03, 0.2] s, got {self.servo_lookahead_time}")
        if not 100 <= self.servo_gain <= 2000:
            raise ValueError(f"URConfig.servo_gain must be in [100, 2000], got {self.servo_gain}")
        if not self.frequency > 0 or not self.watchdog_min_frequency > 0:
            raise ValueError("URConfig.frequency and watchdog_min_frequency must be positive")
        if self.tcp_offset is not None:
            self.tcp_offset = tuple(float(v) for v in self.tcp_offset)
            if len(self.tcp_offset) != 6:
                raise ValueError(f"URConfig.tcp_offset needs 6 values (x, y, z, rx, ry, rz), got {self.tcp_offset}")

    @property
    def dt(self) -> float:
        return 1.0 / self.frequency

    @classmethod
    def from_node_config(cls, cfg) -> "URConfig":
        """Build from the arm node's hydra config (`robot.name`, `robot_ip`, `robot.ur.*`).

        The servo rate is the robot's control rate unless `robot.ur.frequency` says otherwise."""
        robot = config_get(cfg, "robot", {})
        section = config_get(robot, "ur", {}) or {}
        name = str(config_get(robot, "name", cls.robot))
        kwargs = {"robot": name, "frequency": float(get_robot(name).control_hz)}
        ip = config_get(cfg, "robot_ip", "")
        if ip:
            kwargs["ip"] = str(ip)
        kwargs.update(dataclass_overrides(cls, section))
        return cls(**kwargs)

