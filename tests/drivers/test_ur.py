"""URDriver against the ur_rtde fake: servo timing, pose conversion, watchdog, stop, recover, failures."""
from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robot_stack import transforms as tf
from robot_stack.drivers.base import DriverError
from robot_stack.drivers.registry import make_arm_driver
from robot_stack.drivers.ur import URConfig, URDriver, from_ur_pose, ur_pose
from tests.drivers.fakes import fake_ur_rtde as fake

IP = "192.168.56.101"
DOWN = tf.euler_to_quat(np.pi, 0.0, 0.0)         # tool pointing down


@pytest.fixture
def ur(monkeypatch):
    fake.reset()
    for name, module in fake.modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    return fake


@pytest.fixture
def driver(ur):
    d = URDriver(URConfig(ip=IP))
    d.connect()
    yield d
    if d.connected:
        d.disconnect()


def tick(d, pos=(0.4, -0.1, 0.3), quat=DOWN, gripper=0.0):
    d.read_state()
    return d.command_pose(np.array(pos), np.array(quat), gripper)


def ur_threads():
    return [t for t in threading.enumerate() if t.name.startswith("ur-gripper")]


# --- pose conversion -------------------------------------------------------------------------
unit_quats = st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4).filter(
    lambda v: np.linalg.norm(v) > 0.1).map(lambda v: np.array(v) / np.linalg.norm(v))
rotvecs = st.lists(st.floats(-2 * np.pi, 2 * np.pi, allow_nan=False), min_size=3, max_size=3).map(np.array)


@settings(max_examples=200, deadline=None)
@given(quat=unit_quats, reference=rotvecs)
def test_ur_pose_round_trip_keeps_the_rotation(quat, reference):
    pose = ur_pose([0.1, 0.2, 0.3], quat, reference)
    pos, back = from_ur_pose(pose)
    np.testing.assert_allclose(pos, [0.1, 0.2, 0.3])
    assert abs(abs(float(np.dot(back, quat))) - 1.0) < 1e-9          # same rotation (q and -q alike)


def test_ur_pose_known_values():
    quat = tf.axis_angle_to_quat([0.0, 0.0, np.pi / 2])
    np.testing.assert_allclose(ur_pose([1, 2, 3], quat), [1, 2, 3, 0, 0, np.pi / 2], atol=1e-12)
    pos, q = from_ur_pose([0.5, 0.0, 0.2, np.pi, 0.0, 0.0])
    np.testing.assert_allclose(pos, [0.5, 0.0, 0.2])
    assert tf.angle_between(q, DOWN) < 1e-9


def test_rotation_vector_stays_on_the_robots_side_of_half_a_turn():
    # 3.15 rad about x is, the short way, 3.133 rad about -x; the robot reads +3.13 about x.
    quat = tf.axis_angle_to_quat([3.15, 0.0, 0.0])
    np.testing.assert_allclose(ur_pose([0, 0, 0], quat)[3:], [-(2 * np.pi - 3.15), 0, 0], atol=1e-9)
    np.testing.assert_allclose(ur_pose([0, 0, 0], quat, np.array([3.13, 0, 0]))[3:], [3.15, 0, 0], atol=1e-9)


# --- connect ---------------------------------------------------------------------------------
def test_connect_opens_receive_then_control_and_sets_the_tcp(ur):
    d = URDriver(URConfig(ip=IP, tcp_offset=(0, 0, 0.2, 0, 0, 0)))
    d.connect()
    assert ur.LOG.names() == ["RTDEReceiveInterface", "RTDEControlInterface", "RTDEControlInterface.setTcp"]
    assert ur.LOG.args("RTDEReceiveInterface") == [(IP, 500.0)]
    assert ur.LOG.args("RTDEControlInterface") == [(IP, 500.0)]
    assert ur.LOG.args("RTDEControlInterface.setTcp") == [([0.0, 0.0, 0.2, 0.0, 0.0, 0.0],)]
    d.disconnect()


