"""The machine's floor for late control ticks: a bare loop at the arm's rate and priority, and CPU steal.

The arm node's late ticks mix what the stack does (GIL, callbacks, physics) with what the
machine does to any thread (a virtual CPU the hypervisor deschedules, a halted CPU slow to
wake). This loop does nothing but sleep to each deadline at the control thread's SCHED_FIFO
priority, under the same rule (`LoopStats`), beside the running graph; the ticks it misses
are the machine's, and the arm's excess over them is ours. Steal time from /proc/stat says
how much CPU the hypervisor took meanwhile.

    python -m robot_stack.bench.tick_floor SECONDS [HZ] [PRIORITY]   # one JSON line
"""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from robot_stack.control.loop_stats import LoopStats
from robot_stack.nodes.common import raise_thread_priority


def cpu_times(stat: str | None = None) -> dict[str, int]:
    """The aggregate `cpu` line of /proc/stat in clock ticks (empty where there is none)."""
    try:
        text = stat if stat is not None else Path("/proc/stat").read_text()
    except OSError:
        return {}
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            return dict(zip(names, map(int, fields[1:1 + len(names)])))
    return {}


def steal_pct(before: dict[str, int], after: dict[str, int]) -> float:
    """CPU time the hypervisor took between two `cpu_times()` readings, as a percentage of all CPU time."""
    if not before or not after:
        return float("nan")
    total = sum(after.values()) - sum(before.values())
    return 100.0 * (after["steal"] - before["steal"]) / total if total > 0 else 0.0


def bare_loop(seconds: float, hz: float = 1000.0, priority: int = 80) -> dict:
    """Sleep to each deadline of a `hz` loop for `seconds`; late ticks counted as the arm node counts them."""
    fifo = raise_thread_priority(logging.getLogger("tick_floor"), priority, "floor loop")   # as the arm's loop
    dt = 1.0 / hz
    stats = LoopStats(dt, size=int(seconds * hz) + 1)
    before = cpu_times()
    deadline = time.monotonic()
    for _ in range(int(seconds * hz)):
        deadline += dt
        delay = deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stats.tick(time.monotonic())
    return {**stats.summary(), "fifo": fifo, "steal_pct": steal_pct(before, cpu_times())}


if __name__ == "__main__":
    a = sys.argv[1:]
    print(json.dumps(bare_loop(float(a[0]), float(a[1]) if len(a) > 1 else 1000.0, int(a[2]) if len(a) > 2 else 80)))
