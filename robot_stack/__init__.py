"""robot_stack: a ROS 2 control stack for learned manipulation, with a MuJoCo twin."""
import os

# Off-screen rendering by default. MuJoCo picks its GL backend when first imported, which
# can be through any of our modules, so the default is set here, before all of them.
os.environ.setdefault("MUJOCO_GL", "egl")
