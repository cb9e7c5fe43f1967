"""The numpy kinematics agree with MuJoCo on the twin's own model, pose and Jacobian alike."""
import mujoco
import numpy as np
import pytest

from robot_stack import transforms as tf
from robot_stack.robots.kinematics import Kinematics
from robot_stack.robots.spec import ROBOTS, get_robot
from robot_stack.sim.scene import Scene


@pytest.mark.parametrize("name", sorted(ROBOTS))
def test_pose_and_jacobian_match_mujoco(name):
    # The scene the arm node loads today for its kinematics, at random joint angles within the limits.
    scene = Scene(name)
    m, d = scene.model, scene.data
    kin = Kinematics(scene.spec)
    mj_jac = np.zeros((6, m.nv))
    rng = np.random.default_rng(7)
    for _ in range(200):
        q = rng.uniform(scene.spec.q_min, scene.spec.q_max)
        d.qpos[scene.arm_qpos] = q
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        mujoco.mj_jacSite(m, d, mj_jac[:3], mj_jac[3:], scene.tcp_site)
        want_pos, want_quat = scene.ee_pose()

        pos, quat = kin.fk(q)
        assert np.linalg.norm(pos - want_pos) < 1e-6
        assert tf.angle_between(quat, want_quat) < 1e-6
        np.testing.assert_allclose(kin.jacobian(q), mj_jac[:, scene.arm_dof], atol=1e-6)
        both = kin.pose_and_jacobian(q)
        np.testing.assert_array_equal(both[0], pos)
        np.testing.assert_array_equal(both[1], quat)
        np.testing.assert_array_equal(both[2], kin.jacobian(q))


@pytest.mark.parametrize("name", sorted(ROBOTS))
def test_jacobian_predicts_the_motion_of_a_small_joint_step(name):
    # Independent of MuJoCo: J dq is the TCP's displacement and rotation for a small step dq.
    kin = Kinematics(get_robot(name))
    rng = np.random.default_rng(3)
    q = rng.uniform(kin.spec.q_min, kin.spec.q_max)
    dq = 1e-6 * rng.standard_normal(kin.dof)
    (p0, r0), (p1, r1) = kin.fk(q), kin.fk(q + dq)
    twist = kin.jacobian(q) @ dq
    np.testing.assert_allclose(twist[:3], p1 - p0, atol=1e-11)
    np.testing.assert_allclose(twist[3:], tf.quat_to_axis_angle(tf.quat_mul(r1, tf.quat_conj(r0))), atol=1e-11)


def test_tcp_at_zero_angles_from_the_dh_tables():
    # Panda at zero: x = a4 - a5 + a7 = 0.088, z = d1 + d3 + d5 - flange - hand TCP.
    pos, _ = Kinematics(get_robot("panda")).fk(np.zeros(7))
    np.testing.assert_allclose(pos, [0.088, 0.0, 0.333 + 0.316 + 0.384 - 0.107 - 0.1034], atol=1e-9)
    # UR5e at zero: stretched along -x: a2 + a3, y = -(d4 + d6 + TCP), z = d1 - d5.
    pos, _ = Kinematics(get_robot("ur5e")).fk(np.zeros(6))
    np.testing.assert_allclose(pos, [-0.425 - 0.3922, -(0.1333 + 0.0996 + 0.145), 0.1625 - 0.0997], atol=1e-9)


@pytest.mark.parametrize("q", [np.zeros(6), np.zeros((7, 1)), [0, 0, 0, np.nan, 0, 0, 0]])
def test_wrong_shaped_or_non_finite_angles_are_refused(q):
    kin = Kinematics(get_robot("panda"))
    with pytest.raises(ValueError, match="panda: q must"):
        kin.fk(q)
    with pytest.raises(ValueError, match="panda: q must"):
        kin.jacobian(q)
