"""Loop statistics: the ring buffer keeps the newest samples, the late-tick rule counts overruns."""
import numpy as np
import pytest

from robot_stack.control.loop_stats import LoopStats, RecentSamples


def test_recent_samples_keep_the_newest_window():
    s = RecentSamples(100)
    assert len(s) == 0 and s.percentiles([50]) == []
    for v in range(250):
        s.append(float(v))
    assert len(s) == 100
    assert sorted(s.values()) == list(range(150, 250))          # the oldest 150 were overwritten
    p50, p99 = s.percentiles([50, 99], scale=1000.0)
    assert p50 == np.percentile(np.arange(150, 250), 50) * 1000 and p99 > p50


def test_periods_over_one_and_a_half_nominal_are_late():
    stats = LoopStats(0.001)
    t = 0.0
    for period in [0.001] * 10 + [0.0016, 0.0014, 0.003]:
        t += period
        stats.tick(t)
    summary = stats.summary()
    assert summary["missed_ticks"] == 2 and summary["ticks"] == 12
    assert 1.0 / summary["rate_hz"] == pytest.approx(np.mean([0.001] * 9 + [0.0016, 0.0014, 0.003]))
