"""A ROS 2 graph in child processes (our launcher): start, stop with SIGINT then SIGKILL, isolated domains;
and the side of this process that joins it: nodes spun in the background, blocking service calls."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
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


class BackgroundSpin:
    """Spin `nodes` on a multi-threaded executor in a daemon thread; `close()` stops it, then closes (where they
    have `close`) and destroys the nodes and shuts rclpy down."""

    def __init__(self, *nodes, threads: int = 3):
        from rclpy.executors import MultiThreadedExecutor
        self.nodes = nodes
        self.executor = MultiThreadedExecutor(num_threads=threads)
        for node in nodes:
            self.executor.add_node(node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def close(self) -> None:
        import rclpy
        self.executor.shutdown(timeout_sec=2.0)
        self.thread.join(timeout=2.0)
        for node in self.nodes:
            if hasattr(node, "close"):
                node.close()
            node.destroy_node()
        rclpy.try_shutdown()


def call(client, request=None, timeout: float = 30.0, idempotent: bool = False):
    """Call a service from a thread other than the spinning one; `request` defaults to std_srvs/Trigger's.
    idempotent: resend when the answer is late (ros/service_call.py: a DDS server can drop a first reply)."""
    from robot_stack.ros.service_call import RESEND_AFTER, call_service
    return call_service(client, request, timeout=timeout, resend_after=RESEND_AFTER if idempotent else None)
