"""Stand-ins for the vendor libraries only (pyspacemouse, pygame), with their call signatures.

Each builds a module object to put in sys.modules; the test sets the device's readings.
"""
from __future__ import annotations

import types
from collections import namedtuple

SpaceNavigator = namedtuple("SpaceNavigator", ["t", "x", "y", "z", "roll", "pitch", "yaw", "buttons"])


def fake_pyspacemouse(present: bool = True) -> types.ModuleType:
    mod = types.ModuleType("pyspacemouse")
    mod.state = SpaceNavigator(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, [0, 0])
    mod.opened = False
    mod.open_kwargs = None

    def open(callback=None, dof_callback=None, dof_callback_arr=None, button_callback=None,
             button_callback_arr=None, set_nonblocking_loop=True, device=None, path=None, DeviceNumber=0):
        mod.open_kwargs = {"device": device, "DeviceNumber": DeviceNumber}
        if not present:
            return None
        mod.opened = True
        return object()

    def read():
        if not mod.opened:
            raise RuntimeError("no device open")
        return mod.state

    def close():
        mod.opened = False

    def set_state(**values):
        mod.state = mod.state._replace(**values)

    mod.open, mod.read, mod.close, mod.set_state = open, read, close, set_state
    return mod


def fake_pygame(count: int = 1) -> types.ModuleType:
    """pygame with pygame.joystick: an Xbox-like pad, 6 axes, 11 buttons, 1 hat, state set by the test."""
    pygame = types.ModuleType("pygame")
    joystick = types.ModuleType("pygame.joystick")
    event = types.ModuleType("pygame.event")
    pygame.joystick, pygame.event = joystick, event
    pygame.axes = [0.0] * 6          # SDL reports triggers as 0 until they first move
    pygame.buttons = [0] * 11
    pygame.hats = [(0, 0)]
    pygame.pumps = 0
    pygame.initialised = False

    def init():
        pygame.initialised = True
        return (6, 0)

    def pump():
        pygame.pumps += 1

    class Joystick:
        def __init__(self, id):
            if id >= count:
                raise ValueError("Invalid joystick device number")
            self.id, self.ready = id, False

        def init(self):
            self.ready = True

        def quit(self):
            self.ready = False

        def _check(self):
            if not self.ready:
                raise RuntimeError("Joystick not initialized")

        def get_numaxes(self):
            return len(pygame.axes)

        def get_axis(self, axis_number):
            self._check()
            return pygame.axes[axis_number]

        def get_numbuttons(self):
            return len(pygame.buttons)

        def get_button(self, button):
            self._check()
            return pygame.buttons[button]

        def get_numhats(self):
            return len(pygame.hats)

        def get_hat(self, hat_number):
            self._check()
            return pygame.hats[hat_number]

    pygame.init, pygame.quit = init, lambda: None
    event.pump = pump
    joystick.init, joystick.quit, joystick.get_count = (lambda: None), (lambda: None), (lambda: count)
    joystick.Joystick = Joystick
    return pygame
