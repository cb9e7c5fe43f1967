"""A twin camera that mirrors the arm node's simulator state and renders it.

The twin's physics lives in the arm node's process; a camera node in its own process
keeps a mirror of the scene, sets it from the state vectors the arm node publishes
(`sim/state`: stamp, time, qpos, mocap positions) and renders from it, so the twin's
graph has the same processes and topics as the real robot's.

At each trigger the camera renders the first state that arrives after it (waiting at most
`fresh_wait`), not the newest one already held: that one is up to a state period old (10 ms at
the arm's 100 Hz), which is latency a policy pays on every decision. All twin cameras at one
rate thereby render the same state and carry the same capture stamp.
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
    fresh_wait: float = 0.02        # s to wait after a trigger for a state newer than it (2 periods at 100 Hz)


class MujocoCamera(CameraDriver):
    def __init__(self, config: MujocoCameraConfig):
        self.config = config
        self.name = config.name
        self._arrived = threading.Condition()
        self._state: np.ndarray | None = None
        self._state_arrival = -math.inf     # monotonic time the held state arrived
        self._scene: Scene | None = None
        self._renderer: CameraRenderer | None = None
        self._next = 0.0

    def update_state(self, vector) -> None:
        """Called from the subscription: [stamp, time, qpos..., mocap_pos...]."""
        with self._arrived:
            self._state = np.asarray(vector, dtype=float)
            self._state_arrival = time.monotonic()
            self._arrived.notify_all()

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
        state = self._fresh_state(trigger=min(self._next, time.monotonic()))
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

    def _fresh_state(self, trigger: float) -> np.ndarray:
        """The first state to arrive after `trigger`; the newest held one when none comes within `fresh_wait`
        (an arm publishing slower than that); an error when none has ever come within `state_timeout`."""
        with self._arrived:
            self._arrived.wait_for(lambda: self._state_arrival >= trigger, timeout=self.config.fresh_wait)
            if self._state is None and not self._arrived.wait_for(lambda: self._state is not None,
                                                                  timeout=self.config.state_timeout):
                raise DriverError(f"twin camera {self.name}: no simulator state on sim/state within "
                                  f"{self.config.state_timeout} s (is arm_node running with the mujoco driver?)")
            return self._state
