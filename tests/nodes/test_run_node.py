"""run_node: a graph stopping under a spin is a clean stop; a node that cannot start says why in one line."""
import os
import signal
import time

import pytest
import rclpy
from rclpy.node import Node

from robot_stack.nodes.common import CLEANUP_SECONDS, run_node


@pytest.fixture
def keep_sigterm():
    old = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, old)


def test_a_spin_that_fails_because_the_graph_is_stopping_is_a_clean_stop(capsys, keep_sigterm, monkeypatch):
    exits = []
    monkeypatch.setattr(os, "_exit", exits.append)    # the clean-up guard's way out, recorded instead
    def factory():
        node = Node("stopping_node")

        def tick():
            rclpy.shutdown()        # Ctrl-C: rclpy's handler takes the context down under a running spin ...
            raise RuntimeError("Unable to convert call argument '0' to Python object")   # ... as seen in `make demo`
        node.create_timer(0.01, tick)
        return node
    assert run_node(factory, ["node"]) == 0
    assert "error" not in capsys.readouterr().err
    time.sleep(CLEANUP_SECONDS + 0.5)
    assert exits == []          # a clean-up that finished in time leaves no guard behind to kill the process


def test_a_node_that_cannot_start_says_why_in_one_line(capsys, keep_sigterm):
    def factory():
        raise ValueError("parameter robot must be panda, fr3 or ur5e, got 'kuka'")
    assert run_node(factory, ["node"]) == 1
    assert capsys.readouterr().err.strip() == "error: parameter robot must be panda, fr3 or ur5e, got 'kuka'"
