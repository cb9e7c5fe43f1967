"""The ros2_control driver against a stand-in for a running controller manager, over real rclpy.

The stand-in has the graph a franka_ros2 / UR driver bring-up shows this driver: a `joint_trajectory_controller`
node taking trajectory_msgs/JointTrajectory on ~/joint_trajectory and a `joint_state_broadcaster` node
publishing /joint_states. Its "arm" moves toward the newest point at no more than the joint speed limits,
arriving at the point's time_from_start where that is slower.
"""
import threading
import time

import numpy as np
import pytest

from tests.nodes.conftest import RosFixture, wait_for  # noqa: F401  (sets the test domain before rclpy loads)

import rclpy  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from robot_stack.config import load_config  # noqa: E402
from robot_stack.control.controller import Controller  # noqa: E402
from robot_stack.control.safety import SafetyLimits  # noqa: E402
from robot_stack.drivers.base import DriverError  # noqa: E402
from robot_stack.drivers.ros2_control import Ros2ControlConfig, Ros2ControlDriver  # noqa: E402
from robot_stack.robots.spec import get_robot  # noqa: E402

# stale_after where staleness is not the subject (the cases that test it use 0.3 s): the stand-in shares a loaded
# 2-core machine with everything else, and a pause of its timer is a (correctly reported) stale state. At 1.0 s the
# first case still saw 1.06-1.9 s pauses in 5 of 8 fresh full runs of the suite, never in the file run alone; the
# cause is not found.
LOADED = 3.0


class StandInController:
    """A JointTrajectoryController + joint_state_broadcaster pair with ros2_control's names and topics."""

    def __init__(self, ros, config: Ros2ControlConfig, q0, order=None, rate=250.0):
        self.spec = get_robot(config.robot)
        self.names = list(config.joint_names)
        self.order = list(order) if order is not None else list(range(len(self.names)))
        self.q = np.array(q0, dtype=float)
        self.goal, self.goal_time = self.q.copy(), 0.0
        self.points: list[np.ndarray] = []          # every point received, in the spec's joint order
        self.publishing = True
        self._lock = threading.Lock()
        self._dt = 1.0 / rate
        self.jtc = ros.node(config.controller)
        self.jsb = ros.node("joint_state_broadcaster")
        self.jtc.create_subscription(JointTrajectory, "~/joint_trajectory", self._on_trajectory, QoSProfile(depth=10))
        self.pub = self.jsb.create_publisher(JointState, config.state_topic, QoSProfile(depth=10))
        self.jsb.create_timer(self._dt, self._step)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        where = {n: i for i, n in enumerate(msg.joint_names)}
        point = msg.points[-1]
        q = np.array([point.positions[where[n]] for n in self.names])
        with self._lock:
            self.points.append(q)
            self.goal = q
            self.goal_time = time.monotonic() + point.time_from_start.sec + 1e-9 * point.time_from_start.nanosec

    def _step(self) -> None:
        with self._lock:
            left = max(self.goal_time - time.monotonic(), self._dt)
            velocity = np.clip((self.goal - self.q) / left, -np.array(self.spec.dq_max), self.spec.dq_max)
            self.q = self.q + velocity * self._dt
            q = self.q.copy()
        if self.publishing:
            msg = JointState(name=[self.names[i] for i in self.order], position=[float(q[i]) for i in self.order],
                             velocity=[0.0] * len(self.order))
            msg.header.stamp = self.jsb.get_clock().now().to_msg()
            self.pub.publish(msg)


@pytest.fixture
def ros():
    fixture = RosFixture()
    yield fixture
    fixture.close()


def connected(config):
    driver = Ros2ControlDriver(config)
    driver.connect()
    return driver


def run_controller(driver, controller, stop):
    """The control loop the arm node (or the controller process) runs: read, tick, send; a DriverError faults."""
    while not stop.is_set():
        try:
            state = driver.read_state()
            controller.tick(state).send(driver)
        except DriverError as exc:
            controller.fault(str(exc))


def test_the_controller_follows_a_pose_target_through_the_bridge(ros):
    config = Ros2ControlConfig(robot="panda", connect_timeout=15.0, stale_after=LOADED)
    spec = get_robot("panda")
    # Everything the loop needs is built before the driver connects: from the first joint state on, the staleness
    # clock runs. This case, which paid for the process's first config composition inside that window, was the one
    # found stale (1.3-1.9 s, the loop a few points in) in three fresh full runs.
    limits = SafetyLimits(**dict(load_config("arm_node", ["robot=panda"]).robot.safety))
    controller = Controller(spec, limits, command_period=0.05)
    standin = StandInController(ros, config, spec.q_home)
    driver = connected(config)
    stop = threading.Event()
    loop = threading.Thread(target=run_controller, args=(driver, controller, stop), daemon=True)
    loop.start()
    try:
        start_pos, start_quat = driver.kinematics.fk(standin.q)
        goal = start_pos + np.array([0.05, -0.03, -0.05])
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:             # a teleop-like stream of targets at 20 Hz
            controller.set_target(goal, start_quat, time.time())
            if np.linalg.norm(driver.kinematics.fk(standin.q)[0] - goal) < 0.003:
                break
            time.sleep(0.05)
        reached = driver.kinematics.fk(standin.q)[0]
        assert np.linalg.norm(reached - goal) < 0.003, \
            f"TCP at {reached}, goal {goal}; estop {controller.estop}: {controller.safety.events.last}; " \
            f"{driver.published} points published"
        assert not controller.estop, controller.safety.events.last
    finally:
        stop.set()
        loop.join(timeout=2.0)
        driver.disconnect()
    points = np.array(standin.points)
    assert len(points) > 10
    assert np.isfinite(points).all()
    assert (points >= spec.q_min).all() and (points <= spec.q_max).all()
    # One point per publish period: consecutive points are set points 10 ms apart, never further than the arm moves.
    assert (np.abs(np.diff(points, axis=0)) <= np.array(spec.dq_max) * 0.05).all()


