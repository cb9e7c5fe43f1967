"""Franka Panda / FR3 through pylibfranka (imported only when a driver connects); registered as arm driver "franka"."""
from robot_stack.drivers.franka.config import FrankaConfig
from robot_stack.drivers.franka.driver import FrankaDriver

__all__ = ["FrankaConfig", "FrankaDriver"]
