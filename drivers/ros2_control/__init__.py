"""A running ros2_control arm (franka_ros2, the Universal Robots ROS 2 driver) as an arm driver: set points go to
its JointTrajectoryController, measured joints come from /joint_states; registered as arm driver "ros2_control"."""
from robot_stack.drivers.ros2_control.config import Ros2ControlConfig
from robot_stack.drivers.ros2_control.driver import Ros2ControlDriver

__all__ = ["Ros2ControlConfig", "Ros2ControlDriver"]
