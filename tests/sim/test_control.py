"""Interpolation and operational-space control in the twin."""
import logging

import numpy as np
import pytest

from robot_stack import transforms as tf
from robot_stack.control.interpolation import PoseInterpolator
from robot_stack.sim.arm import SimArm
from robot_stack.sim.scene import Scene, SimulationError
from robot_stack.sim.tasks.base import top_down


def test_interpolator_is_linear_and_slerps_at_constant_rate():
    interp = PoseInterpolator(dt=0.001, max_linear_speed=10.0, max_angular_speed=100.0)
    interp.reset([0, 0, 0], [0, 0, 0, 1])
    goal_q = tf.axis_angle_to_quat([0, 0, 1.0])
    ticks = interp.set_goal([0.1, 0, 0], goal_q, duration=0.1)
    assert ticks == 100
    for k in range(1, 101):
        pos, quat = interp.step()
        if k == 50:
            np.testing.assert_allclose(pos, [0.05, 0, 0], atol=1e-12)
            np.testing.assert_allclose(quat, tf.slerp([0, 0, 0, 1], goal_q, 0.5), atol=1e-9)
    np.testing.assert_allclose(pos, [0.1, 0, 0], atol=1e-12)
    assert tf.angle_between(quat, goal_q) < 1e-9


def test_interpolator_respects_speed_limits():
    interp = PoseInterpolator(dt=0.001, max_linear_speed=0.5, max_angular_speed=1.0)
    interp.reset([0, 0, 0], [0, 0, 0, 1])
    ticks = interp.set_goal([0.2, 0, 0], tf.axis_angle_to_quat([0, 0, 0.1]), duration=0.1)
    assert ticks == 400                      # 0.2 m at 0.5 m/s
    ticks = interp.set_goal([0.2, 0, 0], tf.axis_angle_to_quat([0, 0, 1.0]), duration=0.1)
    assert ticks == pytest.approx(1000, abs=1)   # ~1 rad at 1 rad/s


@pytest.mark.parametrize("robot", ["panda", "ur5e"])
def test_tracks_cartesian_targets_within_a_millimetre(robot):
    scene = Scene(robot)
    arm = SimArm(scene)
    targets = [([0.5, 0.0, 0.2], top_down(0.0)), ([0.45, 0.2, 0.08], top_down(0.6)), ([0.35, -0.25, 0.3], top_down(-0.4))]
    for pos, quat in targets:
        arm.command_pose(pos, quat, 0.0, 0.1)
        arm.step(round(2.0 / arm.dt))
        got_pos, got_quat = scene.ee_pose()
        assert np.linalg.norm(got_pos - pos) < 1e-3
        assert np.degrees(tf.angle_between(got_quat, quat)) < 0.5


def test_end_effector_speed_stays_under_the_limit():
    scene = Scene("panda")
    arm = SimArm(scene)
    arm.command_pose([0.6, 0.3, 0.1], top_down(0.0), 0.0, 0.1)   # far: the limit decides the duration
    peak = 0.0
    for _ in range(1500):
        arm.step()
        peak = max(peak, np.linalg.norm(scene.ee_velocity()[:3]))
    assert peak < scene.spec.max_ee_speed * 1.1
    assert peak > scene.spec.max_ee_speed * 0.5      # it did move at speed


def test_out_of_reach_target_is_clipped_with_a_warning(caplog):
    scene = Scene("panda")
    arm = SimArm(scene)
    with caplog.at_level(logging.WARNING):
        arm.command_pose([3.0, 0.0, -1.0], top_down(0.0), 0.0, 0.1)
    assert "clipped" in caplog.text
    arm.step(3000)
    pos, _ = scene.ee_pose()
    assert np.all(np.isfinite(scene.data.qpos))
    assert pos[2] > -0.01 and np.linalg.norm(pos - [0, 0, scene.spec.d[0]]) < arm.workspace.max_reach + 0.01


def test_joint_targets_outside_limits_are_clipped(caplog):
    scene = Scene("ur5e")
    arm = SimArm(scene)
    q = np.array(scene.spec.q_home)
    q[2] = 5.0                                  # elbow limit is pi
    with caplog.at_level(logging.WARNING):
        arm.command_joints(q, 0.0, 0.1)
    assert "outside limits" in caplog.text
    arm.step(2500)
    assert scene.q[2] <= np.pi + 1e-3
    assert abs(scene.q[2] - np.pi) < 0.05


def test_joint_targets_are_tracked():
    scene = Scene("panda")
    arm = SimArm(scene)
    q = np.array(scene.spec.q_home) + np.array([0.3, -0.2, 0.2, 0.3, -0.3, 0.2, 0.5])
    arm.command_joints(q, 1.0, 0.5)
    arm.step(2000)
    np.testing.assert_allclose(scene.q, q, atol=5e-3)


def test_non_finite_commands_are_rejected_without_motion():
    scene = Scene("panda")
    arm = SimArm(scene)
    before = scene.q
    with pytest.raises(ValueError, match="non-finite"):
        arm.command_pose([np.nan, 0, 0.2], top_down(0.0), 0.0, 0.1)
    with pytest.raises(ValueError):
        arm.command_joints(np.full(7, np.inf), 0.0, 0.1)
    arm.step(200)
    np.testing.assert_allclose(scene.q, before, atol=2e-3)


def test_nan_state_ends_the_episode_with_an_error():
    scene = Scene("panda")
    arm = SimArm(scene)
    scene.data.qvel[scene.arm_dof[0]] = np.nan
    with pytest.raises(SimulationError, match="invalid"):
        arm.step(5)
