"""Gamepads (Xbox, PlayStation, Logitech F310 in XInput mode) through pygame's joystick API.

pygame is imported only in connect(), with SDL's dummy video driver, so no display is
needed. Sticks and triggers are velocities (deadzone, rescale, top speed); buttons are
edges except the intervention deadman, which counts while held. The default layout is
SDL's for an Xbox pad on Linux:

    left stick        x (up = +x) and y (left = +y)     RT / LT    z up / down
    right stick       rotation about x and y            d-pad x    rotation about z
    LB (held)         intervention                      A          gripper toggle
    START             episode start/stop                Y / B      success / fail
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field

import numpy as np

from robot_stack.drivers.teleop.base import (DriverError, Edges, EpisodeButtons, TeleopCommand, TeleopDevice,
                                             deadzone)

# what a missing vendor library's error tells the user to run: the extra that brings it (setup.py)
INSTALL = "pip install 'robot_stack[teleop]'"


@dataclass
class GamepadConfig:
    max_linear_speed: float = 0.15      # m/s at full deflection
    max_angular_speed: float = 0.6      # rad/s at full deflection
    deadzone: float = 0.15
    index: int = 0                      # which joystick, in pygame's order
    # SDL axis numbers and signs: (axis, sign) per twist component; triggers are handled below
    linear_x: tuple[int, float] = (1, -1.0)       # left stick vertical, up is negative
    linear_y: tuple[int, float] = (0, -1.0)       # left stick horizontal, left is negative
    angular_x: tuple[int, float] = (3, 1.0)       # right stick horizontal
    angular_y: tuple[int, float] = (4, -1.0)      # right stick vertical
    trigger_up: int = 5                 # RT: rests at -1, fully pressed +1
    trigger_down: int = 2               # LT
    hat: int = 0                        # d-pad x -> rotation about z
    buttons: dict[str, int] = field(default_factory=lambda: {
        "gripper": 0, "fail": 1, "success": 3, "intervene": 4, "start_stop": 7})
    frame: str = "base"


class GamepadDevice(TeleopDevice):
    name = "gamepad"

    def __init__(self, config: GamepadConfig | None = None):
        self.config = config or GamepadConfig()
        self._pygame = None
        self._joystick = None
        self._edges = Edges()
        self._episode = EpisodeButtons()
        self._triggers_live: set[int] = set()

    def connect(self) -> None:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            pygame = importlib.import_module("pygame")
        except ImportError as exc:
            raise DriverError(f"gamepad: pygame is not installed ({INSTALL}): {exc}") from exc
        try:
            pygame.init()
            pygame.joystick.init()
            count = pygame.joystick.get_count()
            if count <= self.config.index:
                raise DriverError(f"gamepad: joystick {self.config.index} requested, {count} connected")
            joystick = pygame.joystick.Joystick(self.config.index)
            joystick.init()
        except DriverError:
            raise
        except Exception as exc:                            # pygame.error
            raise DriverError(f"gamepad: {exc}") from exc
        self._pygame, self._joystick = pygame, joystick

    def disconnect(self) -> None:
        if self._joystick is not None:
            try:
                self._joystick.quit()
                self._pygame.joystick.quit()
            finally:
                self._pygame, self._joystick = None, None

    def _axis(self, number: int) -> float:
        return float(self._joystick.get_axis(number)) if number < self._joystick.get_numaxes() else 0.0

    def _trigger(self, number: int) -> float:
        """A trigger in [0, 1]. SDL reports 0 (half pressed) until a trigger first moves: ignored until seen at rest."""
        value = self._axis(number)
        if value < -0.5:
            self._triggers_live.add(number)
        return (value + 1.0) / 2.0 if number in self._triggers_live else 0.0

    def _button(self, name: str) -> bool:
        number = self.config.buttons.get(name)
        if number is None or number >= self._joystick.get_numbuttons():
            return False
        return bool(self._joystick.get_button(number))

    def read(self) -> TeleopCommand:
        if self._joystick is None:
            raise DriverError("gamepad: not connected")
        cfg = self.config
        try:
            self._pygame.event.pump()                      # SDL updates joystick state on the event pump
            dz = cfg.deadzone

            def stick(spec: tuple[int, float]) -> float:
                return deadzone(self._axis(spec[0]) * spec[1], dz)

            up = deadzone(self._trigger(cfg.trigger_up), dz)
            down = deadzone(self._trigger(cfg.trigger_down), dz)
            hat_x = self._joystick.get_hat(cfg.hat)[0] if cfg.hat < self._joystick.get_numhats() else 0
            raw = np.array([stick(cfg.linear_x), stick(cfg.linear_y), up - down,
                            stick(cfg.angular_x), stick(cfg.angular_y), -float(hat_x)])
            levels = {name: self._button(name) for name in cfg.buttons}
        except Exception as exc:
            raise DriverError(f"gamepad: read failed: {exc}") from exc
        twist = raw * np.repeat([cfg.max_linear_speed, cfg.max_angular_speed], 3)
        pressed = {name: self._edges.pressed(name, level) for name, level in levels.items()}
        events = []
        if pressed.get("start_stop"):
            events.append(self._episode.start_stop())
        if pressed.get("success"):
            events.append(self._episode.outcome(True))
        if pressed.get("fail"):
            events.append(self._episode.outcome(False))
        return TeleopCommand(twist=twist, mode="velocity", frame=cfg.frame,
                             gripper_toggle=pressed.get("gripper", False), events=tuple(events),
                             intervention=levels.get("intervene", False))
