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


@dataclass
class Observation:
    """What a policy sees at one decision: the newest frame per camera plus proprio.

    `stamp` is the capture time of the oldest input used (so chunk step times measure the
    whole latency from capture); images are HxWx3 uint8 keyed by camera name.
    """

    stamp: float
    images: dict[str, np.ndarray]
    ee_pose: np.ndarray                    # (7,) position + xyzw quaternion in `base`
    gripper: float                         # finger distance (m)
    joint_pos: np.ndarray | None = None
    contact: str | None = None             # "pre_contact" | "in_contact" | "post_contact", where known


CONDITIONING = ("goal_image", "instruction", "sketch", "switch", "wrist_pose", "none")


@dataclass
class Task:
    """The conditioning union: one object carries whatever a policy may be conditioned on.

    - goal_image: `goal_image` (HxWx3), with `start_image` the frame the task started from
      (GRIF encodes the change start -> goal; a server fills it from the first observation);
    - instruction: `instruction` text;
    - sketch: `sketch` image (RT-Trajectory), fixed for the episode;
    - switch: `previous_instruction`, `instruction` and `contact_state` (SwitchVLA);
    - wrist_pose: `wrist_pose` (7,) plus `goal_image` (ZeroMimic);
    - none: nothing (a goal-free policy, e.g. BESO at guidance 0).
    """

    goal_image: np.ndarray | None = None
    start_image: np.ndarray | None = None
    instruction: str | None = None
    sketch: np.ndarray | None = None
    previous_instruction: str | None = None
    contact_state: str | None = None
    wrist_pose: np.ndarray | None = None

    def provides(self) -> frozenset[str]:
        """The conditioning kinds this task carries in full."""
        kinds = {"none"}
        if self.goal_image is not None:
            kinds.add("goal_image")
        if self.instruction:
            kinds.add("instruction")
        if self.sketch is not None:
            kinds.add("sketch")
        if self.instruction and self.previous_instruction is not None and self.contact_state:
            kinds.add("switch")
        if self.wrist_pose is not None and self.goal_image is not None:
            kinds.add("wrist_pose")
        return frozenset(kinds)
