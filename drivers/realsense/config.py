"""Settings for an Intel RealSense D400-series camera through pyrealsense2 (one dataclass, LeRobot style).

The field names match robot_stack/conf/camera/realsense.yaml, so the camera node can pass
its `camera` section (less `driver`) straight in.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RealSenseConfig:
    name: str = "camera"
    # The device's serial number. Empty: the only connected device (an error when several are
    # connected, so two cameras are never swapped silently). Quote it in YAML: an unquoted
    # serial becomes an integer and loses leading zeros.
    serial: str = ""
    width: int = 640
    height: int = 480
    fps: int = 30
    depth: bool = True                  # depth aligned to colour, in millimetres
    depth_width: int | None = None      # depth stream size before alignment; None: the colour size
    depth_height: int | None = None
    timeout_ms: int = 1000              # wait_for_frames(); a missing frame beyond this is an error
    # Frames stamped on the camera's hardware clock translated to the host clock (global time)
    # compare directly with the arm's stamps. When the camera cannot do that, hardware-clock
    # stamps are put on the host clock here; set this to refuse anything but global time.
    require_global_time: bool = False
    frame_id: str = ""                  # default "<name>_color_optical_frame"

    def __post_init__(self):
        self.serial = str(self.serial) if self.serial is not None else ""
        for key in ("width", "height", "fps", "depth_width", "depth_height", "timeout_ms"):
            value = getattr(self, key)
            if value is None:
                continue
            if float(value) != int(value) or int(value) <= 0:     # the SDK takes integers only
                raise ValueError(f"RealSenseConfig.{key} must be a positive integer, got {value!r}")
            setattr(self, key, int(value))
        if self.depth_width is None:
            self.depth_width = self.width
        if self.depth_height is None:
            self.depth_height = self.height
        if not self.frame_id:
            self.frame_id = f"{self.name}_color_optical_frame"
