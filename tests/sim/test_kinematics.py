"""The MJCF arms match the manufacturers' DH kinematics and published limits."""
import mujoco
import numpy as np
import pytest

from robot_stack import transforms as tf
from robot_stack.sim.assets.generate import ASSETS, robot_mjcf
from robot_stack.sim.robots import ROBOTS, dh_forward, get_robot


@pytest.mark.parametrize("name", sorted(ROBOTS))
def test_mjcf_forward_kinematics_matches_dh(name):
    spec = ROBOTS[name]
    model = mujoco.MjModel.from_xml_path(str(ASSETS / f"{name}.xml"))
    data = mujoco.MjData(model)
    site = model.site("tcp").id
    rng = np.random.default_rng(123)
    worst_mm, worst_deg = 0.0, 0.0
    for _ in range(1000):
        q = rng.uniform(spec.q_min, spec.q_max)
        data.qpos[:spec.dof] = q
        mujoco.mj_kinematics(model, data)
        expected = dh_forward(spec, q)
        worst_mm = max(worst_mm, 1000 * np.linalg.norm(data.site_xpos[site] - expected[:3, 3]))
        got = tf.mat_to_quat(data.site_xmat[site].reshape(3, 3))
        worst_deg = max(worst_deg, np.degrees(tf.angle_between(got, tf.mat_to_quat(expected[:3, :3]))))
    assert worst_mm < 1.0
    assert worst_deg < 0.1


def test_dh_forward_known_pose():
    # Panda at zero: x = a4 - a5 + a7 = 0.088, z = d1 + d3 + d5 - flange - hand TCP.
    t = dh_forward(get_robot("panda"), np.zeros(7))
    np.testing.assert_allclose(t[:3, 3], [0.088, 0.0, 0.333 + 0.316 + 0.384 - 0.107 - 0.1034], atol=1e-9)
    # UR5e at zero: stretched along -x: a2 + a3, y = -(d4 + d6 + TCP), z = d1 - d5.
    t = dh_forward(get_robot("ur5e"), np.zeros(6))
    np.testing.assert_allclose(t[:3, 3], [-0.425 - 0.3922, -(0.1333 + 0.0996 + 0.145), 0.1625 - 0.0997], atol=1e-9)


@pytest.mark.parametrize("name", sorted(ROBOTS))
def test_committed_mjcf_is_generated_from_spec(name):
    assert (ASSETS / f"{name}.xml").read_text() == robot_mjcf(ROBOTS[name])


@pytest.mark.parametrize("name", sorted(ROBOTS))
def test_limits_and_masses_in_model(name):
    spec = ROBOTS[name]
    model = mujoco.MjModel.from_xml_path(str(ASSETS / f"{name}.xml"))
    for i in range(spec.dof):
        joint = model.joint(f"joint{i + 1}")
        np.testing.assert_allclose(joint.range, [spec.q_min[i], spec.q_max[i]])
        np.testing.assert_allclose(model.actuator(f"act{i + 1}").ctrlrange, [-spec.tau_max[i], spec.tau_max[i]])
        assert model.body(f"link{i + 1}").mass[0] == pytest.approx(spec.masses[i], rel=1e-5)


def test_unknown_robot_lists_valid_names():
    with pytest.raises(ValueError, match="panda, ur5e"):
        get_robot("kuka")
