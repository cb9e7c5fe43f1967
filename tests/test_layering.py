"""The layering a real arm relies on: its node and controller run without the simulator installed or loaded."""
import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["robot_stack.nodes.arm_node", "robot_stack.control.controller",
                                    "robot_stack.drivers.franka.driver", "robot_stack.drivers.ur.driver"])
def test_a_real_arm_path_does_not_load_the_simulator(module):
    code = (f"import sys, {module}; "
            "print(sorted(m for m in sys.modules if m == 'mujoco' or m.startswith('robot_stack.sim')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"{module} loads {out.stdout.strip()}"
