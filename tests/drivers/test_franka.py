"""FrankaDriver against the pylibfranka fake: what is called, with what, in which order, and on failure."""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from robot_stack import transforms as tf
from robot_stack.drivers.base import DriverError
from robot_stack.drivers.registry import make_arm_driver
from robot_stack.drivers.franka import FrankaConfig, FrankaDriver
from robot_stack.drivers.franka.driver import ClockSync
from tests.drivers.fakes import fake_pylibfranka as fake

IP = "10.0.0.7"


class HostClock:
    """A host clock the test moves by hand."""

    def __init__(self, t: float = 5000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def fr(monkeypatch):
    fake.reset()
    monkeypatch.setitem(sys.modules, "pylibfranka", fake)
    return fake


@pytest.fixture
def host():
    return HostClock()


@pytest.fixture
def driver(fr, host):
    d = FrankaDriver(FrankaConfig(ip=IP), clock=host)
    d.connect()
    yield d
    d.disconnect()


def wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.001)
    return condition()


def gripper_commands():
    return [(n, a) for n, a in fake.LOG.calls if n in ("Gripper.move", "Gripper.grasp")]


def robot_calls():
    """The arm's calls in order, without the Hand's (its threads log concurrently)."""
    return [n for n in fake.LOG.names() if not n.startswith("Gripper")]


def hand_threads():
    return [t for t in threading.enumerate() if t.name.startswith("franka-hand")]


# --- connect ---------------------------------------------------------------------------------
def test_connect_sets_collision_behaviour_from_config_before_starting_control(fr):
    cfg = FrankaConfig(ip=IP, lower_torque_thresholds=(1, 2, 3, 4, 5, 6, 7),
                       upper_torque_thresholds=(11, 12, 13, 14, 15, 16, 17),
                       lower_force_thresholds=(21, 22, 23, 24, 25, 26),
                       upper_force_thresholds=(31, 32, 33, 34, 35, 36), gripper=False)
    d = FrankaDriver(cfg)
    d.connect()
    names = fr.LOG.names()
    assert names.index("Robot") < names.index("Robot.set_collision_behavior") \
        < names.index("Robot.start_cartesian_pose_control")
    assert fr.LOG.args("Robot") == [(IP, fr.RealtimeConfig.kEnforce)]
    assert fr.LOG.args("Robot.set_collision_behavior") == [
        ([1, 2, 3, 4, 5, 6, 7], [11, 12, 13, 14, 15, 16, 17], [21, 22, 23, 24, 25, 26], [31, 32, 33, 34, 35, 36])]
    assert fr.LOG.args("Robot.start_cartesian_pose_control") == [(fr.ControllerMode.CartesianImpedance,)]
    assert "Gripper" not in names
    d.disconnect()


def test_connect_honours_realtime_and_controller_mode(fr):
    d = FrankaDriver(FrankaConfig(ip=IP, enforce_realtime=False, controller_mode="joint_impedance", gripper=False))
    d.connect()
    assert fr.LOG.args("Robot") == [(IP, fr.RealtimeConfig.kIgnore)]
    assert fr.LOG.args("Robot.start_cartesian_pose_control") == [(fr.ControllerMode.JointImpedance,)]
    d.disconnect()


# --- state and commands ----------------------------------------------------------------------
def test_command_pose_sends_the_column_major_matrix(driver, fr):
    driver.read_state()
    quat = np.array([0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4)])      # 90 deg about z
    pos, sent_quat, g = driver.command_pose([0.4, -0.1, 0.5], quat, 0.0)
    (command,), = fr.LOG.args("ActiveControlBase.writeOnce")
    assert isinstance(command, fr.CartesianPose) and not command.motion_finished
    expected = [0, 1, 0, 0,   -1, 0, 0, 0,   0, 0, 1, 0,   0.4, -0.1, 0.5, 1]   # columns of [R t; 0 1]
    np.testing.assert_allclose(command.O_T_EE, expected, atol=1e-12)
    np.testing.assert_allclose(pos, [0.4, -0.1, 0.5])
    np.testing.assert_allclose(sent_quat, quat)


