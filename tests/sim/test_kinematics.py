"""The MJCF arms are generated from the specs and carry their published limits and masses.

Their kinematics are checked against robot_stack.robots.kinematics in tests/robots/."""
import mujoco
import numpy as np
import pytest

from robot_stack.sim.assets.generate import ASSETS, robot_mjcf
from robot_stack.robots.spec import ROBOTS


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

