"""A ROS 2 graph in child processes (our launcher): start, stop with SIGINT then SIGKILL, isolated domains."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time


def isolated_domain() -> None:
    """Give this process (and the children it starts) a ROS domain of its own for the run."""
    os.environ["ROS_DOMAIN_ID"] = str(random.randint(110, 200))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def spin_for(node, seconds: float, done=lambda: False) -> None:
    import rclpy
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not done():
        rclpy.spin_once(node, timeout_sec=0.01)
