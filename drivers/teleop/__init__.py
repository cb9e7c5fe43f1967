"""Teleoperation devices (installed as robot_stack.drivers.teleop): one module and config dataclass each.

Vendor libraries (pyspacemouse, pygame) are imported only when a device connects.
"""
from __future__ import annotations

from dataclasses import fields

from robot_stack.drivers.teleop.base import (EVENTS, FRAMES, DriverError, TeleopCommand, TeleopDevice,
                                             deadzone)
from robot_stack.drivers.teleop.gamepad import GamepadConfig, GamepadDevice
from robot_stack.drivers.teleop.keyboard import KeyboardConfig, KeyboardDevice
from robot_stack.drivers.teleop.scripted import ScriptedConfig, ScriptedDevice
from robot_stack.drivers.teleop.spacemouse import SpaceMouseConfig, SpaceMouseDevice

DEVICES: dict[str, tuple[type, type[TeleopDevice]]] = {
    "keyboard": (KeyboardConfig, KeyboardDevice),
    "spacemouse": (SpaceMouseConfig, SpaceMouseDevice),
    "gamepad": (GamepadConfig, GamepadDevice),
    "scripted": (ScriptedConfig, ScriptedDevice),
}


def make_device(name: str, **settings) -> TeleopDevice:
    """The named device with the settings its config dataclass knows (others are ignored)."""
    try:
        config_cls, device_cls = DEVICES[name]
    except KeyError:
        raise ValueError(f"unknown teleop device {name!r}; valid devices: {', '.join(DEVICES)}") from None
    known = {f.name for f in fields(config_cls)}
    return device_cls(config_cls(**{k: v for k, v in settings.items() if k in known}))


__all__ = ["DEVICES", "EVENTS", "FRAMES", "DriverError", "TeleopCommand", "TeleopDevice", "deadzone", "make_device",
           "GamepadConfig", "GamepadDevice", "KeyboardConfig", "KeyboardDevice", "ScriptedConfig", "ScriptedDevice",
           "SpaceMouseConfig", "SpaceMouseDevice"]