def test_joint_names_in_another_order_are_mapped(ros):
    config = Ros2ControlConfig(robot="ur5e", connect_timeout=15.0, stale_after=LOADED)
    spec = get_robot("ur5e")
    q0 = np.array(spec.q_home) + np.linspace(-0.2, 0.2, spec.dof)
    standin = StandInController(ros, config, q0, order=[2, 1, 0, 3, 4, 5])  # elbow first, as the UR driver lists
    driver = connected(config)
    try:
        state = driver.read_state()
        np.testing.assert_allclose(state.q, standin.q, atol=1e-9)
        target = state.q + np.array([0.05, -0.05, 0.02, 0.0, 0.0, 0.05])
        for _ in range(30):                              # a joint move, as the arm node's home sends
            driver.read_state()
            driver.command_joints(target, 0.0)
        wait_for(lambda: np.abs(standin.q - target).max() < 1e-3, timeout=10.0, what="the stand-in at the target")
        np.testing.assert_allclose(standin.points[-1], target)
    finally:
        driver.disconnect()


def test_stale_joint_states_are_a_driver_error_even_with_an_echo(ros):
    # /joint_states with franka_ros2's Panda names, where the arm node publishes the same names: read back, its
    # echo would look like a live arm.
    config = Ros2ControlConfig(robot="panda", connect_timeout=15.0, stale_after=0.3, state_topic="/joint_states")
    spec = get_robot("panda")
    standin = StandInController(ros, config, spec.q_home)
    echo_node = ros.node("arm_node")
    echo = echo_node.create_publisher(JointState, "/joint_states", QoSProfile(depth=10))
    echo_node.create_timer(0.01, lambda: echo.publish(JointState(name=list(config.joint_names),
                                                                 position=[0.1] * spec.dof)))
    driver = connected(config)
    try:
        state = driver.read_state()
        assert state.mode == "ok"
        np.testing.assert_allclose(state.q, spec.q_home, atol=1e-6)          # the echo's 0.1s were not taken
        driver.command_pose(state.ee_pos, state.ee_quat, 0.0)
        wait_for(lambda: len(standin.points) == 1, timeout=5.0, what="the first point")
        sent = 1
        standin.publishing = False                                            # the controller manager dies
        wait_for(lambda: driver.read_state().mode == "error", timeout=5.0, what="a stale state")
        with pytest.raises(DriverError, match="stale"):
            driver.command_pose(state.ee_pos, state.ee_quat, 0.0)
        with pytest.raises(DriverError, match="still stale"):
            driver.recover()
        time.sleep(0.1)                              # (a refused point would have arrived by now)
        assert len(standin.points) == sent and driver.bridge.ignored > 0
        standin.publishing = True                                             # it is back: the error stays latched
        wait_for(lambda: time.monotonic() - driver.bridge.latest.received < 0.05, timeout=5.0, what="fresh states")
        assert driver.read_state().mode == "error"
        driver.recover()
        assert driver.read_state().mode == "ok"
        driver.command_pose(state.ee_pos, state.ee_quat, 0.0)
        wait_for(lambda: len(standin.points) > sent, timeout=5.0, what="a point after recovery")
    finally:
        driver.disconnect()


def test_never_publishes_a_non_finite_out_of_limit_or_jumping_target(ros):
    config = Ros2ControlConfig(robot="panda", connect_timeout=15.0, publish_hz=1000.0, stale_after=LOADED)
    spec = get_robot("panda")
    standin = StandInController(ros, config, spec.q_home)
    driver = connected(config)
    try:
        state = driver.read_state()
        q_max = np.array(spec.q_max)
        for bad, why in ((np.full(spec.dof, np.nan), "non-finite"), (q_max + 0.01, "outside the limits"),
                         (state.q + np.eye(spec.dof)[3] * 1.0, "jump")):
            driver.read_state()
            with pytest.raises(DriverError, match=why):
                driver.command_joints(bad, 0.0)
        with pytest.raises(DriverError, match="no joint solution"):
            driver.command_pose([1.5, 0.0, 0.4], state.ee_quat, 0.0)      # out of reach: no point, not a clipped one
        driver.stop()                                                     # a hold at the measured joints
        wait_for(lambda: len(standin.points) == 1, timeout=5.0, what="the hold point")
        np.testing.assert_allclose(standin.points[0], state.q, atol=1e-3)
        with pytest.raises(DriverError, match="stopped"):
            driver.command_joints(state.q, 0.0)
    finally:
        driver.disconnect()


