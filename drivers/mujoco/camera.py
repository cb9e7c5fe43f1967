"""A twin camera that mirrors the arm node's simulator state and renders it.

The twin's physics lives in the arm node's process; a camera node in its own process
keeps a mirror of the scene, sets it from the state vectors the arm node publishes
(`sim/state`: stamp, time, qpos, mocap positions) and renders from it, so the twin's
graph has the same processes and topics as the real robot's.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from robot_stack.drivers.base import CameraDriver, DriverError
from robot_stack.sim.camera import CameraRenderer, intrinsics
from robot_stack.sim.scene import Scene
from robot_stack.types import Frame


@dataclass
class MujocoCameraConfig:
    name: str = "front"
    robot: str = "panda"
    width: int = 128
    height: int = 128
    fps: float = 30.0
    depth: bool = False
    state_timeout: float = 2.0      # s to wait for the first simulator state


class MujocoCamera(CameraDriver):
    def __init__(self, config: MujocoCameraConfig):
        self.config = config
        self.name = config.name
        self._lock = threading.Lock()
        self._state: np.ndarray | None = None
        self._scene: Scene | None = None
        self._renderer: CameraRenderer | None = None
        self._next = 0.0

    def update_state(self, vector) -> None:
        """Called from the subscription: [stamp, time, qpos..., mocap_pos...]."""
        with self._lock:
            self._state = np.asarray(vector, dtype=float)

    def connect(self) -> None:
        """Create the mirror and the GL context; call from the thread that will call read()."""
        self._scene = Scene(self.config.robot)
        if self.name not in [self._scene.model.cam(i).name for i in range(self._scene.model.ncam)]:
            raise DriverError(f"twin has no camera {self.name!r}")
        self._renderer = CameraRenderer(self._scene, self.config.height, self.config.width)
        self.k = intrinsics(self._scene, self.name, self.config.height, self.config.width)
        # Trigger on the shared monotonic clock's multiples of the period, so every twin camera at the same
        # rate captures the same instant (as hardware-synchronised cameras do) and a policy gets matching frames.
        period = 1.0 / self.config.fps
        self._next = math.floor(time.monotonic() / period) * period

    def disconnect(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
        self._renderer = self._scene = None

    def read(self) -> Frame:
        period = 1.0 / self.config.fps
        self._next += period
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -period:
            # Behind by more than a frame (a render or scheduling stall): drop the missed frames, as a camera
            # does, rather than render them back to back, which stamped bursts above `fps`.
            self._next += math.floor(-delay / period) * period
        deadline = time.monotonic() + self.config.state_timeout
        while True:
            with self._lock:
                state = self._state
            if state is not None:
                break
            if time.monotonic() > deadline:
                raise DriverError(f"twin camera {self.name}: no simulator state on sim/state "
                                  f"within {self.config.state_timeout} s (is arm_node running with the mujoco driver?)")
            time.sleep(0.01)
        try:
            self._scene.load_state_message(state)
        except ValueError as exc:
            raise DriverError(f"twin camera {self.name}: {exc}") from exc
        rgb = self._renderer.render(self.name)
        depth = None
        if self.config.depth:
            depth = self._renderer.render_depth(self.name)
            depth = np.clip(depth * 1000.0, 0, 65535).astype(np.uint16)
        return Frame(stamp=float(state[0]), rgb=rgb, k=self.k, depth=depth,
                     frame_id=f"{self.name}_color_optical_frame")
