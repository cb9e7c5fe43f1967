"""A ROS 2 graph in child processes (our launcher): start (supervised: it dies with us), stop with SIGINT then
SIGKILL, isolated domains; and the side of this process that joins it: nodes spun in the background, blocking
service calls."""
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
    from robot_stack.dds import configure_environment
    os.environ["ROS_DOMAIN_ID"] = str(random.randint(110, 200))
    configure_environment()     # localhost-only, loopback sockets (dds.py); this process joins the graph too


def start(args: list[str]) -> subprocess.Popen:
    """`python ARGS` in a session of its own, taken down if this process dies: a launcher through its supervising
    pipe, anything else (the benches start nodes and publishers directly) by SIGTERM as its parent dies; call it
    from a thread that outlives the child (the signal follows the starting thread, supervision.py)."""
    from robot_stack.dds import prepare_graph
    from robot_stack.supervision import die_with_parent, start_graph
    # Before the graph's participants exist: what SIGKILLed processes left in /dev/shm goes (the launcher does
    # it again; cheap), and this process, which joins the graph, gets the same DDS settings as the nodes.
    prepare_graph()
    return start_graph([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       preexec_fn=die_with_parent(signal.SIGTERM))


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
    have `close`) and destroys the nodes and shuts their context down.

    Why not `executor.spin()` and `executor.shutdown()`: rclpy's shutdown destroys the executor's guard
    condition while handlers in its pool are still running, and each one that then triggers it fails with
    "cannot use Destroyable because destruction was requested" (printed at exit as "never retrieved";
    ros2/rclpy#1724). So the loop here ends first, the pool drains, and only then the executor shuts down."""

    def __init__(self, *nodes, threads: int = 3, context=None):
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.task import Future
        self.nodes = list(nodes)
        self.context = context
        self.executor = MultiThreadedExecutor(num_threads=threads, context=context)
        for node in nodes:
            self.executor.add_node(node)
        self._stop = Future()          # done wakes the executor: no polling timeout, no timer per wake-up
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def _spin(self) -> None:
        from rclpy.exceptions import InvalidHandle
        from rclpy.executors import ExternalShutdownException
        while not self._stop.done() and self.executor.context.ok():
            try:
                self.executor.spin_until_future_complete(self._stop)
            except ExternalShutdownException:
                return
            except InvalidHandle:
                # An entity was destroyed (a closing env's subscriptions) while the executor put it in its wait
                # set (ros2/rclpy#1206): the next wait set leaves it out, so spin on.
                continue

    def stop(self) -> None:
        """Stop spinning and let every callback already handed to the pool finish."""
        if not self._stop.done():
            self._stop.set_result(True)
        self.thread.join(timeout=2.0)
        pool = getattr(self.executor, "_executor", None)         # the ThreadPoolExecutor (rclpy >= Jazzy)
        if pool is not None and not self.thread.is_alive():
            pool.shutdown(wait=True)
        self.executor.shutdown(timeout_sec=2.0)

    def close(self) -> None:
        import rclpy
        self.stop()
        for node in reversed(self.nodes):
            if hasattr(node, "close"):
                node.close()
        for node in self.nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def call(client, request=None, timeout: float = 30.0, idempotent: bool = False):
    """Call a service from a thread other than the spinning one; `request` defaults to std_srvs/Trigger's.
    idempotent: resend when the answer is late (ros/service_call.py: a DDS server can drop a first reply)."""
    from robot_stack.ros.service_call import RESEND_AFTER, call_service
    return call_service(client, request, timeout=timeout, resend_after=RESEND_AFTER if idempotent else None)
