"""Control-period statistics: the rule that calls a tick late, shared by the arm node and the bench's floor probe."""
from __future__ import annotations

from collections import deque

import numpy as np

LATE_FACTOR = 1.5        # a period longer than this many nominal periods is a tick that did not happen in time


class LoopStats:
    """Control-period statistics over the last few seconds, for /diagnostics and benchmarks."""

    def __init__(self, nominal: float, size: int = 5000):
        self.nominal = nominal
        self.periods: deque[float] = deque(maxlen=size)
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
        if not self.periods:
            return {"rate_hz": 0.0, "period_error_pct": 0.0, "jitter_p99_ms": 0.0}
        p = np.array(self.periods)
        return {"rate_hz": 1.0 / p.mean(), "period_error_pct": 100 * abs(p.mean() - self.nominal) / self.nominal,
                "jitter_p99_ms": 1000 * float(np.percentile(np.abs(p - self.nominal), 99)),
                "ticks": self.ticks, "missed_ticks": self.missed}
