"""Keyboard teleoperation in a plain terminal (no X display, works over ssh).

The terminal is put in cbreak mode (no line buffering, no echo; Ctrl-C still interrupts)
and read without blocking through select(); connect() saves the terminal settings and
disconnect() (also run at exit) restores them. A terminal reports key presses, not
releases, so each key byte is one step: holding a key moves at the terminal's key-repeat
rate (about 30 steps/s, so 0.15 m/s with the default 5 mm step), and the intervention
"hold" is a toggle on `t`. A process killed with SIGKILL cannot restore the terminal:
type `stty sane` (or `reset`) blind if it stops echoing.

    w/s  +x/-x     a/d  +y/-y     q/e  +z/-z          (linear, `linear_step` m per press)
    i/k  +rx/-rx   j/l  +ry/-ry   u/o  +rz/-rz        (angular, `angular_step` rad per press)
    space  gripper toggle     enter  episode start/stop     y  success     n  fail
    t  intervention on/off
"""
from __future__ import annotations

import atexit
import os
import select
import sys
import termios
import tty
from dataclasses import dataclass

import numpy as np

from robot_stack.drivers.teleop.base import DriverError, EpisodeButtons, TeleopCommand, TeleopDevice

# key -> (twist axis, sign)
MOTION_KEYS: dict[str, tuple[int, float]] = {
    "w": (0, 1.0), "s": (0, -1.0), "a": (1, 1.0), "d": (1, -1.0), "q": (2, 1.0), "e": (2, -1.0),
    "i": (3, 1.0), "k": (3, -1.0), "j": (4, 1.0), "l": (4, -1.0), "u": (5, 1.0), "o": (5, -1.0),
}
HELP = ("keyboard teleop: w/s a/d q/e move x/y z, i/k j/l u/o rotate, space gripper, "
        "enter start/stop, y success, n fail, t intervene on/off")


@dataclass
class KeyboardConfig:
    linear_step: float = 0.005      # m per key press
    angular_step: float = 0.05      # rad per key press
    frame: str = "base"
    fd: int | None = None           # the terminal to read; None: stdin
    intervention: bool = False      # the intervention toggle's state at connect


class KeyboardDevice(TeleopDevice):
    name = "keyboard"
    usage = HELP

    def __init__(self, config: KeyboardConfig | None = None):
        self.config = config or KeyboardConfig()
        self.fd: int | None = None
        self._saved: list | None = None
        self._intervention = self.config.intervention
        self._episode = EpisodeButtons()
        self._pending = b""

    def connect(self) -> None:
        fd = self.config.fd if self.config.fd is not None else sys.stdin.fileno()
        if not os.isatty(fd):
            raise DriverError("keyboard teleop: input is not a terminal (run the node in a terminal, "
                              "or choose device:=spacemouse|gamepad|scripted)")
        try:
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd, termios.TCSANOW)
        except termios.error as exc:
            raise DriverError(f"keyboard teleop: cannot configure the terminal: {exc}") from exc
        self.fd = fd
        atexit.register(self.disconnect)

    def disconnect(self) -> None:
        if self.fd is not None and self._saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            except termios.error:
                pass                                        # the terminal is gone
        self.fd, self._saved = None, None
        atexit.unregister(self.disconnect)

    def _read_bytes(self) -> bytes:
        data = b""
        while True:
            ready, _, _ = select.select([self.fd], [], [], 0.0)
            if not ready:
                return data
            chunk = os.read(self.fd, 1024)
            if not chunk:                                   # end of input (the terminal closed)
                return data
            data += chunk

    def read(self) -> TeleopCommand:
        if self.fd is None:
            raise DriverError("keyboard teleop: not connected")
        return self.parse(self._read_bytes())

    def parse(self, data: bytes) -> TeleopCommand:
        """The command for the key bytes received since the last read."""
        cfg = self.config
        twist, toggle, events = np.zeros(6), False, []
        keys = _strip_escapes(self._pending + data)
        self._pending = b"" if not keys.endswith("\x1b") else b"\x1b"
        for key in keys.rstrip("\x1b").lower():
            if key in MOTION_KEYS:
                axis, sign = MOTION_KEYS[key]
                twist[axis] += sign * (cfg.linear_step if axis < 3 else cfg.angular_step)
            elif key == " ":
                toggle = not toggle                         # two presses in one read cancel out
            elif key in "\r\n":
                events.append(self._episode.start_stop())
            elif key == "y":
                events.append(self._episode.outcome(True))
            elif key == "n":
                events.append(self._episode.outcome(False))
            elif key == "t":
                self._intervention = not self._intervention
        return TeleopCommand(twist=twist, mode="delta", frame=cfg.frame, gripper_toggle=toggle,
                             events=tuple(events), intervention=self._intervention)


def _strip_escapes(data: bytes) -> str:
    """The key characters, without terminal escape sequences (arrow keys, function keys)."""
    text = data.decode("latin-1")
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\x1b":
            if i + 1 >= len(text):
                out.append(c)                               # maybe the start of a sequence: keep for next read
                break
            j = i + 1
            if text[j] in "[O":                             # CSI / SS3: parameters, then one final byte
                j += 1
                while j < len(text) and not ("@" <= text[j] <= "~"):
                    j += 1
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)