def test_read_state_converts_the_vendor_state(driver, fr):
    s = fr.WORLD.state
    rot = tf.quat_to_mat(tf.euler_to_quat(np.pi, 0.0, 0.3))
    s.O_T_EE = fr.pose_column_major([0.45, 0.1, 0.2], rot)
    s.q = np.arange(7) * 0.1
    s.dq = np.arange(7) * 0.01
    s.tau_J = np.arange(7) * 1.0
    s.O_F_ext_hat_K = np.array([1.0, 2.0, 3.0, 0.1, 0.2, 0.3])
    state = driver.read_state()
    np.testing.assert_allclose(state.ee_pos, [0.45, 0.1, 0.2])
    assert tf.angle_between(state.ee_quat, tf.euler_to_quat(np.pi, 0.0, 0.3)) < 1e-9
    np.testing.assert_allclose(state.q, s.q)
    np.testing.assert_allclose(state.dq, s.dq)
    np.testing.assert_allclose(state.tau, s.tau_J)
    np.testing.assert_allclose(state.wrench, s.O_F_ext_hat_K)
    assert state.mode == "ok"


def test_stamps_keep_the_robot_clock_spacing_not_the_host_jitter(driver, host):
    first = driver.read_state().stamp
    assert first == pytest.approx(host.t)            # on the host clock
    host.t += 0.0017                                 # the host saw this tick late
    second = driver.read_state().stamp
    assert second - first == pytest.approx(0.001, abs=1e-6)    # not the 1.7 ms the host saw


def test_commanded_pose_reads_back(driver):
    driver.read_state()
    quat = tf.euler_to_quat(np.pi, 0.2, -0.4)
    driver.command_pose([0.5, 0.05, 0.3], quat, 0.0)
    state = driver.read_state()
    np.testing.assert_allclose(state.ee_pos, [0.5, 0.05, 0.3], atol=1e-12)
    assert tf.angle_between(state.ee_quat, quat) < 1e-9


def test_every_read_is_answered_by_one_write_on_the_same_control(driver, fr):
    for _ in range(5):
        driver.read_state()
        driver.command_pose([0.3, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0], 0.0)
    loop = [n for n in fr.LOG.names() if n.startswith("ActiveControlBase")]
    assert loop == ["ActiveControlBase.readOnce", "ActiveControlBase.writeOnce"] * 5


def test_command_joints_finishes_the_cartesian_motion_and_switches(driver, fr):
    driver.read_state()
    held = fr.WORLD.state.O_T_EE_c.copy()
    q = np.array([0.1, -0.7, 0.0, -2.3, 0.0, 1.6, 0.8])
    sent, g = driver.command_joints(q, 0.0)
    writes = fr.LOG.args("ActiveControlBase.writeOnce")
    finish, joints = writes[0][0], writes[1][0]
    assert isinstance(finish, fr.CartesianPose) and finish.motion_finished
    np.testing.assert_allclose(finish.O_T_EE, held)
    assert isinstance(joints, fr.JointPositions)
    np.testing.assert_allclose(joints.q, q)
    names = robot_calls()
    assert names.index("Robot.start_joint_position_control") < len(names) - 1
    np.testing.assert_allclose(sent, q)
    # and back to Cartesian control on the next pose command
    driver.read_state()
    driver.command_pose([0.3, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0], 0.0)
    assert fr.LOG.count("Robot.start_cartesian_pose_control") == 2


def test_non_finite_pose_is_refused_before_reaching_the_robot(driver, fr):
    driver.read_state()
    with pytest.raises(DriverError, match=IP):
        driver.command_pose([np.nan, 0.0, 0.5], [0.0, 0.0, 0.0, 1.0], 0.0)
    assert fr.LOG.count("ActiveControlBase.writeOnce") == 0


