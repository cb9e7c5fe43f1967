"""Franka Panda / FR3 through pylibfranka (imported only when a driver connects)."""
from robot_stack.drivers.franka.config import FrankaConfig
from robot_stack.drivers.franka.driver import FrankaDriver, make_driver

__all__ = ["FrankaConfig", "FrankaDriver", "make_driver"]
