"""Driver interfaces: what the arm and camera nodes need from any arm or camera.

The arm node runs the control loop, one tick per call pair: `read_state()` waits for the
next control tick (the hardware provides the timing: libfranka's 1 kHz callback, the UR's
RTDE period; the twin paces itself) and returns the measured state; `command_pose()` or
`command_joints()` sends this tick's set point and returns what was actually sent, which
may differ when the device clips it (as LeRobot's robots return the action they sent).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from robot_stack.robots.spec import RobotSpec
from robot_stack.types import Frame, RobotState


class DriverError(RuntimeError):
    """The device refused, disconnected or reported an error; the message names the device."""


class ArmDriver(ABC):
    spec: RobotSpec

    @property
    def control_hz(self) -> int:
        return self.spec.control_hz

    @abstractmethod
    def connect(self) -> None: ...

    @abstractmethod
    def disconnect(self) -> None: ...

    @abstractmethod
    def read_state(self) -> RobotState:
        """Block until the next control tick, then return the measured state."""

    @abstractmethod
    def command_pose(self, pos: np.ndarray, quat: np.ndarray, gripper: float) -> tuple[np.ndarray, np.ndarray, float]:
        """Send this tick's TCP set point (base frame) and gripper command in [0, 1]."""

    @abstractmethod
    def command_joints(self, q: np.ndarray, gripper: float) -> tuple[np.ndarray, float]:
        """Send this tick's joint set point and gripper command in [0, 1]."""

    @abstractmethod
    def stop(self) -> None:
        """Stop motion now and hold (a protective stop on real arms)."""

    @abstractmethod
    def recover(self) -> None:
        """Clear a recoverable error so commands are accepted again."""


class SimulatedArm(ABC):
    """The twin's abilities a real arm lacks, declared by subclassing next to ArmDriver.

    The arm node offers sim/state, sim/reset and sim/episode only for a driver that is an
    instance of this class: a capability the driver states, not one guessed from its
    attributes. `config` carries the episode the node announces (`robot`, `task`, `seed`).
    """

    config: Any

    @abstractmethod
    def sim_state(self) -> np.ndarray:
        """The simulator's whole state (time, qpos, mocap positions): enough for a mirror to render the scene."""

    @abstractmethod
    def reset(self, seed: int) -> None:
        """Start a new episode of the configured task from `seed`."""

    @abstractmethod
    def reset_next(self) -> int:
        """Start the episode with the next unused seed; returns the seed."""


class CameraDriver(ABC):
    name: str

    @abstractmethod
    def connect(self) -> None: ...

    @abstractmethod
    def disconnect(self) -> None: ...

    @abstractmethod
    def read(self) -> Frame:
        """Block until the next frame and return it with its capture stamp."""
