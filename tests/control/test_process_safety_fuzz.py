"""Random and adversarial targets written straight into the controller process's command ring (no admission by a
node) never take the measured TCP out of the box or the set point over the speed limit, and non-finite ones are refused there:
the envelope is inside the process (hypothesis)."""
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from robot_stack.config import load_config
from robot_stack.control import shm
from robot_stack.control.process import ControllerProcess, state_fields

coord = st.one_of(st.floats(-3.0, 3.0), st.sampled_from([np.nan, np.inf, -np.inf, 1e9, -1e9]))
quat = st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=4)
target = st.tuples(st.lists(coord, min_size=3, max_size=3), quat, st.floats(0.1, 0.5))

OUTSIDE_TOLERANCE = 0.005      # m: the most the measured TCP may be outside the workspace box


@pytest.fixture(scope="module")
def arm():
    cfg = OmegaConf.to_container(load_config("arm_node", ["robot=panda", "task=reach", "realtime=false"]),
                                 resolve=True)
    process = ControllerProcess(cfg, priority=0, publish_every=1)       # not paced: as fast as the CPU allows
    yield process
    process.close()


def stream(arm, pos, q, seconds, check) -> None:
    """Send the target every 50 ms (as teleop streams it) for `seconds`, checking every state row meanwhile."""
    rows = arm.new_state_buffer()
    last = int(arm.shared.header[shm.H_STATE_WRITE])
    deadline = time.monotonic() + seconds
    next_send = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_send:
            arm.set_target(np.array(pos, dtype=float), np.array(q, dtype=float), time.time())
            next_send = time.monotonic() + 0.05
        n, last, _ = arm.states_since(last, rows)
        for row in rows[:n]:
            check(state_fields(arm.layout, row))
        time.sleep(0.002)


def envelope_check(arm, setpoints: list | None = None):
    """A check of one state row: measured TCP in the box (within tolerance), set point in it and moving under the
    speed limit; the set points checked go to `setpoints`, the measured speeds to `check.measured_speed`."""
    limits = arm_limits()
    low, high = np.array(limits.workspace_low), np.array(limits.workspace_high)
    dt = 1.0 / arm.spec.control_hz                                           # one row per control period
    previous = {}
    measured_speed = []

    def check(s):
        tcp = s["ee_pos"]
        assert np.linalg.norm(tcp - np.clip(tcp, low, high)) <= OUTSIDE_TOLERANCE, tcp
        assert np.array_equal(s["setpoint_pos"], np.clip(s["setpoint_pos"], low, high))
        if setpoints is not None:
            setpoints.append(s["setpoint_pos"].copy())
        if previous and s["seq"] == previous["seq"] + 1:
            # The envelope's own bound, exact, and the measured TCP's speed (docs/design.md, "open finding": 0.59-1.2
            # m/s seen after some draws: this test fails on them until that is fixed).
            step = np.linalg.norm(s["setpoint_pos"] - previous["setpoint"]) / dt
            assert step <= limits.max_linear_speed * (1 + 1e-6), step
            speed = np.linalg.norm(tcp - previous["tcp"]) / dt
            measured_speed.append(speed)
            assert speed < limits.max_linear_speed * 1.15, speed
        previous.update(seq=float(s["seq"]), tcp=tcp.copy(), setpoint=s["setpoint_pos"].copy())
    check.measured_speed = measured_speed
    return check


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(targets=st.lists(target, min_size=1, max_size=3))
def test_the_measured_tcp_stays_in_the_box_and_under_the_speed_limit(arm, targets):
    check = envelope_check(arm)
    rejected_before = arm.status()[1][shm.EVENT_KINDS.index("rejected")]
    bad = 0
    for pos, q, seconds in targets:
        bad += not (np.all(np.isfinite(pos)) and np.all(np.isfinite(q)))
        stream(arm, pos, q, seconds, check)
    time.sleep(0.05)
    assert arm.fault() is None
    assert arm.status()[1][shm.EVENT_KINDS.index("rejected")] - rejected_before >= bad   # refused in the process


def test_targets_past_the_faces_and_the_reach_edge_keep_the_measured_tcp_in_the_box(arm):
    """Past the top and a side face (reachable: the set point runs along the face) and past the Panda's reach for a
    top-down hand at the far face (the node's fuzz test's first edge target), each streamed for 2.5 s (the set point
    leads the arm by at most max_lead, so a long move goes at the arm's pace, not ahead of it)."""
    arm.reset()                          # from the home pose, not wherever the fuzz examples left the arm
    check = envelope_check(arm, seen := [])
    top_down = [1.0, 0.0, 0.0, 0.0]
    for goal in ((0.5, 0.0, 1.0), (0.4, 0.9, 0.3), (0.85, 0.0, 0.3)):
        stream(arm, goal, top_down, 2.5, check)
    setpoints = np.array(seen)
    assert setpoints[:, 2].max() > 0.64 and setpoints[:, 1].max() > 0.54        # the faces were reached
    assert arm.fault() is None


def arm_limits():
    from robot_stack.control.safety import SafetyLimits
    cfg = load_config("arm_node", ["robot=panda"])
    return SafetyLimits(**OmegaConf.to_container(cfg.robot.safety))