# --- the servo tick --------------------------------------------------------------------------
def test_servol_gets_the_ur_pose_and_dt_of_one_period(driver, ur):
    quat = tf.euler_to_quat(np.pi, 0.0, 0.5)
    tick(driver, pos=(0.45, -0.05, 0.25), quat=quat)
    (pose, speed, acc, dt, lookahead, gain), = ur.LOG.args("RTDEControlInterface.servoL")
    assert dt == 1 / 500
    np.testing.assert_allclose(pose[:3], [0.45, -0.05, 0.25])
    assert tf.angle_between(tf.axis_angle_to_quat(pose[3:]), quat) < 1e-9
    c = driver.config
    assert (speed, acc, lookahead, gain) == (c.servo_speed, c.servo_acceleration, c.servo_lookahead_time,
                                             c.servo_gain)


def test_each_tick_waits_out_the_last_period_then_starts_the_next(driver, ur):
    for _ in range(3):
        tick(driver)
    names = [n for n in ur.LOG.names() if n.split(".")[-1] in ("initPeriod", "waitPeriod", "servoL")]
    assert names == ["RTDEControlInterface.initPeriod", "RTDEControlInterface.servoL",
                     "RTDEControlInterface.waitPeriod", "RTDEControlInterface.initPeriod",
                     "RTDEControlInterface.servoL",
                     "RTDEControlInterface.waitPeriod", "RTDEControlInterface.initPeriod",
                     "RTDEControlInterface.servoL"]
    # waitPeriod gets the time point the previous initPeriod returned
    assert [a[0] for a in ur.LOG.args("RTDEControlInterface.waitPeriod")] == \
        [fake.datetime.timedelta(microseconds=2000), fake.datetime.timedelta(microseconds=4000)]


def test_watchdog_is_armed_on_the_first_tick_and_kicked_every_tick(driver, ur):
    assert ur.LOG.count("RTDEControlInterface.setWatchdog") == 0       # not during start-up
    for _ in range(4):
        tick(driver)
    assert ur.LOG.args("RTDEControlInterface.setWatchdog") == [(driver.config.watchdog_min_frequency,)]
    names = ur.LOG.names()
    assert names.index("RTDEControlInterface.setWatchdog") < names.index("RTDEControlInterface.servoL")
    assert ur.LOG.count("RTDEControlInterface.kickWatchdog") == 4


def test_read_state_reports_the_receive_interface(driver, ur):
    ur.WORLD.tcp = [0.5, 0.1, 0.2, 0.0, 0.0, np.pi / 2]
    ur.WORLD.q = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    ur.WORLD.qd = [0.01] * 6
    ur.WORLD.force = [1, 2, 3, 4, 5, 6]
    ur.WORLD.speed_scaling = 0.3
    s = driver.read_state()
    np.testing.assert_allclose(s.ee_pos, [0.5, 0.1, 0.2])
    assert tf.angle_between(s.ee_quat, tf.axis_angle_to_quat([0, 0, np.pi / 2])) < 1e-9
    np.testing.assert_allclose(s.q, ur.WORLD.q)
    np.testing.assert_allclose(s.dq, ur.WORLD.qd)
    np.testing.assert_allclose(s.wrench, [1, 2, 3, 4, 5, 6])
    assert driver.speed_scaling == 0.3 and s.mode == "ok" and s.tau is None


def test_stamps_follow_the_controller_clock():
    host_t = [7000.0]
    fake.reset()
    d = URDriver(URConfig(ip=IP), clock=lambda: host_t[0], modules=fake.modules())
    d.connect()
    first = d.read_state().stamp
    host_t[0] += 0.0031                              # late on the host
    second = d.read_state().stamp
    assert first == pytest.approx(7000.0) and second - first == pytest.approx(0.002, abs=1e-6)
    d.disconnect()


def test_commanded_pose_reads_back(driver):
    quat = tf.euler_to_quat(np.pi, 0.1, -0.3)
    tick(driver, pos=(0.3, 0.2, 0.1), quat=quat)
    s = driver.read_state()
    np.testing.assert_allclose(s.ee_pos, [0.3, 0.2, 0.1])
    assert tf.angle_between(s.ee_quat, quat) < 1e-9


