"""What the teleop node needs from any teleoperation device, and what a device sends it.

A device is read by the teleop node at its rate (30 Hz by default); `read()` never blocks
and returns one `TeleopCommand`: a 6-D end-effector velocity (m/s, rad/s) or delta (m, rad
since the last read) in a declared frame, or an absolute target pose (the scripted
device replays an expert's targets), a gripper command or toggle, the episode button
events pressed since the last read, and the intervention flag, true while held.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from robot_stack.drivers.base import DriverError

EVENTS = ("start", "stop", "success", "fail")     # episode events; each calls recorder/<event>
FRAMES = ("base", "ee")
MODES = ("velocity", "delta")

__all__ = ["DriverError", "EVENTS", "FRAMES", "MODES", "TeleopCommand", "TeleopDevice", "EpisodeButtons",
           "Edges", "deadzone"]


@dataclass
class TeleopCommand:
    # linear x, y, z then angular x, y, z: m/s and rad/s ("velocity") or m and rad since the last read ("delta")
    twist: np.ndarray = field(default_factory=lambda: np.zeros(6))
    mode: str = "velocity"
    frame: str = "base"             # the frame the twist is expressed in: "base" or "ee" (the TCP)
    # An absolute TCP target (pos, quat xyzw) in base; when set it replaces the twist.
    target: tuple[np.ndarray, np.ndarray] | None = None
    gripper: float | None = None    # absolute gripper command in [0, 1] (1 closed); None: unchanged
    gripper_toggle: bool = False    # flip the gripper between open and closed
    events: tuple[str, ...] = ()    # subset of EVENTS, in the order pressed
    intervention: bool = False      # true while held: the operator overrides the policy
    stamp: float = field(default_factory=time.monotonic)   # when the device was read (monotonic)

    def __post_init__(self):
        self.twist = np.asarray(self.twist, dtype=float).reshape(6)
        if self.mode not in MODES:
            raise ValueError(f"TeleopCommand.mode must be one of {MODES}, got {self.mode!r}")
        if self.frame not in FRAMES:
            raise ValueError(f"TeleopCommand.frame must be one of {FRAMES}, got {self.frame!r}")
        if not np.isfinite(self.twist).all():
            raise ValueError(f"TeleopCommand.twist must be finite, got {self.twist.tolist()}")
        if self.gripper is not None and not 0.0 <= self.gripper <= 1.0:
            raise ValueError(f"TeleopCommand.gripper must be in [0, 1], got {self.gripper}")
        unknown = set(self.events) - set(EVENTS)
        if unknown:
            raise ValueError(f"unknown teleop events {sorted(unknown)}; valid: {EVENTS}")
        if self.target is not None:
            self.target = (np.asarray(self.target[0], dtype=float), np.asarray(self.target[1], dtype=float))

    @property
    def moving(self) -> bool:
        return self.target is not None or bool(np.any(self.twist != 0.0))


class TeleopDevice(ABC):
    name: str = ""
    usage: str = ""                 # one line for the operator, logged when the node starts

    @abstractmethod
    def connect(self) -> None:
        """Open the device (vendor libraries are imported here); DriverError when it cannot."""

    @abstractmethod
    def disconnect(self) -> None:
        """Release the device and restore whatever connect() changed; safe to call twice."""

    @abstractmethod
    def read(self) -> TeleopCommand:
        """The command now, without blocking."""

    def __enter__(self) -> "TeleopDevice":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()


def deadzone(value: float, width: float) -> float:
    """0 inside +-width, then rescaled so the output still spans [-1, 1] (no jump at the edge)."""
    value = float(np.clip(value, -1.0, 1.0))
    if abs(value) <= width:
        return 0.0
    return float(np.sign(value) * (abs(value) - width) / (1.0 - width))


class Edges:
    """Rising edges of buttons read as levels: a press counts once however long it is held."""

    def __init__(self):
        self._last: dict[object, bool] = {}

    def pressed(self, key, level: bool) -> bool:
        was = self._last.get(key, False)
        self._last[key] = bool(level)
        return bool(level) and not was


class EpisodeButtons:
    """One start/stop button plus success and fail: success and fail also end the episode."""

    def __init__(self):
        self.recording = False

    def start_stop(self) -> str:
        self.recording = not self.recording
        return "start" if self.recording else "stop"

    def outcome(self, success: bool) -> str:
        self.recording = False
        return "success" if success else "fail"
