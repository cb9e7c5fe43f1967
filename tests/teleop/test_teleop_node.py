"""teleop_node with the twin's arm_node through real rclpy: keys typed into a pseudo-terminal move
the TCP, the intervention flag gates commanding, events reach the recorder's services, and the
scripted device drives a reach episode to success."""
import os
import pty
import select

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.parameter import Parameter
from std_msgs.msg import Bool, Float64, String
from std_srvs.srv import Trigger

from robot_stack import transforms as tf
from robot_stack.drivers.teleop import KeyboardConfig, KeyboardDevice, TeleopCommand
from robot_stack.nodes.arm_node import ArmNode
from robot_stack.nodes.teleop_node import TeleopNode
from robot_stack.ros import convert, qos
from tests.nodes.conftest import wait_for


def params(**values):
    return [Parameter(k, value=v) for k, v in values.items()]


@pytest.fixture
def terminal():
    master, slave = pty.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


class Listener:
    def __init__(self, ros):
        self.node = ros.node("listener")
        self.poses, self.flags, self.targets, self.grippers = [], [], [], []
        self.node.create_subscription(Float64, "arm/gripper_cmd", lambda m: self.grippers.append(m.data), qos.RELIABLE)
        self.node.create_subscription(PoseStamped, "arm/ee_pose", self.poses.append, qos.SENSOR)
        self.node.create_subscription(Bool, "teleop/intervention", lambda m: self.flags.append(m.data), qos.RELIABLE)
        self.node.create_subscription(PoseStamped, "arm/target_pose", self.targets.append, qos.COMMAND)

    def pos(self):
        return convert.parse_pose(self.poses[-1])[0]


def wait_consumed(listener, slave):
    """Until the node has read every key byte typed so far, then two more cycles (the one that read them)."""
    wait_for(lambda: not select.select([slave], [], [], 0.0)[0], what="the keys to be read")
    n = len(listener.flags)
    wait_for(lambda: len(listener.flags) >= n + 2, what="two more teleop cycles")


def start_arm(ros, seed=0):
    # The loop as a thread of this process: the tests read the twin's scene from the driver.
    arm = ros.add(ArmNode(context=ros.context, parameter_overrides=params(robot="panda", task="reach", seed=seed,
                                                                          controller_process=False)))
    listener = Listener(ros)
    wait_for(lambda: len(listener.poses) > 5, what="ee poses from arm_node")
    return arm, listener


def test_keys_move_the_tcp_only_while_intervening(ros, terminal):
    master, slave = terminal
    arm, listener = start_arm(ros)
    teleop = ros.add(TeleopNode(KeyboardDevice(KeyboardConfig(fd=slave)), context=ros.context,
                                parameter_overrides=params(rate=30.0, service_timeout=0.2)))
    wait_for(lambda: len(listener.flags) > 5, what="intervention flags")
    assert not any(listener.flags) and not listener.targets and not teleop.commanding

    os.write(master, b"w" * 5)                                         # not intervening: ignored
    wait_consumed(listener, slave)
    assert not listener.targets and not listener.grippers and arm.mode == "hold"

    os.write(master, b"t")
    wait_for(lambda: listener.flags[-1], what="intervention flag on /teleop/intervention")
    start = listener.pos()

    def pushed_forward():
        os.write(master, b"w")                                          # one press per poll: key repeat
        return listener.pos()[0] - start[0] > 0.05
    wait_for(pushed_forward, timeout=15.0, what="the TCP to move 5 cm along +x")
    moved = listener.pos() - start
    assert abs(moved[1]) < 0.01 and abs(moved[2]) < 0.01, moved
    target, quat, stamp = convert.parse_pose(listener.targets[-1])
    assert listener.targets[-1].header.frame_id == "base"
    assert abs(teleop.now() - stamp) < 1.0
    assert np.linalg.norm(target - listener.pos()) <= teleop.cfg.max_lead + 0.01
    assert listener.grippers[-1] == 0.0                                 # open, as nobody closed it
    width = arm.state.gripper_width
    os.write(master, b" ")
    wait_for(lambda: listener.grippers[-1] == 1.0, what="the gripper toggle on /arm/gripper_cmd")
    wait_for(lambda: arm.state.gripper_width < width - 0.01, what="the fingers to close")

    os.write(master, b"t")
    wait_for(lambda: not listener.flags[-1] and not teleop.commanding, what="the intervention flag to drop")
    n = len(listener.targets)
    wait_for(lambda: arm.mode == "hold", what="the arm to hold once teleop stops commanding")
    # Letting go is on purpose: teleop ends its stream (an empty chunk), so the hold is no stall alarm.
    assert arm.controller.stall_since is None and "watchdog_hold" in arm.safety.events.counts
    os.write(master, b"www")
    wait_consumed(listener, slave)
    assert len(listener.targets) <= n + 1                              # at most one in flight when the flag dropped