def test_command_joints_uses_servoj_with_the_same_timing(driver, ur):
    driver.read_state()
    q = [3.0, -1.5, 1.5, -1.5, -1.5, 0.1]
    driver.command_joints(q, 0.0)
    (sent, speed, acc, dt, lookahead, gain), = ur.LOG.args("RTDEControlInterface.servoJ")
    assert sent == q and dt == 1 / 500


def test_a_refused_servo_is_a_driver_error(driver, ur):
    ur.WORLD.servo_ok = False
    with pytest.raises(DriverError, match=f"{IP}.*servoL refused"):
        tick(driver)
    assert driver.read_state().mode == "error"


# --- stop, recover, failures -----------------------------------------------------------------
def test_stop_calls_servostop_and_refuses_commands_until_recover(driver, ur):
    tick(driver)
    driver.stop()
    assert ur.LOG.args("RTDEControlInterface.servoStop") == [(driver.config.stop_deceleration,)]
    assert driver.read_state().mode == "stopped"
    with pytest.raises(DriverError, match="stopped"):
        driver.command_pose([0.4, -0.1, 0.3], DOWN, 0.0)
    driver.recover()
    tick(driver)
    assert ur.LOG.count("RTDEControlInterface.servoL") == 2


def test_recover_reuploads_a_stopped_script_and_rearms_the_watchdog(driver, ur):
    tick(driver)
    ur.WORLD.program_running = False
    with pytest.raises(DriverError, match="servoL refused"):
        tick(driver)
    ur.LOG.clear()
    driver.recover()
    assert ur.LOG.names() == ["RTDEReceiveInterface.isEmergencyStopped", "RTDEReceiveInterface.isProtectiveStopped",
                              "RTDEControlInterface.isProgramRunning", "RTDEControlInterface.reuploadScript",
                              "RTDEControlInterface.setTcp"]
    tick(driver)
    assert ur.LOG.count("RTDEControlInterface.setWatchdog") == 1


def test_protective_stop_is_left_to_a_human_unless_configured(driver, ur):
    ur.WORLD.protective_stop = True
    assert driver.read_state().mode == "error"
    with pytest.raises(DriverError, match="protective stop"):
        driver.command_pose([0.4, -0.1, 0.3], DOWN, 0.0)
    with pytest.raises(DriverError, match=f"{IP}.*protective stop.*pendant"):
        driver.recover()
    assert ur.LOG.count("DashboardClient.unlockProtectiveStop") == 0


def test_protective_stop_unlocked_through_the_dashboard_when_configured(ur):
    d = URDriver(URConfig(ip=IP, unlock_protective_stop=True))
    d.connect()
    ur.WORLD.protective_stop = True
    d.read_state()
    d.recover()
    assert [n for n in ur.LOG.names() if n.startswith("Dashboard")] == [
        "DashboardClient", "DashboardClient.connect", "DashboardClient.unlockProtectiveStop",
        "DashboardClient.disconnect"]
    tick(d)
    d.disconnect()


def test_emergency_stop_cannot_be_recovered_from_software(driver, ur):
    ur.WORLD.emergency_stop = True
    with pytest.raises(DriverError, match="emergency stop"):
        driver.recover()


def test_control_connection_failure_closes_the_receive_interface(ur):
    ur.LOG.fail("RTDEControlInterface", RuntimeError("ur_rtde: Please enable remote control on the robot!"))
    d = URDriver(URConfig(ip=IP))
    with pytest.raises(DriverError, match=f"{IP}.*remote control"):
        d.connect()
    assert ur.LOG.names() == ["RTDEReceiveInterface", "RTDEControlInterface", "RTDEReceiveInterface.disconnect"]
    assert not d.connected
    with pytest.raises(DriverError, match="not connected"):
        d.read_state()


