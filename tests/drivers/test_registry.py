"""Arm drivers come from one registry by name, real arms load without the simulator, and only the twin is simulated."""
import subprocess
import sys
import textwrap

import pytest
from omegaconf import OmegaConf

from robot_stack.drivers import registry
from robot_stack.drivers.base import SimulatedArm
from robot_stack.drivers.franka import FrankaConfig, FrankaDriver
from robot_stack.drivers.registry import make_arm_driver, register_arm_driver
from robot_stack.drivers.ur import URDriver


def node_config(driver, robot, **extra):
    return OmegaConf.create({"driver": driver, "robot_ip": "10.0.0.9", "realtime": False, "task": "reach", "seed": 5,
                             "robot": {"name": robot, "safety": {"max_gripper_force": 25.0}}, **extra})


def test_real_arm_drivers_load_without_the_simulator():
    # A fresh interpreter: this test process has long since imported mujoco for other tests.
    script = textwrap.dedent("""
        import sys
        from omegaconf import OmegaConf
        import robot_stack.drivers.base, robot_stack.drivers.realsense
        from robot_stack.drivers.registry import make_arm_driver
        for name, robot in (("franka", "panda"), ("ur", "ur5e")):
            make_arm_driver(name, OmegaConf.create({"robot_ip": "10.0.0.9", "robot": {"name": robot}}))
        loaded = sorted(m for m in sys.modules
                        if m == "mujoco" or m.startswith("mujoco.") or m == "robot_stack.sim" or m.startswith("robot_stack.sim."))
        assert {"robot_stack.drivers.franka.driver", "robot_stack.drivers.ur.driver"} <= set(sys.modules)
        print("loaded:", loaded)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "loaded: []"


def test_the_twin_is_built_from_the_node_config_and_is_a_simulated_arm():
    driver = make_arm_driver("mujoco", node_config("mujoco", "ur5e"), clock=lambda: 42.0)
    assert isinstance(driver, SimulatedArm)
    c = driver.config
    assert (c.robot, c.realtime, c.task, c.seed, c.max_gripper_force) == ("ur5e", False, "reach", 5, 25.0)
    assert driver.spec.name == "ur5e" and driver.clock() == 42.0


@pytest.mark.parametrize("name, robot, cls", [("franka", "panda", FrankaDriver), ("ur", "ur5e", URDriver)])
def test_real_arms_are_not_simulated_arms(name, robot, cls):
    driver = make_arm_driver(name, node_config(name, robot))
    assert type(driver) is cls and not isinstance(driver, SimulatedArm)
    assert driver.config.ip == "10.0.0.9" and driver.spec.name == robot


@pytest.mark.parametrize("name", ["kuka", "realsense", "teleop", "base", "not a name"])
def test_an_unknown_name_lists_the_registered_drivers(name):
    # realsense and teleop are driver packages that register no arm; base is a module, not a package.
    with pytest.raises(ValueError, match=r"unknown arm driver .*; valid drivers: franka, mujoco, ros2_control, ur$"):
        make_arm_driver(name, node_config(name, "panda"))


def test_one_name_cannot_be_taken_by_a_second_driver():
    with pytest.raises(ValueError, match="already registered by robot_stack.drivers.franka.driver.FrankaDriver"):
        register_arm_driver("franka", FrankaConfig)(URDriver)
    assert registry.arm_driver("franka").driver_cls is FrankaDriver
    register_arm_driver("franka", FrankaConfig)(FrankaDriver)      # a module imported again registers itself again


def test_a_driver_needs_a_config_built_from_the_node_config_and_an_arm_driver_class():
    with pytest.raises(TypeError, match="from_node_config"):
        register_arm_driver("nothing", object)
    with pytest.raises(TypeError, match="is not an ArmDriver"):
        register_arm_driver("nothing", FrankaConfig)(FrankaConfig)
    assert "nothing" not in registry.arm_driver_names()