def test_episode_keys_call_the_recorder_services_and_a_missing_one_only_warns(ros, terminal):
    master, slave = terminal
    calls = []
    recorder = ros.node("recorder")

    def handler(name):
        def serve(request, response):
            calls.append(name)
            response.success, response.message = True, f"{name} ok"
            return response
        return serve
    for name in ("start", "stop"):
        recorder.create_service(Trigger, f"recorder/{name}", handler(name))
    teleop = ros.add(TeleopNode(KeyboardDevice(KeyboardConfig(fd=slave)), context=ros.context,
                                parameter_overrides=params(service_timeout=0.3)))
    os.write(master, b"\r")
    wait_for(lambda: len(teleop.event_log) == 1, what="recorder/start to answer")
    os.write(master, b"\r")
    wait_for(lambda: len(teleop.event_log) == 2, what="recorder/stop to answer")
    assert calls == ["start", "stop"]
    assert list(teleop.event_log) == [("start", True, "start ok"), ("stop", True, "stop ok")]
    os.write(master, b"\ry")                                            # no recorder/success service
    wait_for(lambda: len(teleop.event_log) == 4, what="the success event to time out")
    assert teleop.event_log[-1][:2] == ("success", False) and "no recorder/success" in teleop.event_log[-1][2]
    assert teleop._thread.is_alive()


def test_scripted_device_drives_a_reach_episode_to_success(ros):
    arm, listener = start_arm(ros, seed=2)
    teleop = ros.add(TeleopNode(context=ros.context, parameter_overrides=params(
        device="scripted", task="reach", robot="panda", seed=2, rate=30, service_timeout=0.2)))
    device = teleop.device
    wait_for(lambda: device.done, timeout=30.0, what="the scripted reach episode to end")
    assert device.success, f"reach failed after {device.steps} expert steps"
    assert listener.flags[-1] and listener.targets
    goal = arm.driver.scene.target_zone_pos()                          # the twin itself, not the mirror
    wait_for(lambda: np.linalg.norm(listener.pos() - goal) < 0.02, what="the TCP to settle at the marker")
    wait_for(lambda: len(teleop.event_log) == 2, what="start and success events")
    assert [e for e, _, _ in teleop.event_log] == ["start", "success"]


def test_integration_clips_steps_keeps_a_lead_and_honours_the_ee_frame(ros, terminal):
    _, slave = terminal
    teleop = ros.add(TeleopNode(KeyboardDevice(KeyboardConfig(fd=slave)), start_loop=False, context=ros.context,
                                parameter_overrides=params(rate=10, max_linear_speed=0.2, max_angular_speed=1.0,
                                                           max_lead=0.05)))
    down = np.array([1.0, 0.0, 0.0, 0.0])                                # tool z along base -z
    start = (np.array([0.4, 0.0, 0.3]), down)
    here = start[0]
    pos, quat = teleop.integrate(start, TeleopCommand(twist=[1.0, 0, 0, 0, 0, 0], mode="delta"), here)
    np.testing.assert_allclose(pos, [0.42, 0.0, 0.3])                    # 0.2 m/s at 10 Hz: 2 cm
    pos, _ = teleop.integrate(start, TeleopCommand(twist=[0, 0, 0.1, 0, 0, 0], mode="velocity", frame="ee"), here)
    np.testing.assert_allclose(pos, [0.4, 0.0, 0.29])                    # tool +z is base -z
    _, quat = teleop.integrate(start, TeleopCommand(twist=[0, 0, 0, 0, 0, 5.0], frame="ee"), here)
    assert tf.angle_between(quat, down) == pytest.approx(0.1)            # clipped to 1 rad/s
    far = (np.array([0.44, 0.0, 0.3]), down)
    pos, _ = teleop.integrate(far, TeleopCommand(twist=[0.2, 0, 0, 0, 0, 0]), here)
    np.testing.assert_allclose(pos, [0.45, 0.0, 0.3])                    # lead over the measured TCP capped
    goal = (np.array([0.4, 0.0, 0.5]), tf.quat_mul(tf.axis_angle_to_quat([0, 0, 1.0]), down))
    pos, quat = teleop.integrate(start, TeleopCommand(target=goal), here)
    np.testing.assert_allclose(pos, [0.4, 0.0, 0.32])
    assert tf.angle_between(quat, down) == pytest.approx(0.1)


