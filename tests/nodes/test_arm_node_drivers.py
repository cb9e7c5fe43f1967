"""arm_node takes its driver from the registry and offers the twin's topics and services only for a simulated arm."""
import sys

from rclpy.parameter import Parameter

from robot_stack.drivers.franka import FrankaDriver
from robot_stack.drivers.mujoco import MujocoArmDriver
from robot_stack.nodes.arm_node import ArmNode
from tests.drivers.fakes import fake_pylibfranka

SIM_ONLY = {"/sim/state", "/sim/episode", "/sim/reset"}


def endpoints(node):
    return {p.topic_name for p in node.publishers} | {s.service_name for s in node.services}


def test_a_real_arm_gets_no_twin_topics_or_services(ros, monkeypatch):
    fake_pylibfranka.reset()
    monkeypatch.setitem(sys.modules, "pylibfranka", fake_pylibfranka)
    node = ros.add(ArmNode(context=ros.context, start_loop=False, parameter_overrides=[
        Parameter("driver", value="franka"), Parameter("robot", value="panda"), Parameter("robot_ip", value="10.0.0.7")]))
    assert type(node.driver) is FrankaDriver and node.driver.config.ip == "10.0.0.7"
    assert {"/arm/stop", "/arm/ee_pose"} <= endpoints(node)
    assert not SIM_ONLY & endpoints(node)


def test_the_twin_gets_its_state_episode_and_reset(ros):
    node = ros.add(ArmNode(context=ros.context, start_loop=False, parameter_overrides=[
        Parameter("driver", value="mujoco"), Parameter("robot", value="ur5e"), Parameter("realtime", value=False)]))
    assert type(node.driver) is MujocoArmDriver and node.driver.spec.name == "ur5e"
    assert SIM_ONLY <= endpoints(node)
