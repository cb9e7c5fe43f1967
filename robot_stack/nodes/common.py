"""What every node's main() does: init rclpy from argv, build the node, spin, shut down cleanly."""
from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.executors import SingleThreadedExecutor

from robot_stack.dds import configure_environment


CLEANUP_SECONDS = 3.0     # launchers escalate to SIGTERM after 5 s
# Set by the first SIGINT or SIGTERM of a node process (run_node's stop): a node's own threads tell the graph's
# shutdown, which one Ctrl-C starts in every node at once (a commander may stop first), from a fault.
STOPPING = threading.Event()


# SCHED_FIFO priority of a command source's loop (teleop, the scripted commander): above the cameras' 40, below
# the policy's 50 and the arm's 70-80. At SCHED_OTHER on 2 cores the renderers and the arm's loop, all FIFO, starved
# it: its 0.1 s sleeps took up to 0.19 s, the watchdog held the arm (0.2 s) 5 times in 2 demo episodes.
COMMAND_SOURCE_PRIORITY = 45


def raise_thread_priority(logger, priority: int, what: str) -> bool:
    """SCHED_FIFO for the calling thread where allowed (priority 0: leave it), and a short GIL switch interval.

    Other threads of the process would otherwise hold the GIL for up to 5 ms, and other
    processes (camera renderers) would preempt the thread mid-computation.
    """
    if priority <= 0:
        return False
    sys.setswitchinterval(2e-4)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, AttributeError, OSError) as exc:
        logger.warning(f"no real-time priority for the {what} thread ({exc}); expect more jitter")
        return False
    logger.info(f"{what} thread at SCHED_FIFO priority {priority}")
    return True


@contextmanager
def thread_priority(logger, priority: int, what: str):
    """`raise_thread_priority` for a section of a thread that is not ours to keep real-time (a CLI's or a test's
    main thread: threads and processes it starts later would inherit the policy), put back after."""
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    raise_thread_priority(logger, priority, what)
    try:
        yield
    finally:
        try:
            os.sched_setscheduler(0, policy, param)
        except OSError:
            pass


def run_node(factory: Callable[[], "rclpy.node.Node"], argv: list[str] | None = None) -> int:
    """Start a node from command-line ROS arguments (`--ros-args -p ... -r __node:=...`)."""
    argv = sys.argv if argv is None else argv
    # A node started on its own (not by our launcher) gets the localhost-only, loopback-bound settings too;
    # rcl reads them at init.
    configure_environment()
    rclpy.init(args=argv)
    node = None
    stop = STOPPING
    stop.clear()                # a process (a test) may run nodes one after another
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        node = factory()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        # Once the node is up, Ctrl-C asks the loop to stop as SIGTERM does, rather than raising KeyboardInterrupt
        # wherever the main thread is: raised inside rclpy's Task() it left a half-built Task whose __del__
        # printed a traceback at a graph's Ctrl-C. A second Ctrl-C still interrupts at once.
        signal.signal(signal.SIGINT, lambda *_: _interrupt_again() if stop.is_set() else stop.set())
        # Spin in short slices: a Python signal handler only runs when the wait returns, and a
        # node without timers would otherwise never wake up to notice SIGTERM.
        while rclpy.ok() and not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, RuntimeError) as exc:     # configuration and driver errors: one clear line
        if node is not None and not rclpy.ok():
            return 0        # the context went down under a spin (Ctrl-C, a stopping graph): a clean stop
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        # Clean-up must not keep a stopping graph waiting: whatever hangs, exit within the bound.
        guard = threading.Timer(CLEANUP_SECONDS, lambda: os._exit(0))
        guard.daemon = True                 # a clean exit does not wait for it
        guard.start()
        if node is not None:
            if hasattr(node, "close"):
                node.close()
            node.destroy_node()
        rclpy.try_shutdown()
        guard.cancel()                      # done in time: nothing left to bound
    return 0


def _interrupt_again() -> None:
    raise KeyboardInterrupt


def take_all(sub):
    """Every message waiting on `sub`, oldest first: for a subscription that no executor spins, read by the
    thread that needs it (the arm's control loop, the policy server's decision) when it needs it."""
    while True:
        with sub.handle:
            taken = sub.handle.take_message(sub.msg_type, sub.raw)
        if taken is None:
            return
        yield taken[0]


def take_newest(sub):
    """The newest message waiting on `sub` (the older ones are dropped), or None."""
    newest = None
    for newest in take_all(sub):
        pass
    return newest


def declare_any(node, name: str):
    """Declare a parameter of any type (launch files type values as YAML would); returns its value or ''."""
    node.declare_parameter(name, "", ParameterDescriptor(dynamic_typing=True))
    value = node.get_parameter(name).value
    return "" if value is None else value


def startup_only(node, runtime: tuple[str, ...] = ()) -> None:
    """Refuse, with a reason, a later set of any parameter but `runtime` (whose owner validates them): the node
    reads its parameters once, and rclpy otherwise reports a set it will never act on as successful. Call it after
    the node's last declaration (a declaration passes through the same callbacks). Never raises: an exception in
    a parameter callback takes the node down."""
    from rcl_interfaces.msg import SetParametersResult

    def check(params):
        for p in params:
            if p.name not in runtime and p.name != "use_sim_time":
                return SetParametersResult(successful=False, reason=f"{p.name} is read at start-up only: restart "
                                                                    f"{node.get_name()} to change it")
        return SetParametersResult(successful=True)
    node.add_on_set_parameters_callback(check)


def overrides_param(node, name: str = "overrides") -> list[str]:
    """Hydra overrides passed as one ROS string parameter, space separated."""
    return [v for v in str(declare_any(node, name)).split() if v]


def node_config(node, config: str, params, key=lambda name: name):
    """conf/<config>.yaml composed with the node's `overrides` parameter, then each of `params` set as a
    ROS parameter (`key(name)` is its config key); one place every configurable node reads its config."""
    from robot_stack.config import load_config

    overrides = overrides_param(node)
    for name in params:
        value = declare_any(node, name)
        if value not in ("", None):
            overrides.append(f"{key(name)}={value}")
    return load_config(config, overrides)