def test_always_command_makes_teleop_the_sole_commander(ros, terminal):
    _, slave = terminal
    pose = ros.node("arm_stand_in").create_publisher(PoseStamped, "arm/ee_pose", qos.SENSOR)
    nodes = {always: ros.add(TeleopNode(KeyboardDevice(KeyboardConfig(fd=slave)), start_loop=False, context=ros.context,
                                        parameter_overrides=params(always_command=always)))
             for always in ("false", "true")}                          # launch files may pass strings

    def commands(node, command):
        pose.publish(convert.pose_msg([0.4, 0.0, 0.3], [1.0, 0.0, 0.0, 0.0], 0.0))
        node.step(command)
        return node.commanding
    wait_for(lambda: commands(nodes["false"], TeleopCommand(intervention=True)), what="intervening from the pose")
    nodes["false"].step(TeleopCommand())
    assert not nodes["false"].commanding and nodes["false"].target is None    # the policy's turn again
    wait_for(lambda: commands(nodes["true"], TeleopCommand()), what="the sole commander to take over")
    np.testing.assert_allclose(nodes["true"].target[0], [0.4, 0.0, 0.3])

    def still_commands(node):                                          # no more poses: the arm node is gone
        node.step(TeleopCommand())
        return node.commanding
    wait_for(lambda: not still_commands(nodes["true"]), what="a stale measured pose to stop the commanding")


def test_bad_parameters_fail_clearly(ros):
    with pytest.raises(ValueError, match="unknown teleop device 'joystick'"):
        TeleopNode(context=ros.context, parameter_overrides=params(device="joystick"))
    with pytest.raises(ValueError, match="frame must be one of"):
        TeleopNode(context=ros.context, parameter_overrides=params(device="scripted", frame="world"))


def test_scripted_episodes_reset_the_twin_and_replay_each_seed(ros):
    arm, listener = start_arm(ros, seed=5)
    instructions = []
    listener.node.create_subscription(String, "task/instruction", lambda m: instructions.append(m.data), qos.LATCHED)
    teleop = ros.add(TeleopNode(context=ros.context, parameter_overrides=params(
        device="scripted", task="reach", robot="panda", episodes=2, rate=30, service_timeout=0.1)))
    wait_for(lambda: teleop.episodes_done == 2, timeout=40.0, what="two scripted reach episodes")
    wait_for(lambda: len(teleop.event_log) == 6, what="every event handled")
    log = list(teleop.event_log)
    assert [(e, ok) for e, ok, _ in log if e == "reset"] == [("reset", True), ("reset", True)]
    assert [m for e, _, m in log if e == "reset"] == ["seed=5", "seed=6"]          # the arm node's seeds, in turn
    assert [e for e, _, _ in log if e != "reset"] == ["start", "success", "start", "success"]
    assert teleop.device.config.seed == 6 and teleop.device.success
    assert instructions and "yellow marker" in instructions[-1]
    goal = arm.driver.scene.target_zone_pos()
    wait_for(lambda: np.linalg.norm(listener.pos() - goal) < 0.02, what="the TCP to settle at the second marker")


def test_episodes_need_the_scripted_device(ros, terminal):
    _, slave = terminal
    with pytest.raises(ValueError, match="episodes is for the scripted device"):
        TeleopNode(KeyboardDevice(KeyboardConfig(fd=slave)), context=ros.context,
                   parameter_overrides=params(episodes=3))
