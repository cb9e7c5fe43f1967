"""child_graph.BackgroundSpin survives rclpy's destroy-while-spinning races and stops without stray errors."""
import gc
import time

import rclpy
from std_msgs.msg import Int32

from robot_stack.child_graph import BackgroundSpin
from tests.nodes.conftest import wait_for


def test_spinning_goes_on_while_subscriptions_come_and_go(ros):
    node = ros.node("churn")
    pub = node.create_publisher(Int32, "churn", 10)
    got = []
    node.create_subscription(Int32, "churn", lambda m: got.append(m.data), 10)
    node.create_timer(0.001, lambda: None)            # the executor rebuilds its wait set all the time
    for k in range(100):          # a closing env destroys its subscriptions on a node someone else spins
        subs = [node.create_subscription(Int32, "churn", lambda m: None, 10) for _ in range(10)]
        pubs = [node.create_publisher(Int32, f"churn{j}", 10) for j in range(5)]
        pub.publish(Int32(data=k))
        for sub in subs:
            node.destroy_subscription(sub)
        for p in pubs:
            node.destroy_publisher(p)
    assert ros.spin.thread.is_alive()
    before = len(got)
    for k in range(20):
        pub.publish(Int32(data=1000 + k))
        time.sleep(0.005)
    wait_for(lambda: any(v >= 1000 for v in got[before:]), what="messages after the churn")


def test_close_drains_running_callbacks_before_shutting_the_executor_down(capfd):
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("busy", context=context)
    calls = []
    for _ in range(8):            # more ready callbacks than pool threads: some wait in its queue at any moment
        node.create_timer(0.001, lambda: (calls.append(1), time.sleep(0.005)))
    spin = BackgroundSpin(node, threads=2, context=context)
    wait_for(lambda: len(calls) > 50, what="timer callbacks")
    spin.close()
    assert not spin.thread.is_alive() and not context.ok()
    del spin, node
    gc.collect()
    assert "never retrieved" not in capfd.readouterr().err
