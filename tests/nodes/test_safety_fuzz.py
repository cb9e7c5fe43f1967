"""Random and adversarial targets never take the measured TCP out of the box or over the speed limit (hypothesis),
and targets at the reach edge and the box corners, held for seconds, neither push the TCP out nor strand the arm."""
import numpy as np
import pytest
import rclpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rclpy.parameter import Parameter

from robot_stack.control.safety import SafetyEnvelope, SafetyLimits
from robot_stack.nodes.arm_node import ArmNode
from robot_stack.ros import convert

coord = st.one_of(st.floats(-3.0, 3.0), st.sampled_from([np.nan, np.inf, -np.inf, 1e9, -1e9]))
quat = st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=4)
target = st.tuples(st.lists(coord, min_size=3, max_size=3), quat, st.integers(20, 150))

OUTSIDE_TOLERANCE = 0.005      # m: the most the measured TCP may be outside the workspace box


@pytest.fixture(scope="module")
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def make_arm(context, robot: str) -> ArmNode:
    """An arm node over the twin, stepped by the test (one control period per `control_step()`)."""
    return ArmNode(start_loop=False, context=context, parameter_overrides=[
        Parameter("robot", value=robot), Parameter("realtime", value=False), Parameter("task", value="reach")])


def close(node: ArmNode) -> None:
    node.close()
    node.destroy_node()


@pytest.fixture(scope="module")
def arm(context):
    node = make_arm(context, "panda")
    yield node
    close(node)


def outside(tcp, low, high) -> float:
    """How far `tcp` is outside the box [low, high] (0 inside)."""
    return float(np.linalg.norm(tcp - np.clip(tcp, low, high)))


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
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
            assert outside(tcp, low, high) <= OUTSIDE_TOLERANCE, tcp
            assert speed < limits.max_linear_speed * 1.15, speed
            assert np.linalg.norm(arm.setpoint[0] - np.clip(arm.setpoint[0], low, high)) == 0.0


# At the reach edge and in the box's far corners, for a top-down hand (as the tasks hold it), most of these are out of
# the arm's reach: (0.85, 0, 0.3) took the Panda's TCP to x = 0.888 and left it stuck in its elbow margin.
EDGE_TARGETS = [(0.85, 0.0, 0.3), (0.85, 0.55, 0.65), (0.85, -0.55, -0.005), (0.85, 0.0, 0.65), (0.15, 0.55, 0.65)]
IN_BOX = np.array([0.5, 0.0, 0.3])
HOLD_S = 2.0                    # s each edge target is commanded for
RECOVER_S = 6.0                 # s of control periods the in-box target that follows may take to be reached


def command(arm, goal, quat, seconds, on_tick):
    """Stream `goal` as teleop would (a target every 50 periods) for `seconds` of control periods, calling
    `on_tick()` after each; stops early when `on_tick()` returns True."""
    periods = round(seconds * arm.spec.control_hz)
    for k in range(periods):
        if k % 50 == 0:
            arm._on_target(convert.pose_msg(np.asarray(goal, dtype=float), quat, arm.now()))
        arm.control_step()
        if on_tick():
            return True
    return False


@pytest.mark.parametrize("robot", ["panda", "ur5e"])
def test_reach_edge_and_corner_targets_keep_the_measured_tcp_in_the_box_and_the_arm_recovers(context, robot):
    arm = make_arm(context, robot)
    try:
        low, high = np.array(arm.limits.workspace_low), np.array(arm.limits.workspace_high)
        scene = arm.driver.scene
        arm.control_step()
        quat = arm.state.ee_quat.copy()              # the episode's top-down hand
        worst = {"out": 0.0}

        def in_box():
            worst["out"] = max(worst["out"], outside(scene.ee_pose()[0], low, high))
            return False

        def reached():
            in_box()
            return np.linalg.norm(scene.ee_pose()[0] - IN_BOX) < 0.005

        for goal in EDGE_TARGETS:
            command(arm, goal, quat, HOLD_S, in_box)
            assert worst["out"] <= OUTSIDE_TOLERANCE, (goal, worst["out"])
            assert command(arm, IN_BOX, quat, RECOVER_S, reached), \
                f"{robot}: after {goal} the TCP stayed at {scene.ee_pose()[0].round(4).tolist()}, not {IN_BOX.tolist()}"
        assert worst["out"] <= OUTSIDE_TOLERANCE, worst["out"]
    finally:
        close(arm)


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
