"""Real rclpy in tests: an isolated Context per test, a unique domain per test run, localhost-only discovery."""
import os
import random
import time

import pytest

os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import rclpy  # noqa: E402  (after the environment above)

from robot_stack.child_graph import BackgroundSpin  # noqa: E402


class RosFixture:
    """An isolated context whose nodes a background executor spins; closing stops it before destroying them."""

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.spin = BackgroundSpin(context=self.context)

    def add(self, node):
        return self.spin.add(node)

    def node(self, name):
        return self.add(rclpy.create_node(name, context=self.context))

    def close(self):
        self.spin.close()


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
