"""Console-script entry of every node process (setup.py): the node's main(), then a prompt exit.

A node that has stopped (run_node: closed, destroyed, rclpy shut down within a few hundred ms of Ctrl-C) then spent
2-5 s more in the interpreter's own teardown on a loaded 2-core machine, its main thread on the CPU throughout
(collecting and clearing every module and object of MuJoCo, torch, rclpy), and launch_ros escalates to SIGTERM 5 s
after Ctrl-C. So here the ROS context is finalised explicitly (the DDS participant leaves: its peers are told and
its shared-memory segment is freed), exit handlers run, output is flushed, and the process ends without the
teardown. Code that calls a node's main() in-process (tests) does not come through here.
"""
from __future__ import annotations

import atexit
import importlib
import os
import sys


def run(module: str) -> None:
    code = importlib.import_module(module).main()
    try:
        import rclpy
        rclpy.get_default_context().destroy()     # deferred by rcl if an entity still uses it: left to the OS then
    except Exception:                            # never keep a stopping process from ending over its clean-up
        pass
    atexit._run_exitfuncs()                      # what the interpreter would run first (logging's flush among them)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code if isinstance(code, int) else 1)


def arm_node() -> None:
    run("robot_stack.nodes.arm_node")


def camera_node() -> None:
    run("robot_stack.nodes.camera_node")


def recorder_node() -> None:
    run("robot_stack.nodes.recorder_node")


def teleop_node() -> None:
    run("robot_stack.nodes.teleop_node")


def policy_server() -> None:
    run("robot_stack.nodes.policy_server")


def actor_node() -> None:
    run("robot_stack.nodes.actor_node")


def learner_node() -> None:
    run("robot_stack.nodes.learner_node")
