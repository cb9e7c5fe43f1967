"""Stand-ins for the vendor hardware libraries (pylibfranka, ur_rtde, pyrealsense2).

Each fake keeps the real bindings' names, argument order and return types, so a driver
that calls a fake wrongly would call the real library wrongly too. Every call is recorded
in order in a `CallLog`, and any call can be made to raise the vendor's exception type.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any


class CallLog:
    """The ordered (name, args) of every call into a fake, with failures to inject on demand."""

    def __init__(self):
        # the newest calls only: a node run on a fake for minutes (the launch tests) must not grow without bound
        self.calls: deque[tuple[str, tuple[Any, ...]]] = deque(maxlen=100_000)
        self._failures: dict[str, list[BaseException]] = {}
        self._lock = threading.Lock()          # gripper calls come from the drivers' worker threads

    def record(self, name: str, *args) -> None:
        """Log the call, then raise if a failure is queued for this name."""
        with self._lock:
            self.calls.append((name, args))
            queued = self._failures.get(name)
            exc = queued.pop(0) if queued else None
        if exc is not None:
            raise exc

    def fail(self, name: str, exc: BaseException, times: int = 1) -> None:
        """Make the next `times` calls of `name` raise `exc` (after being logged)."""
        with self._lock:
            self._failures.setdefault(name, []).extend([exc] * times)

    def names(self) -> list[str]:
        with self._lock:
            return [n for n, _ in self.calls]

    def args(self, name: str) -> list[tuple[Any, ...]]:
        with self._lock:
            return [a for n, a in self.calls if n == name]

    def count(self, name: str) -> int:
        return len(self.args(name))

    def index(self, name: str) -> int:
        """Position of the first call of `name` (ValueError if never called)."""
        return self.names().index(name)

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()
