"""Control-period statistics: the rule that calls a tick late, shared by the arm node and the bench's floor probe.

Samples go into fixed numpy ring buffers (`RecentSamples`), not deques: a 1 kHz thread appends
in O(1) without allocating, and a summary is one C-level copy, where turning a 20,000-entry
deque into an array held the GIL (and so the control thread) for over a millisecond.
"""
from __future__ import annotations

import numpy as np

LATE_FACTOR = 1.5        # a period longer than this many nominal periods is a tick that did not happen in time


class RecentSamples:
    """The last `size` float samples, for percentiles."""

    def __init__(self, size: int):
        self._buf = np.empty(size)
        self._n = 0            # samples ever added

    def append(self, value: float) -> None:
        self._buf[self._n % len(self._buf)] = value
        self._n += 1

    def __len__(self) -> int:
        return min(self._n, len(self._buf))

    def values(self) -> np.ndarray:
        """A copy of the held samples (order not kept: only statistics are taken)."""
        return self._buf[:len(self)].copy()

    def percentiles(self, qs, scale: float = 1.0) -> list[float]:
        return [scale * float(v) for v in np.percentile(self.values(), qs)] if len(self) else []


class LoopStats:
    """Control-period statistics over the last few seconds, for /diagnostics and benchmarks."""

    def __init__(self, nominal: float, size: int = 5000):
        self.nominal = nominal
        self.periods = RecentSamples(size)
        self._last: float | None = None
        self.ticks = 0
        self.missed = 0          # since start: periods longer than LATE_FACTOR nominal

    def tick(self, now: float) -> None:
        if self._last is not None:
            period = now - self._last
            self.periods.append(period)
            self.ticks += 1
            self.missed += int(period > LATE_FACTOR * self.nominal)
        self._last = now

    def summary(self) -> dict[str, float]:
        if not len(self.periods):
            return {"rate_hz": 0.0, "period_error_pct": 0.0, "jitter_p99_ms": 0.0}
        p = self.periods.values()
        return {"rate_hz": 1.0 / p.mean(), "period_error_pct": 100 * abs(p.mean() - self.nominal) / self.nominal,
                "jitter_p99_ms": 1000 * float(np.percentile(np.abs(p - self.nominal), 99)),
                "ticks": self.ticks, "missed_ticks": self.missed}
