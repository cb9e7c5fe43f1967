"""Intel RealSense D400 cameras through pyrealsense2 (imported only when a camera connects)."""
from robot_stack.drivers.realsense.config import RealSenseConfig
from robot_stack.drivers.realsense.driver import RealSenseCamera, make_camera

__all__ = ["RealSenseCamera", "RealSenseConfig", "make_camera"]
