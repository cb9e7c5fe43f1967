"""arm_node with `controller_process: true`, as a real node process: the twin's state comes through, a SIGKILLed
controller makes the node report it on /diagnostics and exit non-zero, and a SIGKILLed node leaves the controller
holding the pose."""
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped

from robot_stack.control import shm
from robot_stack.control.process import state_fields
from robot_stack.control.shm import SharedControl
from robot_stack.ros import convert, qos
from tests.nodes.conftest import wait_for


class ArmNodeProcess:
    """`python -m robot_stack.nodes.arm_node` with the controller in its own process; its log is read as it comes."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "robot_stack.nodes.arm_node", "--ros-args", "-p", "robot:=ur5e", "-p",
             "task:=reach", "-p", "controller_process:=true", "-p", "diagnostics_rate:=10.0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        threading.Thread(target=lambda: self.log.extend(iter(self.proc.stderr.readline, "")), daemon=True).start()

    def controller(self) -> tuple[int, str]:
        """The controller's pid and shared memory name, from the node's log."""
        wait_for(lambda: any("controller process pid" in line for line in self.log), timeout=60.0,
                 what="the controller's start in the log")
        line = next(line for line in self.log if "controller process pid" in line)
        pid, name = re.search(r"pid (\d+), shared memory (\S+)", line).groups()
        return int(pid), name

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def listen(ros):
    node = ros.node("observer")
    poses, diags = [], []
    node.create_subscription(PoseStamped, "arm/ee_pose", poses.append, qos.SENSOR)
    node.create_subscription(DiagnosticArray, "diagnostics", diags.append, 10)
    return poses, diags


def test_a_sigkilled_controller_is_reported_and_the_node_exits_non_zero(ros):
    poses, diags = listen(ros)
    arm = ArmNodeProcess()
    try:
        pid, _ = arm.controller()
        wait_for(lambda: len(poses) > 10, timeout=30.0, what="TCP poses from the node")
        os.kill(pid, signal.SIGKILL)
        arm.proc.wait(timeout=10)
        assert arm.proc.returncode not in (0, None)
        wait_for(lambda: any(s.level == DiagnosticStatus.ERROR and "controller process" in s.message
                             for d in diags for s in d.status), what="the loss on /diagnostics")
        assert any("controller process exited" in line and "ERROR" in line for line in arm.log), arm.log[-5:]
    finally:
        arm.kill()


def test_a_sigkilled_node_leaves_its_controller_holding_the_pose(ros):
    poses, _ = listen(ros)
    arm = ArmNodeProcess()
    shared = None
    try:
        pid, name = arm.controller()
        wait_for(lambda: len(poses) > 10, timeout=30.0, what="TCP poses from the node")
        pub = ros.node("commander").create_publisher(PoseStamped, "arm/target_pose", qos.COMMAND)
        pos, quat, _ = convert.parse_pose(poses[-1])
        shared = SharedControl.attach(name)
        for _ in range(6):                          # a stream toward a goal 40 cm away: moving when the node dies
            pub.publish(convert.pose_msg(pos + [0.0, 0.4, 0.0], quat, time.time()))
            time.sleep(0.05)
        arm.proc.send_signal(signal.SIGKILL)
        arm.proc.wait(timeout=10)
        wait_for(lambda: shared.read_status()[0][shm.S_MODE] == shm.MODES.index("hold"), timeout=2.0,
                 what="the watchdog hold")
        wait_for(lambda: shared.read_status()[1][shm.EVENT_KINDS.index("node_lost")] == 1, what="node_lost")
        rows = np.zeros((shared.layout.state_capacity, shared.layout.state_width))
        time.sleep(0.3)
        n, last, _ = shared.states_since(0, rows)
        held = state_fields(shared.layout, rows[n - 1].copy())
        time.sleep(1.0)
        n, _, _ = shared.states_since(last, rows)
        later = state_fields(shared.layout, rows[n - 1].copy())
        assert n > 50 and shm.pid_alive(pid)                                   # ticking on, alone
        assert np.linalg.norm(later["ee_pos"] - held["ee_pos"]) < 1e-3
        assert 0.02 < np.linalg.norm(held["ee_pos"] - pos) < 0.38              # stopped part-way, held there
    finally:
        arm.kill()
        try:
            pid, _ = arm.controller()
            if shm.pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        finally:
            if shared is not None:
                shared.owner = True                                            # its creator is gone
                shared.close()
