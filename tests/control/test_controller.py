"""The ROS-free Controller over the twin driver, on simulated time: following, the watchdog, e-stop, home, the
joint-margin check, chunks, and the envelope last before the driver."""
import numpy as np
import pytest

from robot_stack.control.controller import Controller
from robot_stack.control.safety import SafetyLimits, SafetyViolation
from robot_stack.drivers.mujoco import MujocoArmConfig, MujocoArmDriver
from robot_stack.types import ActionChunk, RobotState


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def twin(robot="ur5e", **limits):
    clock = Clock()
    driver = MujocoArmDriver(MujocoArmConfig(robot=robot, realtime=False, task="reach", seed=0), clock=clock)
    driver.connect()
    controller = Controller(driver.spec, SafetyLimits(**limits), clock=clock, monotonic=clock)
    return clock, driver, controller


def run(clock, driver, controller, seconds):
    """Control periods for `seconds` of simulated time; returns the TCP after each."""
    tcp = []
    for _ in range(round(seconds / controller.dt)):
        controller.tick(driver.read_state()).send(driver)
        clock.t += controller.dt
        tcp.append(driver.scene.ee_pose()[0])
    return np.array(tcp)


def test_a_streamed_target_is_reached_under_the_speed_limit():
    clock, driver, c = twin()
    pos, quat = driver.scene.ee_pose()
    goal = pos + [0.06, -0.04, -0.05]
    path = []
    for _ in range(15):                                   # a target at 10 Hz, as teleop streams it
        c.set_target(goal, quat, clock.t)
        path.append(run(clock, driver, c, 0.1))
    path = np.concatenate(path)
    assert np.linalg.norm(path[-1] - goal) < 2e-3
    speed = np.linalg.norm(np.diff(path, axis=0), axis=1) / c.dt
    assert speed.max() < 1.15 * c.limits.max_linear_speed
    assert c.mode == "target"


def test_the_watchdog_holds_once_commands_stop_and_reports_a_stalled_stream():
    stalls = []
    clock, driver, c = twin()
    c.on_stall = stalls.append
    pos, quat = driver.scene.ee_pose()
    far = pos + [0.0, 0.25, -0.1]                         # 0.27 m: at 0.5 m/s ~0.55 s, past the 0.2 s watchdog
    c.set_target(pos, quat, clock.t)
    run(clock, driver, c, 0.02)
    c.set_target(far, quat, clock.t)
    run(clock, driver, c, 0.3)
    assert c.mode == "hold" and c.safety.events.counts["watchdog_hold"] == 1
    assert len(stalls) == 1 and c.take_stalls() == 1 and c.take_stalls() == 0 and c.stall_since is not None
    held = c.setpoint[0].copy()
    run(clock, driver, c, 0.5)
    assert np.array_equal(c.setpoint[0], held)
    assert np.linalg.norm(driver.scene.ee_pose()[0] - held) < 2e-3
    assert 0.02 < np.linalg.norm(held - pos) and np.linalg.norm(held - far) > 0.05    # started, did not finish


def test_estop_latches_until_recover_and_home_moves_in_joint_space():
    clock, driver, c = twin()
    pos, quat = driver.scene.ee_pose()
    c.stop()
    for _ in range(5):
        c.set_target(pos + [0.05, 0, 0], quat, clock.t)
        run(clock, driver, c, 0.05)
    assert c.mode == "estop" and np.linalg.norm(driver.scene.ee_pose()[0] - pos) < 2e-3
    assert c.home() == (False, "e-stop latched")
    c.recover()
    assert c.home()[0]
    sent = c.tick(driver.read_state())
    assert sent.kind == "joints" and c.mode == "home"
    sent.send(driver)
    for _ in range(3000):
        if c.mode != "home":
            break
        c.tick(driver.read_state()).send(driver)
        clock.t += c.dt
    assert c.mode == "hold"
    np.testing.assert_allclose(driver.scene.q, driver.spec.q_home, atol=0.01)


