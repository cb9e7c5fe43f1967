"""Whatever target arrives, the twin clips or rejects it and never blows up (hypothesis)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robot_stack.sim.arm import SimArm
from robot_stack.sim.scene import Scene

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
scene = Scene("panda")
arm = SimArm(scene)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pos=st.lists(floats, min_size=3, max_size=3), quat=st.lists(floats, min_size=4, max_size=4),
       gripper=floats)
def test_arbitrary_pose_targets_are_clipped_or_rejected(pos, quat, gripper):
    scene.reset_to_home()
    arm.hold()
    try:
        arm.command_pose(pos, quat, gripper, 0.1)
    except ValueError:
        before = scene.q
        arm.step(50)
        assert np.abs(scene.q - before).max() < 1e-2        # rejected: the arm holds
        return
    arm.step(300)
    assert np.isfinite(scene.data.qpos).all()
    tcp = scene.ee_pose()[0]
    ws = arm.workspace
    assert np.all(tcp > np.array(ws.low) - 0.03) and np.all(tcp < np.array(ws.high) + 0.03)
    assert 0.0 <= arm.gripper_cmd <= 1.0


@pytest.mark.parametrize("bad", [np.zeros(4), [np.nan, 0, 0, 1]])
def test_degenerate_quaternion_is_rejected(bad):
    scene.reset_to_home()
    arm.hold()
    with pytest.raises(ValueError):
        arm.command_pose([0.4, 0.0, 0.3], bad, 0.0, 0.1)
