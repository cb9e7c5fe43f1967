"""Real rclpy in tests: an isolated Context per test, a unique domain per test run, localhost-only discovery."""
import os
import random
import threading
import time

import pytest

os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import rclpy  # noqa: E402  (after the environment above)
from rclpy.executors import MultiThreadedExecutor  # noqa: E402


class RosFixture:
    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=3, context=self.context)
        self.nodes = []
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        try:
            self.executor.spin()
        except Exception:   # shutdown races end the spin
            pass

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def node(self, name):
        return self.add(rclpy.create_node(name, context=self.context))

    def close(self):
        for node in reversed(self.nodes):
            if hasattr(node, "close"):
                node.close()
        self.executor.shutdown(timeout_sec=2.0)
        for node in self.nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture
def ros():
    fixture = RosFixture()
    yield fixture
    fixture.close()


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
