"""The MuJoCo twin as an arm driver and as camera drivers."""
from robot_stack.drivers.mujoco.arm import MujocoArmConfig, MujocoArmDriver

__all__ = ["MujocoArmConfig", "MujocoArmDriver"]
