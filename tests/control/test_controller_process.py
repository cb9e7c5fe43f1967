"""The controller in its own process over the twin: it follows commands sent through shared memory, it holds the
pose when its owner is SIGKILLed (then stops after `orphan_hold`), and the owner learns when the controller is
SIGKILLed or stops ticking."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from omegaconf import OmegaConf

from robot_stack.config import load_config
from robot_stack.control import shm
from robot_stack.control.process import ControllerProcess, state_fields
from robot_stack.control.shm import Layout, SharedControl
from tests.nodes.conftest import wait_for


def arm_config(robot="ur5e"):
    return OmegaConf.to_container(load_config("arm_node", [f"robot={robot}", "task=reach"]), resolve=True)


def newest_state(shared, rows, last=0):
    n, last, _ = shared.states_since(last, rows)
    return (state_fields(shared.layout, rows[n - 1].copy()) if n else None), last


@pytest.fixture
def arm():
    process = ControllerProcess(arm_config(), priority=0)
    yield process
    process.close()


def test_the_controller_process_follows_targets_and_holds_when_they_stop(arm):
    rows = arm.new_state_buffer()
    wait_for(lambda: newest_state(arm.shared, rows)[0] is not None, what="a state row")
    start, _ = newest_state(arm.shared, rows)
    goal = start["ee_pos"] + [0.03, 0.0, -0.04]
    for _ in range(15):
        arm.set_target(goal, start["ee_quat"], time.time())
        time.sleep(0.05)
    wait_for(lambda: np.linalg.norm(newest_state(arm.shared, rows)[0]["ee_pos"] - goal) < 2e-3, what="the goal")
    wait_for(lambda: arm.status()[0][shm.S_MODE] == shm.MODES.index("hold"), what="the watchdog hold")
    fields, counts, _ = arm.status()
    assert counts[shm.EVENT_KINDS.index("watchdog_hold")] == 1 and fields[shm.S_STALLS] == 1
    assert fields[shm.S_COMMANDS_TAKEN] == 15 and arm.fault() is None
    arm.set_target(goal, start["ee_quat"], time.time() - 5.0)               # stale: refused in the controller
    wait_for(lambda: arm.status()[1][shm.EVENT_KINDS.index("rejected")] == 1, what="the stale target refused")
    assert "stale" in arm.status()[2]


def test_ctrl_c_to_the_process_group_leaves_stopping_to_the_owner(arm):
    """SIGINT reaches the controller with its owner (Ctrl-C, `ros2 launch`): it keeps controlling until told."""
    beat = arm.status()[0][shm.S_HEARTBEAT]
    os.kill(arm.pid, signal.SIGINT)
    time.sleep(0.3)
    assert arm.proc.poll() is None and arm.fault() is None
    assert arm.status()[0][shm.S_HEARTBEAT] > beat
    arm.close()
    assert arm.proc.returncode == 0                 # then a clean stop on the owner's word


OWNER = textwrap.dedent("""
    import sys, time, json
    from omegaconf import OmegaConf
    from robot_stack.config import load_config
    from robot_stack.control.process import ControllerProcess
    cfg = OmegaConf.to_container(load_config("arm_node", ["robot=ur5e", "task=reach"]), resolve=True)
    arm = ControllerProcess(cfg, priority=0, orphan_hold=float(sys.argv[1]))
    print(json.dumps({"shm": arm.shared.name, "pid": arm.pid, "layout": arm.layout.__dict__}), flush=True)
    while True:                                     # a stream toward a far goal, until this process is killed
        arm.set_target([0.45, 0.3, 0.15], [1.0, 0.0, 0.0, 0.0], time.time())
        time.sleep(0.05)
""")


def test_when_the_owner_is_sigkilled_the_controller_holds_then_stops():
    import json

    owner = subprocess.Popen([sys.executable, "-c", OWNER, "3.0"], stdout=subprocess.PIPE, text=True)
    info = json.loads(owner.stdout.readline())
    shared = SharedControl(Layout(**info["layout"]), info["shm"])
    rows = np.zeros((shared.layout.state_capacity, shared.layout.state_width))
    try:
        wait_for(lambda: shared.read_status()[0][shm.S_MODE] == shm.MODES.index("target"), what="the arm moving")
        time.sleep(0.2)
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        killed = time.monotonic()
        wait_for(lambda: shared.read_status()[0][shm.S_MODE] == shm.MODES.index("hold"), timeout=2.0,
                 what="the watchdog hold after the owner died")
        assert time.monotonic() - killed < 0.2 + 0.5                          # the watchdog time, and some slack
        wait_for(lambda: shared.read_status()[1][shm.EVENT_KINDS.index("node_lost")] == 1, what="node_lost")
        time.sleep(0.3)                                                        # settled onto the held set point
        held, last = newest_state(shared, rows)
        time.sleep(1.0)
        later, _ = newest_state(shared, rows, last)
        assert later is not None and shm.pid_alive(info["pid"])               # still ticking, still holding
        assert np.linalg.norm(later["ee_pos"] - held["ee_pos"]) < 1e-3
        assert np.array_equal(later["setpoint_pos"], held["setpoint_pos"])
        wait_for(lambda: not shm.pid_alive(info["pid"]) or _reaped(info["pid"]), timeout=10.0,
                 what="the orphaned controller to stop after orphan_hold")
        assert shared.header[shm.H_EXITED] == 1
    finally:
        if shm.pid_alive(info["pid"]):
            os.kill(info["pid"], signal.SIGKILL)
        shared.owner = True                                                    # its creator is gone: unlink it here
        shared.close()


def _reaped(pid: int) -> bool:
    """A zombie (exited, parent gone, not yet reaped by init) counts as stopped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_the_owner_learns_when_the_controller_stops_ticking_or_is_sigkilled(arm):
    assert arm.fault() is None
    os.kill(arm.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: arm.fault() is not None, timeout=3.0, what="a stall reported")
        assert "not ticked" in arm.fault()
    finally:
        os.kill(arm.pid, signal.SIGCONT)
    wait_for(lambda: arm.fault() is None, what="ticking again")
    os.kill(arm.pid, signal.SIGKILL)
    wait_for(lambda: arm.fault() is not None and "exited" in arm.fault(), timeout=3.0, what="the exit reported")
    assert "-9" in arm.fault()
