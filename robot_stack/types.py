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


class Task:
    """The conditioning union: one object carries whatever a policy may be conditioned on.

    Its fields are those the registered conditioning kinds declare (robot_stack.policies.conditioning:
    goal_image and start_image, instruction, and any plug-in's), all optional; a field no kind declares is
    an error, not a silently ignored keyword. `provides()` names the kinds the task carries in full.
    """

    __slots__ = ("_values",)

    def __init__(self, **values):
        known = _task_fields()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise TypeError(f"Task has no field {', '.join(map(repr, unknown))}; the registered conditioning kinds "
                            f"declare {', '.join(sorted(known))}")
        object.__setattr__(self, "_values", {k: v for k, v in values.items() if v is not None})

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in _task_fields():
            raise AttributeError(f"Task has no field {name!r}")
        return self._values.get(name)

    def __setattr__(self, name, value):
        raise AttributeError("a Task is immutable; use replace(**fields)")

    def __repr__(self) -> str:
        return f"Task({', '.join(sorted(self._values))})"

    def values(self) -> dict:
        """The fields that are set."""
        return dict(self._values)

    def replace(self, **changes) -> "Task":
        return Task(**{**self._values, **changes})

    def provides(self) -> frozenset[str]:
        """The conditioning kinds this task carries in full (always including `none`)."""
        from robot_stack.policies.conditioning import NONE, kinds
        return frozenset({NONE} | {name for name, kind in kinds().items() if kind.provided(self)})


def _task_fields() -> dict[str, str]:
    from robot_stack.policies.conditioning import task_fields
    return task_fields()