# --- gripper ---------------------------------------------------------------------------------
def test_gripper_commands_map_to_width_and_are_sent_only_on_change(driver, fr):
    cfg = driver.config
    for g in (0.0, 0.0, 0.004, 1.0, 1.0, 0.3):
        driver.read_state()
        driver.command_pose([0.3, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0], g)
        assert driver.wait_gripper_idle(5.0)
    assert gripper_commands() == [
        ("Gripper.move", (pytest.approx(0.08), cfg.gripper_speed)),
        ("Gripper.grasp", (pytest.approx(0.0), cfg.gripper_speed, cfg.grasp_force,
                           cfg.grasp_epsilon_inner, cfg.grasp_epsilon_outer)),
        ("Gripper.move", (pytest.approx(0.08 * 0.7), cfg.gripper_speed)),
    ]


def test_grasp_force_comes_from_config(fr):
    d = FrankaDriver(FrankaConfig(ip=IP, grasp_force=17.5))
    d.connect()
    d.read_state()
    d.command_pose([0.3, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0], 1.0)
    assert d.wait_gripper_idle(5.0)
    assert [a[2] for a in fr.LOG.args("Gripper.grasp")] == [17.5]
    d.disconnect()


def test_a_blocking_grasp_does_not_block_the_control_tick(driver, fr, monkeypatch):
    release = threading.Event()
    started = threading.Event()

    def slow_grasp(self, width, speed, force, epsilon_inner=0.005, epsilon_outer=0.005):
        started.set()
        release.wait(10.0)
        return True

    monkeypatch.setattr(fr.Gripper, "grasp", slow_grasp)
    driver.read_state()
    driver.command_pose([0.3, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0], 1.0)
    assert started.wait(5.0)
    for _ in range(3):                              # ticks go on while the hand is closing
        driver.read_state()
        driver.command_pose([0.3, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0], 1.0)
    assert fr.LOG.count("ActiveControlBase.writeOnce") == 4
    release.set()
    assert driver.wait_gripper_idle(5.0)


def test_gripper_width_is_read_back_from_the_hand(driver, fr):
    fr.WORLD.hand_width = 0.0312
    assert wait_for(lambda: driver.read_state().gripper_width == pytest.approx(0.0312))


def test_gripper_failure_surfaces_as_driver_error_naming_the_robot(driver, fr):
    fr.LOG.fail("Gripper.move", fr.CommandException("command rejected"))
    driver.read_state()
    driver.command_pose([0.3, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0], 0.0)
    assert driver.wait_gripper_idle(5.0)
    driver.read_state()
    with pytest.raises(DriverError, match=f"{IP}.*gripper.*command rejected"):
        driver.command_pose([0.3, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0], 0.0)


# --- failures, stop, recover -----------------------------------------------------------------
@pytest.mark.parametrize("exc", [fake.NetworkException("Connection timeout"), fake.FrankaException("boom")])
def test_connect_failure_names_the_robot_and_leaves_nothing_open(fr, exc):
    fr.LOG.fail("Robot", exc)
    d = FrankaDriver(FrankaConfig(ip=IP))
    with pytest.raises(DriverError, match=IP):
        d.connect()
    assert not d.connected and not hand_threads()
    with pytest.raises(DriverError, match="not connected"):
        d.read_state()
    d.connect()                                       # a fresh attempt works
    assert d.connected
    d.disconnect()


def test_failure_while_starting_control_releases_robot_and_gripper(fr):
    fr.LOG.fail("Robot.start_cartesian_pose_control", fr.ControlException("robot is in reflex mode"))
    d = FrankaDriver(FrankaConfig(ip=IP))
    with pytest.raises(DriverError, match=f"{IP}.*reflex"):
        d.connect()
    assert "Gripper" in fr.LOG.names()                # the hand was opened ...
    assert not d.connected and d._gripper is None and not hand_threads()   # ... and let go