def test_commands_are_validated_before_they_reach_the_loop():
    clock, driver, c = twin()
    pos, quat = driver.scene.ee_pose()
    for bad in (lambda: c.set_target([np.nan, 0, 0.3], quat, clock.t),
                lambda: c.set_target(pos, quat, clock.t - 5.0),                    # stale
                lambda: c.set_target(pos, quat, clock.t + 5.0),                    # from a wrong clock
                lambda: c.set_gripper(1.5),
                lambda: c.set_chunk(ActionChunk(clock.t + np.array([0.1, 3.0]), np.array([pos, pos]),
                                                np.tile(quat, (2, 1)), np.zeros(2)))):      # past the horizon
        with pytest.raises(SafetyViolation):
            bad()
    run(clock, driver, c, 0.1)
    assert c.mode == "hold" and np.linalg.norm(driver.scene.ee_pose()[0] - pos) < 2e-3


def test_a_chunk_plays_at_its_times_and_is_over_a_watchdog_period_after_its_last_step():
    clock, driver, c = twin()
    pos, quat = driver.scene.ee_pose()
    times = clock.t + np.linspace(0.05, 0.4, 8)
    positions = pos + np.outer(np.linspace(0.0, 1.0, 8), [0.0, 0.0, -0.06])
    c.set_chunk(ActionChunk(times, positions, np.tile(quat, (8, 1)), np.ones(8)), stamp=clock.t - 0.05)
    run(clock, driver, c, 0.3)
    assert c.mode == "chunk" and c.gripper == 1.0
    run(clock, driver, c, 0.5)
    assert c.mode == "hold" and c.chunk is None and c.gripper == 1.0      # over, and the hold keeps the grasp
    assert abs(driver.scene.ee_pose()[0][2] - positions[-1][2]) < 3e-3
    assert len(c.chunk_latency) == 1


def test_the_envelope_is_last_before_the_driver_whatever_the_target():
    """A target past the box face is clipped; the set point sent never leaves the box nor steps over the speed
    limit, even when the command is an in-box jump far from the arm."""
    clock, driver, c = twin(workspace_high=(0.85, 0.55, 0.35))
    low, high = np.array(c.limits.workspace_low), np.array(c.limits.workspace_high)
    _, quat = driver.scene.ee_pose()
    previous = None
    for goal in ([0.5, 0.0, 0.6], [0.3, 0.3, 0.1], [0.5, -0.2, 0.34]):
        c.set_target(goal, quat, clock.t)
        for _ in range(100):
            sent = c.tick(driver.read_state())
            assert np.all(sent.pos >= low - 1e-12) and np.all(sent.pos <= high + 1e-12)
            if previous is not None:
                assert np.linalg.norm(sent.pos - previous) <= c.limits.max_linear_speed * c.dt * (1 + 1e-6)
            previous = sent.pos.copy()
            sent.send(driver)
            clock.t += c.dt


def test_a_step_into_a_joint_margin_is_refused_and_one_out_of_it_is_taken():
    _, driver, c = twin("panda")
    kin, spec = c.kinematics, driver.spec
    for j in (1, 3, 5):                                   # shoulder, elbow, wrist
        q = np.array(spec.q_home, dtype=float)
        q[j] = c.safety.q_max[j] - 0.5 * c.limits.joint_margin
        assert list(c.safety.joints_near_limits(q)) == [j]
        state = RobotState(stamp=0.0, q=q, dq=np.zeros_like(q), ee_pos=np.zeros(3), ee_quat=np.array([0, 0, 0, 1.0]),
                           gripper_width=0.08, wrench=np.zeros(6), tau=np.zeros_like(q), mode="ok")

        def pose(qj):
            moved = q.copy()
            moved[j] = qj
            return kin.fk(moved)
        c.setpoint = pose(q[j])
        assert c._pushes_into_joint_limit(state, *pose(q[j] + 0.002))       # further toward q_max
        assert not c._pushes_into_joint_limit(state, *pose(q[j] - 0.002))   # back out of the margin
