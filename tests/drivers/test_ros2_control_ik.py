"""The ros2_control driver's pieces without ROS: IK from the robot model, joint names mapped, the config."""
import numpy as np
import pytest
from omegaconf import OmegaConf
from sensor_msgs.msg import JointState

from robot_stack import transforms as tf
from robot_stack.drivers.registry import make_arm_driver
from robot_stack.drivers.ros2_control import Ros2ControlConfig, Ros2ControlDriver
from robot_stack.drivers.ros2_control.bridge import NameMap, snapshot_from
from robot_stack.drivers.ros2_control.ik import DampedLeastSquaresIK, IKError
from robot_stack.robots.kinematics import Kinematics
from robot_stack.robots.spec import get_robot


@pytest.mark.parametrize("robot", ["panda", "ur5e"])
def test_ik_from_a_nearby_seed_reaches_the_pose_inside_the_limits(robot):
    spec = get_robot(robot)
    kin = Kinematics(spec)
    lo, hi = np.array(spec.q_min) + 0.05, np.array(spec.q_max) - 0.05
    ik = DampedLeastSquaresIK(kin, spec.q_min, spec.q_max)
    rng = np.random.default_rng(3)
    failures = 0
    for _ in range(200):
        q_true = rng.uniform(lo, hi)
        if np.linalg.svd(kin.jacobian(q_true), compute_uv=False)[-1] < 0.05:
            continue                               # near a singularity joints may move far for a small pose error
        pos, quat = kin.fk(q_true)
        seed = np.clip(q_true + rng.normal(0, 0.02, spec.dof), spec.q_min, spec.q_max)   # the measured joints lag
        try:
            q = ik.solve(pos, quat, seed)
        except IKError:
            failures += 1
            continue
        got_pos, got_quat = kin.fk(q)
        assert np.linalg.norm(got_pos - pos) <= 1e-3 and tf.angle_between(got_quat, quat) <= 1e-2
        assert np.all(q >= spec.q_min) and np.all(q <= spec.q_max)
        assert np.abs(q - seed).max() < 0.2        # the seed's branch, not another solution
        assert ik.last_iterations <= 6
    assert failures == 0


def test_ik_refuses_a_pose_out_of_reach():
    spec = get_robot("panda")
    ik = DampedLeastSquaresIK(Kinematics(spec), spec.q_min, spec.q_max)
    with pytest.raises(IKError, match="no joint solution"):
        ik.solve([1.5, 0.0, 0.4], [1.0, 0.0, 0.0, 0.0], spec.q_home)


def joint_state(names, positions, stamp=(5, 0)):
    msg = JointState(name=list(names), position=[float(p) for p in positions])
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    return msg


def test_joint_states_are_mapped_by_name_not_by_position():
    cfg = Ros2ControlConfig(robot="ur5e")
    names = NameMap(cfg.joint_names, ("finger_a", "finger_b"))
    q = np.arange(6) * 0.1
    order = [2, 0, 5, 1, 4, 3]                     # the UR driver lists elbow_joint first, for one
    msg = joint_state([cfg.joint_names[i] for i in order] + ["finger_a", "finger_b", "other"],
                      [q[i] for i in order] + [0.01, 0.02, 9.0])
    snap = snapshot_from(msg, names, received=1.0, previous=None)
    np.testing.assert_array_equal(snap.q, q)
    assert snap.gripper_width == pytest.approx(0.03) and snap.stamp == 5.0
    # A gripper-only message updates the width and is no fresher state of the arm; a NaN joint is no state.
    only_fingers = snapshot_from(joint_state(["finger_a", "finger_b"], [0.0, 0.0]), names, 2.0, snap)
    assert only_fingers.gripper_width == 0.0 and only_fingers.received == 1.0
    assert snapshot_from(joint_state(cfg.joint_names, [np.nan] + [0.0] * 5), names, 3.0, snap) is None
    assert snapshot_from(joint_state(cfg.joint_names[:5], [0.0] * 5), names, 3.0, None) is None


def test_the_driver_is_registered_and_configured_from_the_node_config():
    cfg = OmegaConf.create({"driver": "ros2_control", "robot": {"name": "panda", "ros2_control": {
        "controller": "fr3_arm_controller", "joint_names": [f"fr3_joint{i}" for i in range(1, 8)],
        "stale_after": 0.05}}})
    driver = make_arm_driver("ros2_control", cfg)
    assert isinstance(driver, Ros2ControlDriver) and not driver.connected
    assert driver.config.trajectory_topic == "/fr3_arm_controller/joint_trajectory"
    assert driver.config.joint_names[0] == "fr3_joint1" and driver.config.stale_after == 0.05
    assert driver.config.state_topic == "/franka/joint_states"
    ur = Ros2ControlConfig(robot="ur5e")
    assert ur.trajectory_topic == "/scaled_joint_trajectory_controller/joint_trajectory"
    assert ur.state_topic == "/joint_states"
    with pytest.raises(ValueError, match="7 distinct names"):
        Ros2ControlConfig(joint_names=("a",) * 7)


def test_the_driver_loads_without_the_simulator():
    import subprocess
    import sys
    code = ("import sys, robot_stack.drivers.ros2_control; "
            "print(sorted(m for m in sys.modules if m == 'mujoco' or m.startswith('robot_stack.sim')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