def test_reflex_during_control_needs_recover(driver, fr):
    driver.read_state()
    driver.command_pose([0.3, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0], 0.0)
    fr.LOG.fail("ActiveControlBase.readOnce", fr.ControlException("cartesian_reflex"))
    fr.WORLD.state.current_errors = fr.Errors(("cartesian_reflex",))
    with pytest.raises(DriverError, match=f"{IP}.*cartesian_reflex.*recover"):
        driver.read_state()
    state = driver.read_state()                      # still reporting, through Robot.read_once
    assert state.mode == "error" and robot_calls()[-1] == "Robot.read_once"
    with pytest.raises(DriverError, match="recover"):
        driver.command_pose([0.3, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0], 0.0)
    fr.LOG.clear()
    driver.recover()
    assert robot_calls()[:2] == ["Robot.automatic_error_recovery", "Robot.start_cartesian_pose_control"]
    assert driver.read_state().mode == "ok"
    driver.command_pose([0.3, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0], 0.0)


def test_recover_failure_is_a_driver_error(driver, fr):
    driver.stop()
    fr.LOG.fail("Robot.automatic_error_recovery", fr.CommandException("user stop pressed"))
    with pytest.raises(DriverError, match=f"{IP}.*user stop pressed"):
        driver.recover()


def test_stop_stops_motion_and_refuses_commands_until_recover(driver, fr):
    driver.read_state()
    driver.command_pose([0.3, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0], 0.0)
    driver.stop()
    assert robot_calls()[-1] == "Robot.stop"
    assert driver.read_state().mode == "stopped"
    with pytest.raises(DriverError, match="stopped"):
        driver.command_pose([0.3, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0], 0.0)
    driver.recover()
    driver.read_state()
    driver.command_pose([0.3, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0], 0.0)


def test_disconnect_stops_motion_and_joins_the_gripper_threads(driver, fr):
    assert hand_threads()
    driver.disconnect()
    assert "Robot.stop" in fr.LOG.names() and not hand_threads()
    with pytest.raises(DriverError, match="not connected"):
        driver.read_state()
    driver.disconnect()                               # twice is fine


def test_missing_pylibfranka_is_a_driver_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pylibfranka", None)     # import raises ImportError
    with pytest.raises(DriverError, match=r"pip install .robot_stack\[franka\]."):
        FrankaDriver(FrankaConfig(ip=IP)).connect()


def test_vendor_module_can_be_injected(host):
    fake.reset()
    d = FrankaDriver(FrankaConfig(ip=IP, gripper=False), vendor=fake, clock=host)
    d.connect()
    assert fake.LOG.args("Robot") == [(IP, fake.RealtimeConfig.kEnforce)]
    d.disconnect()


def test_registry_builds_it_from_the_node_config():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"driver": "franka", "robot_ip": IP, "robot": {
        "name": "panda", "franka": {"collision_torque_thresholds": [9.0] * 7,
                                    "collision_force_thresholds": [8.0] * 6, "grasp_force": 33.0}}})
    d = make_arm_driver("franka", cfg)
    assert d.config.ip == IP and d.spec.name == "panda"
    assert d.config.lower_torque_thresholds == d.config.upper_torque_thresholds == (9.0,) * 7
    assert d.config.lower_force_thresholds == (8.0,) * 6 and d.config.grasp_force == 33.0


def test_clock_sync_follows_the_fastest_path_and_a_drifting_host():
    host = HostClock(1000.0)
    sync = ClockSync(host, max_drift=1e-4)
    assert sync.stamp(10.0) == pytest.approx(1000.0)
    host.t += 1.0 - 0.002                            # this sample came quicker: new minimum
    assert sync.stamp(11.0) == pytest.approx(1000.0 + 1.0 - 0.002)
    host.t += 100.0 * (1 + 5e-5)                      # host clock 50 ppm fast over 100 s
    s = sync.stamp(111.0)
    assert s == pytest.approx(host.t, abs=1e-9)      # within the drift allowance: followed


def test_a_robot_it_cannot_drive_is_refused():
    from omegaconf import OmegaConf

    with pytest.raises(ValueError, match="7-joint.*ur5e"):
        make_arm_driver("franka", OmegaConf.create({"robot_ip": IP, "robot": {"name": "ur5e"}}))