def test_failure_after_control_opened_stops_the_script_and_closes_both(ur):
    ur.LOG.fail("RTDEControlInterface.setTcp", RuntimeError("setTcp timed out"))
    d = URDriver(URConfig(ip=IP))
    with pytest.raises(DriverError, match=IP):
        d.connect()
    tail = ur.LOG.names()[-4:]
    assert tail == ["RTDEControlInterface.servoStop", "RTDEControlInterface.stopScript",
                    "RTDEControlInterface.disconnect", "RTDEReceiveInterface.disconnect"]


def test_disconnect_stops_servoing_and_closes_everything(driver, ur):
    tick(driver)
    driver.disconnect()
    tail = ur.LOG.names()[-4:]
    assert tail == ["RTDEControlInterface.servoStop", "RTDEControlInterface.stopScript",
                    "RTDEControlInterface.disconnect", "RTDEReceiveInterface.disconnect"]
    assert not driver.connected
    driver.disconnect()                                 # twice is fine


def test_missing_ur_rtde_is_a_driver_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "rtde_receive", None)
    with pytest.raises(DriverError, match=r"pip install .robot_stack\[ur\]."):
        URDriver(URConfig(ip=IP)).connect()


# --- gripper ---------------------------------------------------------------------------------
def test_tool_output_gripper_switches_only_when_the_command_crosses(ur):
    d = URDriver(URConfig(ip=IP, gripper="tool_digital_out", gripper_tool_output=1))
    d.connect()
    assert "RTDEIOInterface" in ur.LOG.names()
    for g in (0.0, 0.0, 0.2, 0.9, 1.0, 0.1):
        tick(d, gripper=g)
        assert d.wait_gripper_idle(5.0)
    levels = ur.LOG.args("RTDEIOInterface.setToolDigitalOut")
    # 0.2 is a change but stays open: the output is written again with the same level
    assert [lv for _, lv in levels] == [False, False, True, True, False]
    assert {out for out, _ in levels} == {1}
    assert d.read_state().gripper_width == pytest.approx(2 * d.spec.gripper.max_opening)   # commanded open
    d.disconnect()
    assert "RTDEIOInterface.disconnect" in ur.LOG.names() and not ur_threads()


def test_callable_gripper_gets_changes_off_the_control_thread(ur):
    seen, threads = [], []

    def command(value):
        seen.append(value)
        threads.append(threading.current_thread().name)

    d = URDriver(URConfig(ip=IP, gripper="callable", gripper_command=command, gripper_width=lambda: 0.021))
    d.connect()
    for g in (0.0, 0.0, 0.5, 0.5, 1.0):
        tick(d, gripper=g)
        assert d.wait_gripper_idle(5.0)
    assert seen == [0.0, 0.5, 1.0]
    assert all(name.startswith("ur-gripper") for name in threads)
    assert d.read_state().gripper_width == pytest.approx(0.021)      # measured, when a reader is given
    d.disconnect()


def test_no_gripper_reports_zero_width(driver):
    tick(driver, gripper=1.0)
    assert driver.read_state().gripper_width == 0.0


def test_registry_builds_it_from_the_node_config():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"driver": "ur", "robot_ip": IP,
                            "robot": {"name": "ur5e", "ur": {"servo_lookahead_time": 0.05, "servo_gain": 600}}})
    d = make_arm_driver("ur", cfg)
    assert d.config.ip == IP and d.config.frequency == 500.0 and d.config.dt == 1 / 500
    assert d.config.servo_lookahead_time == 0.05 and d.config.servo_gain == 600


def test_config_rejects_servo_parameters_outside_ur_rtde_ranges():
    with pytest.raises(ValueError, match="lookahead"):
        URConfig(servo_lookahead_time=0.5)
    with pytest.raises(ValueError, match="gain"):
        URConfig(servo_gain=50)


def test_a_robot_it_cannot_drive_is_refused():
    from omegaconf import OmegaConf

    with pytest.raises(ValueError, match="6-joint.*panda"):
        make_arm_driver("ur", OmegaConf.create({"robot_ip": IP, "robot": {"name": "panda"}}))
