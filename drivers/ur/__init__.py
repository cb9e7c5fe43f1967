"""Universal Robots e-Series through ur_rtde (imported only when a driver connects); registered as arm driver "ur"."""
from robot_stack.drivers.ur.config import URConfig
from robot_stack.drivers.ur.driver import URDriver, from_ur_pose, ur_pose

__all__ = ["URConfig", "URDriver", "from_ur_pose", "ur_pose"]
