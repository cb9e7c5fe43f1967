"""Settings for a Franka Panda/FR3 driven through pylibfranka (one dataclass, LeRobot style)."""
from __future__ import annotations

from dataclasses import dataclass

from robot_stack.drivers.common import config_get, dataclass_overrides
from robot_stack.robots.spec import get_robot

# libfranka's example thresholds (Nm per joint, N/Nm per Cartesian axis): high enough for
# free motion at policy speeds, low enough that a collision trips a reflex, not a bruise.
DEFAULT_TORQUE_THRESHOLDS = (20.0, 20.0, 18.0, 18.0, 16.0, 14.0, 12.0)
DEFAULT_FORCE_THRESHOLDS = (20.0, 20.0, 20.0, 25.0, 25.0, 25.0)


@dataclass
class FrankaConfig:
    robot: str = "panda"                # the spec (limits, gripper) of the arm behind this address
    ip: str = "172.16.0.2"
    # RealtimeConfig.kEnforce refuses to run without a PREEMPT_RT kernel; kIgnore is for
    # trying things on a plain kernel, where communication errors become likely at 1 kHz.
    enforce_realtime: bool = True
    # The robot's internal controller behind Cartesian pose control: "cartesian_impedance"
    # keeps the TCP compliant in Cartesian space, "joint_impedance" tracks more stiffly.
    controller_mode: str = "cartesian_impedance"
    # set_collision_behavior(lower_torque, upper_torque, lower_force, upper_force): above
    # "lower" the robot flags contact, above "upper" it stops with a reflex.
    lower_torque_thresholds: tuple[float, ...] = DEFAULT_TORQUE_THRESHOLDS
    upper_torque_thresholds: tuple[float, ...] = DEFAULT_TORQUE_THRESHOLDS
    lower_force_thresholds: tuple[float, ...] = DEFAULT_FORCE_THRESHOLDS
    upper_force_thresholds: tuple[float, ...] = DEFAULT_FORCE_THRESHOLDS
    # Franka Hand. Commands in [0, 1] (0 open, 1 closed) map to a width on [max_width, 0].
    gripper: bool = True
    gripper_speed: float = 0.1          # m/s, for move() and grasp()
    grasp_force: float = 40.0           # N; the Hand holds up to 70 N continuously
    grasp_threshold: float = 0.5        # commands at or above this grasp (force), below it move (position)
    # grasp() reports success when the final width is within [width - inner, width + outer];
    # the whole stroke by default, so any object that stops the fingers counts as grasped.
    grasp_epsilon_inner: float = 0.08
    grasp_epsilon_outer: float = 0.08
    gripper_deadband: float = 0.01      # command change (of [0, 1]) below which nothing is sent
    gripper_state_hz: float = 20.0      # how often the width is read (the Hand's state is slow)

    def __post_init__(self):
        dof = get_robot(self.robot).dof
        if dof != 7:
            raise ValueError(f"the franka driver drives 7-joint arms; robot {self.robot!r} has {dof} joints")
        for name, n in (("lower_torque_thresholds", 7), ("upper_torque_thresholds", 7),
                        ("lower_force_thresholds", 6), ("upper_force_thresholds", 6)):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) != n:
                raise ValueError(f"FrankaConfig.{name} needs {n} values, got {len(values)}")
            setattr(self, name, values)
        if self.controller_mode not in ("cartesian_impedance", "joint_impedance"):
            raise ValueError(f"FrankaConfig.controller_mode must be cartesian_impedance or joint_impedance, "
                             f"got {self.controller_mode!r}")
        if not 0.0 < self.grasp_threshold <= 1.0:
            raise ValueError(f"FrankaConfig.grasp_threshold must be in (0, 1], got {self.grasp_threshold}")

    @classmethod
    def from_node_config(cls, cfg) -> "FrankaConfig":
        """Build from the arm node's hydra config (`robot.name`, `robot_ip`, `robot.franka.*`)."""
        section = config_get(config_get(cfg, "robot", {}), "franka", {}) or {}
        kwargs = {"robot": str(config_get(config_get(cfg, "robot", {}), "name", cls.robot))}
        ip = config_get(cfg, "robot_ip", "")
        if ip:
            kwargs["ip"] = str(ip)
        torque = config_get(section, "collision_torque_thresholds", None)
        force = config_get(section, "collision_force_thresholds", None)
        if torque is not None:       # one list in the YAML: contact and reflex at the same level
            kwargs["lower_torque_thresholds"] = kwargs["upper_torque_thresholds"] = tuple(torque)
        if force is not None:
            kwargs["lower_force_thresholds"] = kwargs["upper_force_thresholds"] = tuple(force)
        kwargs.update(dataclass_overrides(cls, section))
        # The safety envelope's gripper force cap bounds the grasp force, whatever the franka section says.
        cap = config_get(config_get(config_get(cfg, "robot", {}), "safety", {}), "max_gripper_force", None)
        if cap is not None:
            kwargs["grasp_force"] = min(float(kwargs.get("grasp_force", cls.grasp_force)), float(cap))
        return cls(**kwargs)

