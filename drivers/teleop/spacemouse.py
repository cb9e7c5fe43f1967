"""3Dconnexion SpaceMouse through pyspacemouse (raw HID; imported only in connect()).

Axes are velocities: each of the six readings (in [-1, 1]) passes a deadzone, is rescaled
to the full range, and multiplies the configured top speed. The default mapping assumes
the operator stands behind the robot looking along base +x: push the cap away (device +y)
-> base +x, right (device +x) -> base -y, lift -> base +z; tilting and twisting rotate
about the same axes. Buttons: left toggles the gripper, right is the intervention
"deadman" (held); with `intervene_on_motion` any deflection beyond the deadzone also
counts as an intervention (HIL-SERL style).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import numpy as np

from robot_stack.drivers.teleop.base import (DriverError, Edges, EpisodeButtons, TeleopCommand, TeleopDevice,
                                             deadzone)

# what a missing vendor library's error tells the user to run: the extra that brings it (setup.py)
INSTALL = "pip install 'robot_stack[teleop]'"

BUTTON_ACTIONS = ("gripper", "intervene", "start_stop", "success", "fail")


@dataclass
class SpaceMouseConfig:
    max_linear_speed: float = 0.15      # m/s at full deflection
    max_angular_speed: float = 0.6      # rad/s at full deflection
    deadzone: float = 0.1               # fraction of full deflection ignored around rest
    # base twist axis i <- sign[i] * device reading named axes[i]
    axes: tuple[str, ...] = ("y", "x", "z", "roll", "pitch", "yaw")
    signs: tuple[float, ...] = (1.0, -1.0, 1.0, 1.0, 1.0, -1.0)
    buttons: dict[int, str] = field(default_factory=lambda: {0: "gripper", 1: "intervene"})
    intervene_on_motion: bool = False
    frame: str = "base"
    device: str | None = None           # pyspacemouse device name; None: the first one found
    device_number: int = 0

    def __post_init__(self):
        readings = {"x", "y", "z", "roll", "pitch", "yaw"}
        if len(self.axes) != 6 or set(self.axes) - readings or len(self.signs) != 6:
            raise ValueError(f"SpaceMouseConfig.axes must name 6 of {sorted(readings)} with 6 signs")
        if not 0.0 <= self.deadzone < 1.0:
            raise ValueError(f"SpaceMouseConfig.deadzone must be in [0, 1), got {self.deadzone}")
        self.buttons = {int(k): v for k, v in self.buttons.items()}
        bad = set(self.buttons.values()) - set(BUTTON_ACTIONS)
        if bad:
            raise ValueError(f"SpaceMouseConfig.buttons: unknown actions {sorted(bad)}; valid: {BUTTON_ACTIONS}")


class SpaceMouseDevice(TeleopDevice):
    name = "spacemouse"

    def __init__(self, config: SpaceMouseConfig | None = None):
        self.config = config or SpaceMouseConfig()
        self._lib = None
        self._edges = Edges()
        self._episode = EpisodeButtons()

    def connect(self) -> None:
        try:
            lib = importlib.import_module("pyspacemouse")
        except (ImportError, OSError) as exc:     # OSError: easyhid found no hidapi shared library to load
            raise DriverError(f"SpaceMouse: pyspacemouse is not installed or cannot load hidapi ({INSTALL}; "
                              f"apt-get install libhidapi-dev): {exc}") from exc
        try:
            opened = lib.open(device=self.config.device, DeviceNumber=self.config.device_number)
        except Exception as exc:                            # hidapi errors: no permission, no device
            raise DriverError(f"SpaceMouse: open failed: {exc}") from exc
        if not opened:
            raise DriverError("SpaceMouse: no device found (is it plugged in, and is /dev/hidraw* readable? "
                              "see the pyspacemouse udev rule)")
        self._lib = lib

    def disconnect(self) -> None:
        if self._lib is not None:
            try:
                self._lib.close()
            finally:
                self._lib = None

    def read(self) -> TeleopCommand:
        if self._lib is None:
            raise DriverError("SpaceMouse: not connected")
        try:
            state = self._lib.read()
        except Exception as exc:
            raise DriverError(f"SpaceMouse: read failed: {exc}") from exc
        cfg = self.config
        raw = np.array([deadzone(getattr(state, name), cfg.deadzone) * sign for name, sign in zip(cfg.axes, cfg.signs)])
        twist = raw * np.repeat([cfg.max_linear_speed, cfg.max_angular_speed], 3)
        buttons = list(getattr(state, "buttons", None) or getattr(state, "button", None) or [])
        toggle, events, hold = False, [], False
        for index, action in cfg.buttons.items():
            level = index < len(buttons) and bool(buttons[index])
            pressed = self._edges.pressed(index, level)
            if action == "intervene":
                hold |= level
            elif pressed and action == "gripper":
                toggle = True
            elif pressed and action == "start_stop":
                events.append(self._episode.start_stop())
            elif pressed and action in ("success", "fail"):
                events.append(self._episode.outcome(action == "success"))
        hold |= cfg.intervene_on_motion and bool(np.any(raw != 0.0))
        return TeleopCommand(twist=twist, mode="velocity", frame=cfg.frame, gripper_toggle=toggle,
                             events=tuple(events), intervention=hold)