def test_connect_fails_without_a_controller_manager(ros):
    with pytest.raises(DriverError, match="no /franka/joint_states from joint_state_broadcaster"):
        connected(Ros2ControlConfig(robot="panda", connect_timeout=0.5))


def test_the_arm_node_follows_a_target_through_the_bridge_and_faults_on_stale_states(ros):
    from geometry_msgs.msg import PoseStamped
    from rclpy.parameter import Parameter

    from robot_stack.nodes.arm_node import ArmNode
    from robot_stack.ros import convert, qos

    config = Ros2ControlConfig(robot="panda", state_topic="/joint_states", stale_after=LOADED)
    spec = get_robot("panda")
    standin = StandInController(ros, config, spec.q_home)
    # The arm node republishes the measured state on /joint_states under the same names: the driver must not
    # take that echo for the controller's broadcaster, or the stale check below could never fire.
    # The loop as a thread of this process, so the test can read the driver's bridge; the process design is the
    # next test's.
    node = ros.add(ArmNode(context=ros.context, parameter_overrides=[
        Parameter("controller_process", value=False),
        Parameter("driver", value="ros2_control"), Parameter("robot", value="panda"),
        Parameter("overrides", value=f"+robot.ros2_control.state_topic=/joint_states "
                                     f"+robot.ros2_control.stale_after={LOADED}")]))
    client = ros.node("client")
    target = client.create_publisher(PoseStamped, "arm/target_pose", qos.COMMAND)
    pos, quat = node.driver.kinematics.fk(standin.q)
    goal = pos + np.array([0.04, 0.03, -0.04])
    deadline = time.monotonic() + 20.0
    while np.linalg.norm(node.driver.kinematics.fk(standin.q)[0] - goal) > 0.003 and time.monotonic() < deadline:
        target.publish(convert.pose_msg(goal, quat, client.get_clock().now().nanoseconds * 1e-9))
        time.sleep(0.05)
    assert np.linalg.norm(node.driver.kinematics.fk(standin.q)[0] - goal) <= 0.003
    assert not node.controller.estop
    standin.publishing = False
    wait_for(lambda: node.controller.estop, timeout=5.0, what="the arm node's fault on stale joint states")
    assert "driver_error" in node.controller.safety.events.counts and node.driver.bridge.ignored > 0


def test_the_controller_process_drives_the_bridge_from_its_own_interpreter(ros):
    """With controller_process: true the driver (and its ROS context) lives in the controller's process."""
    from omegaconf import OmegaConf

    from robot_stack.control.process import ControllerProcess

    config = Ros2ControlConfig(robot="panda")
    standin = StandInController(ros, config, get_robot("panda").q_home)
    cfg = OmegaConf.to_container(load_config("arm_node", ["robot=panda", "driver=ros2_control",
                                                          f"+robot.ros2_control.stale_after={LOADED}"]), resolve=True)
    arm = ControllerProcess(cfg, priority=0)
    try:
        fk = Ros2ControlDriver(config).kinematics.fk
        pos, quat = fk(standin.q)
        goal = pos + np.array([0.03, 0.0, -0.03])
        deadline = time.monotonic() + 20.0
        while np.linalg.norm(fk(standin.q)[0] - goal) > 0.003 and time.monotonic() < deadline:
            arm.set_target(goal, quat, time.time())
            time.sleep(0.05)
        assert np.linalg.norm(fk(standin.q)[0] - goal) <= 0.003
        assert arm.fault() is None
    finally:
        arm.close()


def test_the_gripper_goes_to_a_joint_group_position_controller_when_configured(ros):
    from std_msgs.msg import Float64MultiArray

    config = Ros2ControlConfig(robot="panda", gripper_command_topic="/gripper_controller/commands", stale_after=LOADED)
    StandInController(ros, config, get_robot("panda").q_home)
    commands = []
    ros.node("gripper_controller").create_subscription(Float64MultiArray, "~/commands",
                                                       lambda m: commands.append(list(m.data)), QoSProfile(depth=10))
    driver = connected(config)
    try:
        state = driver.read_state()
        wait_for(lambda: driver.bridge.gripper_pub.get_subscription_count() > 0, what="the gripper controller")
        for g in (1.0, 1.0, 0.0):                           # an unchanged command is not sent again
            driver.read_state()
            driver.command_pose(state.ee_pos, state.ee_quat, g)
        wait_for(lambda: len(commands) == 2, what="two gripper commands")
        assert commands == [[0.0, 0.0], [0.04, 0.04]]       # per finger: closed, then the spec's full opening
    finally:
        driver.disconnect()
