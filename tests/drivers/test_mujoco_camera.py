"""The twin camera renders the state that arrives after its trigger, so its frames are as fresh as the arm
publishes them and every twin camera at one rate carries the same capture stamp."""
import threading
import time

import numpy as np
import pytest

from robot_stack.drivers.base import DriverError
from robot_stack.drivers.mujoco.camera import MujocoCamera, MujocoCameraConfig
from robot_stack.sim.scene import Scene


def _state(stamp: float):
    return np.concatenate([[stamp], Scene("panda").sim_state()])      # a sim/state message


def test_renders_the_state_that_arrives_after_the_trigger_not_the_one_held():
    # fresh_wait 2 s: the late state's timer thread was delayed past a 0.5 s wait once in a loaded full run
    cam = MujocoCamera(MujocoCameraConfig(name="front", width=32, height=24, fps=10.0, fresh_wait=2.0))
    cam.connect()
    try:
        cam.update_state(_state(1.0))                  # held before the trigger
        # the first trigger comes within one period (0.1 s) of connect; this state arrives after it
        late = threading.Timer(0.25, lambda: cam.update_state(_state(2.0)))
        late.start()
        frame = cam.read()
        late.join()
        assert frame.stamp == 2.0
        assert frame.rgb.shape == (24, 32, 3) and frame.rgb.std() > 5
    finally:
        cam.disconnect()


def test_falls_back_to_the_held_state_when_none_is_newer_and_fails_clearly_when_none_ever_came():
    cam = MujocoCamera(MujocoCameraConfig(name="front", width=32, height=24, fps=20.0, fresh_wait=0.01,
                                          state_timeout=0.2))
    cam.connect()
    try:
        t0 = time.monotonic()
        with pytest.raises(DriverError, match="no simulator state"):
            cam.read()
        assert time.monotonic() - t0 < 1.0
        cam.update_state(_state(3.0))
        assert cam.read().stamp == 3.0                 # nothing newer comes: the held state after fresh_wait
    finally:
        cam.disconnect()
