"""Random and adversarial targets never take the TCP out of the box or over the speed limit (hypothesis)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rclpy.parameter import Parameter

from robot_stack.control.safety import SafetyEnvelope, SafetyLimits
from robot_stack.nodes.arm_node import ArmNode
from robot_stack.ros import convert

coord = st.one_of(st.floats(-3.0, 3.0), st.sampled_from([np.nan, np.inf, -np.inf, 1e9, -1e9]))
quat = st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=4)
target = st.tuples(st.lists(coord, min_size=3, max_size=3), quat, st.integers(20, 150))


@pytest.fixture(scope="module")
def arm(request):
    import rclpy
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = ArmNode(start_loop=False, context=ctx, parameter_overrides=[
        Parameter("robot", value="panda"), Parameter("realtime", value=False), Parameter("task", value="reach")])
    yield node
    node.close()
    node.destroy_node()
    rclpy.try_shutdown(context=ctx)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(targets=st.lists(target, min_size=1, max_size=4))
def test_tcp_stays_in_the_box_and_under_the_speed_limit(arm, targets):
    limits = arm.limits
    low, high = np.array(limits.workspace_low), np.array(limits.workspace_high)
    scene = arm.driver.scene
    for pos, q, ticks in targets:
        arm._on_target(convert.pose_msg(np.array(pos), np.array(q), arm.now()))
        for _ in range(ticks):
            arm.control_step()
            tcp = scene.ee_pose()[0]
            speed = np.linalg.norm(scene.ee_velocity()[:3])
            assert np.all(tcp > low - 0.01) and np.all(tcp < high + 0.01), tcp
            assert speed < limits.max_linear_speed * 1.15, speed
            assert np.linalg.norm(arm.setpoint[0] - np.clip(arm.setpoint[0], low, high)) == 0.0


def test_limit_step_caps_linear_and_angular_motion_per_tick():
    env = SafetyEnvelope(SafetyLimits(max_linear_speed=0.5, max_angular_speed=1.0), [-3] * 7, [3] * 7)
    pos, q = env.limit_step(np.zeros(3) + 0.3, np.array([0, 0, 0, 1.0]), np.array([1.0, 0.3, 0.3]),
                            np.array([0, 0, np.sin(0.5), np.cos(0.5)]), 0.001)
    assert np.linalg.norm(pos - 0.3) == pytest.approx(0.0005)
    assert 2 * np.arcsin(abs(q[2])) == pytest.approx(0.001, rel=1e-6)
    assert env.events.counts == {"linear_speed_limit": 1, "angular_speed_limit": 1}


def test_joint_targets_keep_their_margin():
    env = SafetyEnvelope(SafetyLimits(joint_margin=0.1), [-1.0, -2.0], [1.0, 2.0])
    np.testing.assert_allclose(env.clip_joints([5.0, -5.0]), [0.9, -1.9])
    np.testing.assert_array_equal(env.joints_near_limits([0.95, 0.0]), [0])


def test_gripper_force_cap_reaches_the_drivers():
    from robot_stack.config import load_config
    from robot_stack.drivers.franka.config import FrankaConfig
    from robot_stack.drivers.mujoco import MujocoArmConfig, MujocoArmDriver

    cfg = load_config("arm_node", ["robot.safety.max_gripper_force=25.0", "robot_ip=172.16.0.2"])
    assert FrankaConfig.from_node_config(cfg).grasp_force == 25.0
    driver = MujocoArmDriver(MujocoArmConfig(realtime=False, task="lift", max_gripper_force=25.0))
    driver.connect()
    assert tuple(driver.scene.model.actuator_forcerange[driver.scene.gripper_act]) == (-50.0, 50.0)
