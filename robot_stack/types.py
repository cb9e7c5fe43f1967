"""The data that crosses module boundaries: robot state, camera frames, action chunks.

Times are seconds. `stamp` is when the data was captured (hardware timestamp where the
device has one); quaternions are (x, y, z, w); poses are in the robot `base` frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RobotState:
    stamp: float
    q: np.ndarray                    # joint positions (rad)
    dq: np.ndarray                   # joint velocities (rad/s)
    ee_pos: np.ndarray               # TCP position (m)
    ee_quat: np.ndarray              # TCP orientation (x, y, z, w)
    gripper_width: float             # distance between the fingers (m)
    wrench: np.ndarray = field(default_factory=lambda: np.zeros(6))   # force, torque at the TCP, base frame
    tau: np.ndarray | None = None    # measured joint torques (N m), where the arm reports them
    mode: str = "ok"                 # driver's view: "ok", "error", "stopped"


@dataclass
class Frame:
    stamp: float
    rgb: np.ndarray                  # HxWx3 uint8
    k: np.ndarray                    # 3x3 pinhole intrinsics of rgb
    depth: np.ndarray | None = None  # HxW uint16 millimetres, aligned to rgb
    frame_id: str = "camera_color_optical_frame"


@dataclass
class ActionChunk:
    """Canonical actions: absolute TCP targets in `base` plus gripper in [0, 1], each with a time.

    `times` are absolute (same clock as the stamps), so a consumer can drop the steps
    that are already stale when the chunk arrives.
    """

    times: np.ndarray                # (H,)
    positions: np.ndarray            # (H, 3)
    quats: np.ndarray                # (H, 4) x, y, z, w
    gripper: np.ndarray              # (H,)

    def __post_init__(self):
        h = len(self.times)
        if self.positions.shape != (h, 3) or self.quats.shape != (h, 4) or self.gripper.shape != (h,):
            raise ValueError(f"inconsistent action chunk shapes: times {self.times.shape}, positions "
                             f"{self.positions.shape}, quats {self.quats.shape}, gripper {self.gripper.shape}")
        if h == 0:
            raise ValueError("an action chunk needs at least one step")
        if np.any(np.diff(self.times) <= 0):
            raise ValueError("action chunk times must increase strictly")

    def __len__(self) -> int:
        return len(self.times)
