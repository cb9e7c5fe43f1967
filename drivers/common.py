"""Pieces every hardware driver needs: device clocks mapped to the host clock, the pacing of a loop a driver runs
itself, a gripper worker thread."""
from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, Callable



class Pacer:
    """Paces a control loop that a driver runs itself (the twin in real time, a ros2_control bridge): `wait()`
    sleeps to the next period, spins its last `SPIN_MARGIN`, and restarts the schedule after a stall instead of
    rushing the owed ticks.

    A tick that starts late still sleeps `LATE_YIELD`: a loop running behind, back to back, otherwise kept the
    GIL for CPython's whole 5 ms switch interval at a time, and the threads of the same process that deliver its
    input (a ROS executor taking /joint_states) starved: the ros2_control driver saw its joint states go stale
    for 1.3 s in a loaded full test run. With `sleep(0)` it recurred once (1.9 s, a concurrent pip install):
    a voluntary release lets the releasing thread take the GIL straight back before a waiting thread has woken,
    so the sleep is made long enough to hand it over (not reproduced on demand: a guard, not a measured fix)."""

    SPIN_MARGIN = 5e-5      # s before a tick when sleeping stops and spinning starts (spinning holds the GIL)
    LATE_YIELD = 2e-4       # s a late tick sleeps first: long enough for a thread waiting on the GIL to take it
    MAX_CATCH_UP = 0.05     # s: within this, late ticks run back to back so the mean rate holds

    def __init__(self, period: float):
        self.period = period
        self.overruns = 0               # ticks that started more than a period late
        self._next = time.monotonic()

    def restart(self) -> None:
        """Pace from now: time spent elsewhere (a connect, a reset) is not owed."""
        self._next = time.monotonic()

    def wait(self) -> None:
        self._next += self.period
        delay = self._next - time.monotonic()
        if delay > self.SPIN_MARGIN:
            time.sleep(delay - self.SPIN_MARGIN)
        else:
            time.sleep(self.LATE_YIELD)
        while time.monotonic() < self._next:
            pass
        if delay < -self.period:
            self.overruns += 1
            if delay < -self.MAX_CATCH_UP:
                self._next = time.monotonic()


class ClockSync:
    """Puts device-clock times on the host clock, so stamps compare across devices.

    The offset (host - device) is the smallest seen: the sample with the least transport
    delay. It may creep up by `max_drift` s/s so a host clock that runs faster than the
    device's is followed, while each tick keeps the device's own spacing (no host jitter).
    """

    def __init__(self, clock: Callable[[], float], max_drift: float = 1e-4):
        self.clock = clock
        self.max_drift = max_drift
        self.offset: float | None = None
        self._last: float | None = None

    def stamp(self, device_time: float) -> float:
        sample = self.clock() - device_time
        if self.offset is not None:
            self.offset += self.max_drift * max(device_time - self._last, 0.0)
        if self.offset is None or sample < self.offset:
            self.offset = sample
        self._last = device_time
        return device_time + self.offset


class GripperWorker:
    """Runs blocking gripper calls off the control thread: the newest command only, plus a width poll.

    The Franka Hand's move() and grasp() return when the fingers stop (up to a second), far
    longer than a 1 ms tick. Commands that arrive meanwhile replace each other; only the
    latest is sent when the hand is free. The width is polled in its own thread so it stays
    current while a move is running.
    """

    def __init__(self, send: Callable[[float], None], poll: Callable[[], float] | None,
                 poll_hz: float, name: str):
        self._send, self._poll, self._period = send, poll, 1.0 / poll_hz
        self._cond = threading.Condition()
        self._pending: float | None = None
        self._busy = False
        self._closed = False
        self.error: BaseException | None = None
        self.width: float | None = None
        self._threads = [threading.Thread(target=self._send_loop, name=f"{name}-cmd", daemon=True)]
        if poll is not None:
            self._threads.append(threading.Thread(target=self._poll_loop, name=f"{name}-state", daemon=True))
        for t in self._threads:
            t.start()

    def submit(self, value: float) -> None:
        with self._cond:
            self._pending = value
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is pending or being sent (tests and shutdown wait on this)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def close(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)

    @property
    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._pending is not None)
                if self._closed:
                    return
                value, self._pending, self._busy = self._pending, None, True
            try:
                self._send(value)
            except Exception as exc:          # reported on the control thread's next command
                self.error = exc
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _poll_loop(self) -> None:
        while True:
            try:
                self.width = float(self._poll())
            except Exception as exc:
                self.error = exc
            with self._cond:
                if self._cond.wait_for(lambda: self._closed, self._period):
                    return


def config_get(obj, key, default):
    """Read a key from a dict, an OmegaConf node or an object alike."""
    if obj is None:
        return default
    if hasattr(obj, "get"):
        return obj.get(key, default)
    return getattr(obj, key, default)


def dataclass_overrides(cls, section) -> dict[str, Any]:
    """The fields of dataclass `cls` that `section` sets, sequences as tuples."""
    out = {}
    for key in cls.__dataclass_fields__:
        value = config_get(section, key, None)
        if value is not None:
            out[key] = tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
    return out
