"""Settings for an arm behind a running ros2_control JointTrajectoryController (one dataclass, LeRobot style)."""
from __future__ import annotations

from dataclasses import dataclass

from robot_stack.drivers.common import config_get, dataclass_overrides
from robot_stack.robots.spec import get_robot

# The names each vendor's ROS 2 driver gives the arm's joints, its trajectory controller and its joint states, by
# robot spec. franka_ros2 (Panda) names joints panda_joint1..7 (FR3: fr3_joint1..7, controller fr3_arm_controller
# in its MoveIt config) and remaps the broadcaster to franka/joint_states at the control rate (its /joint_states is
# joint_state_publisher's 30 Hz merge with the hand); the UR driver's broadcaster publishes /joint_states and its
# default controller is the speed-scaled JTC.
VENDOR_DEFAULTS = {
    "panda": dict(joint_names=tuple(f"panda_joint{i}" for i in range(1, 8)),
                  gripper_joint_names=("panda_finger_joint1", "panda_finger_joint2"),
                  controller="joint_trajectory_controller", state_topic="/franka/joint_states"),
    "ur5e": dict(joint_names=("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint",
                              "wrist_2_joint", "wrist_3_joint"),
                 gripper_joint_names=(), controller="scaled_joint_trajectory_controller", state_topic="/joint_states"),
}


@dataclass
class Ros2ControlConfig:
    robot: str = "panda"                # the spec (kinematics for IK, joint and speed limits) of the arm
    # The arm's joint names as the ros2_control side spells them, in the spec's joint order; /joint_states
    # is mapped by these names, never by position in the message. Empty: the vendor default for `robot`.
    joint_names: tuple[str, ...] = ()
    # Finger joints in the joint states (m each, summed to the gripper width); absent ones read as closed.
    gripper_joint_names: tuple[str, ...] | None = None
    # The JointTrajectoryController's name; set points go to /<controller>/joint_trajectory. Empty: vendor default.
    controller: str = ""
    state_topic: str = ""               # sensor_msgs/JointState of the arm; empty: the vendor default
    # Only /joint_states from this node count (ros2_control's joint_state_broadcaster); "" takes any publisher.
    # The arm node publishes joint_states too: read back, its echo of the last state would hide a dead controller.
    state_publisher: str = "joint_state_broadcaster"
    # A /joint_states older than this is a driver error: commands are refused (the arm node latches a fault and
    # holds) until fresh states come and the arm is recovered.
    stale_after: float = 0.1            # s
    connect_timeout: float = 10.0       # s to wait at connect for the first /joint_states
    # One trajectory point per publish period (decimated from the control rate), reached `point_time` after
    # it arrives: a little over one period, so the controller is still moving when the next point replaces it.
    publish_hz: float = 100.0
    point_time: float = 0.02            # s, time_from_start of each point
    # IK (damped least squares from the measured joints): the pose error a solution may keep.
    ik_position_tolerance: float = 1e-3     # m
    ik_rotation_tolerance: float = 1e-2     # rad
    ik_iterations: int = 20
    ik_damping: float = 1e-3
    # A target may move no joint faster than speed_fraction x its limit since the last target (a larger step is an
    # IK branch flip or a jump in the set points, refused); slower points get a longer time_from_start instead.
    speed_fraction: float = 1.0
    # Optional: the gripper as a JointGroupPositionController (std_msgs/Float64MultiArray, one position per finger
    # joint); "" ignores gripper commands (franka_ros2's gripper takes franka_msgs actions, not a topic).
    gripper_command_topic: str = ""
    node_name: str = "ros2_control_bridge"

    def __post_init__(self):
        spec = get_robot(self.robot)
        vendor = VENDOR_DEFAULTS.get(self.robot, {})
        if not self.joint_names:
            self.joint_names = vendor.get("joint_names", tuple(f"{spec.name}_joint{i + 1}" for i in range(spec.dof)))
        self.joint_names = tuple(str(n) for n in self.joint_names)
        if self.gripper_joint_names is None:
            self.gripper_joint_names = vendor.get("gripper_joint_names", ())
        self.gripper_joint_names = tuple(str(n) for n in self.gripper_joint_names)
        if not self.controller:
            self.controller = vendor.get("controller", "joint_trajectory_controller")
        if not self.state_topic:
            self.state_topic = vendor.get("state_topic", "/joint_states")
        if len(self.joint_names) != spec.dof or len(set(self.joint_names)) != spec.dof:
            raise ValueError(f"Ros2ControlConfig.joint_names needs {spec.dof} distinct names for {self.robot}, "
                             f"got {list(self.joint_names)}")
        for name in ("stale_after", "connect_timeout", "publish_hz", "point_time", "speed_fraction"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"Ros2ControlConfig.{name} must be positive, got {getattr(self, name)}")
        if self.publish_hz > spec.control_hz:
            raise ValueError(f"Ros2ControlConfig.publish_hz ({self.publish_hz}) is above the control rate "
                             f"({spec.control_hz} Hz)")

    @property
    def trajectory_topic(self) -> str:
        return f"/{self.controller.strip('/')}/joint_trajectory"

    @classmethod
    def from_node_config(cls, cfg) -> "Ros2ControlConfig":
        """Build from the arm node's hydra config (`robot.name`, `robot.ros2_control.*`)."""
        robot = config_get(cfg, "robot", {})
        section = config_get(robot, "ros2_control", {}) or {}
        return cls(**{**dataclass_overrides(cls, section), "robot": str(config_get(robot, "name", cls.robot))})
