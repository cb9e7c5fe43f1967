"""The reach filter: a kinematic reference that follows set points with joints inside their margins."""
import mujoco
import numpy as np
import pytest

from robot_stack import transforms as tf
from robot_stack.control.reach import ReachFilter
from robot_stack.robots.kinematics import Kinematics
from robot_stack.sim.scene import Scene

MARGIN = 0.08


def make(robot: str, elbow: int | None):
    scene = Scene(robot)
    spec = scene.spec
    return scene, ReachFilter(Kinematics(spec), np.array(spec.q_min) + MARGIN, np.array(spec.q_max) - MARGIN,
                              np.array(spec.dq_max) * 0.5, 1.0 / spec.control_hz, elbow=elbow)


def follow(f, start_pos, goal, quat, periods, speed=0.5):
    """Move a desired set point from `start_pos` toward `goal` at `speed`, through the filter; returns its outputs."""
    desired, out = np.array(start_pos, dtype=float), []
    for _ in range(periods):
        d = goal - desired
        desired = desired + d * min(1.0, speed * f.dt / max(np.linalg.norm(d), 1e-12))
        pos, q = f.step(desired, quat, f.q)
        out.append(pos)
    return np.array(out), q


@pytest.mark.parametrize("robot", ["panda", "ur5e"])
def test_the_reference_model_matches_the_twin_without_the_simulator(robot):
    scene, f = make(robot, None)
    q = np.array(scene.spec.q_home) + 0.3
    pos, quat = f.reset(q)                    # no measured pose: the model's own
    scene.set_q(q)
    mujoco.mj_comPos(scene.model, scene.data)
    jac = np.zeros((6, scene.model.nv))
    mujoco.mj_jacSite(scene.model, scene.data, jac[:3], jac[3:], scene.tcp_site)
    np.testing.assert_allclose(f._jac, jac[:, scene.arm_dof], atol=1e-6)
    twin_pos, twin_quat = scene.ee_pose()
    np.testing.assert_allclose(pos, twin_pos, atol=1e-6)
    assert abs(abs(np.dot(quat, twin_quat)) - 1.0) < 1e-9


def test_stretched_elbow_angle_is_where_the_reach_is_greatest():
    assert make("panda", 3)[1].stretched == pytest.approx(-0.4676, abs=2e-3)     # the link offsets line up
    assert make("ur5e", 2)[1].stretched == pytest.approx(0.0, abs=2e-3)          # straight


@pytest.mark.parametrize("robot, elbow", [("panda", 3), ("ur5e", 2)])
def test_an_unreachable_goal_stops_the_set_point_inside_the_margins_and_a_reachable_one_brings_it_back(robot, elbow):
    scene, f = make(robot, elbow)
    scene.reset_to_home()
    start, quat = f.reset(scene.q)
    far = np.array([1.2, 0.0, 0.3])                      # out of reach
    out, _ = follow(f, start, far, quat, 4000)
    assert f.saturated
    assert np.all(f.q >= f.lo - 1e-9) and np.all(f.q <= f.hi + 1e-9)
    np.testing.assert_allclose(out[-1], out[-50], atol=1e-4)   # at rest, short of the goal
    assert np.linalg.norm(out[-1] - far) > 0.2
    back = np.array([0.45, 0.05, 0.25])
    out, q = follow(f, out[-1], back, quat, 6000)
    assert np.linalg.norm(out[-1] - back) < 1e-4
    assert tf.angle_between(q, quat) < 1e-3
    assert not f.saturated


def test_the_output_is_the_references_pose():
    scene, f = make("panda", 3)
    scene.reset_to_home()
    start, quat = f.reset(scene.q)
    out, q = follow(f, start, np.array([0.6, 0.2, 0.4]), quat, 500)
    scene.set_q(f.q)
    pos, rot = scene.ee_pose()
    np.testing.assert_allclose(out[-1], pos, atol=1e-5)             # first order in one period's step: micrometres
    assert tf.angle_between(q, rot) < 1e-5


def test_a_reference_seeded_inside_a_margin_is_brought_out_gradually():
    scene, f = make("panda", 3)
    q = np.array(scene.spec.q_home)
    q[0] = scene.spec.q_max[0] - 0.01                              # inside the margin
    pos, quat = f.reset(q)
    before = f.q[0]
    for _ in range(100):
        pos, quat = f.step(pos, quat, f.q)
    # On its way in at no less than the pull-in speed, and no faster than the joint may move: not in one jump.
    assert f.PULL_IN_SPEED * 0.1 - 1e-9 <= before - f.q[0] <= f.max_step[0] * 100 + 1e-9


def test_seeding_keeps_the_measured_pose_when_the_model_differs():
    scene, f = make("panda", 3)
    q = np.array(scene.spec.q_home)
    scene.set_q(q)
    model_pos, model_quat = scene.ee_pose()
    measured = model_pos + [0.003, -0.002, 0.001]                  # a tool offset the model lacks
    pos, quat = f.reset(q, measured, model_quat)
    np.testing.assert_allclose(pos, measured)
    out, _ = f.step(measured, quat, q)
    np.testing.assert_allclose(out, measured, atol=1e-6)           # holding there does not move the set point


def test_a_measured_joint_inside_its_margin_draws_the_reference_out():
    spec = Scene("panda").spec
    f = ReachFilter(Kinematics(spec), np.array(spec.q_min) + MARGIN, np.array(spec.q_max) - MARGIN, np.array(spec.dq_max) * 0.5,
                    1.0 / spec.control_hz, elbow=3, clearance=0.03)
    q = np.array(spec.q_home)
    q[0] = f.hi[0]                                       # the reference at its bound
    pos, quat = f.reset(q)
    measured = f.q.copy()
    measured[0] = spec.q_max[0] - 0.04                   # the arm 0.01 rad inside its 0.05 rad margin
    for _ in range(200):
        f.step(pos, quat, measured)
    assert f.q[0] < f.hi[0] - 0.01                       # the reference backs out, the arm would follow
    for _ in range(5000):                                # the arm back where the reference is: the correction relaxes
        f.step(pos, quat, f.q)
    assert not f._inset_hi.any()
