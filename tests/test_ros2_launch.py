"""The package's launch files under the real ROS 2 launch system (launch, launch_ros, launch_yaml: a sourced ROS 2's,
or the upstream wheels scripts/setup.sh installs from ../shared/wheels/ros2-launch), started as `ros2 launch` starts
them (robot_stack/ros2_launch.py: LaunchService + IncludeLaunchDescription(AnyLaunchDescriptionSource)) from a
colcon install space, with the package found through the ament index.

Each graph must come up without an ERROR line or a traceback, be seen whole by an outside plain rclpy process with
the middleware's default settings (tests/graph_observer.py: every node, once, and a message on every topic), and
stop on one Ctrl-C (SIGINT to the process group, as a terminal sends it) with every node gone within 5 s, which is
when launch would escalate to SIGTERM. Every file in launch/ runs: the twin ones as they are, the real-arm ones
(franka, ur) with the vendor libraries stood in by the project's fakes (tests/drivers/fakes)."""
from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_colcon import COLCON, REPO, colcon_env, start_build

# Looked up, not imported: without ROS's composition_interfaces, launch_ros imports only behind ros2_launch's stand-in.
pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None or importlib.util.find_spec("launch_yaml") is None,
                       reason="needs the real launch_ros and launch_yaml: a sourced ROS 2, or scripts/setup.sh with "
                              "../shared/wheels/ros2-launch"),
    pytest.mark.skipif(COLCON is None, reason="colcon is not installed (pip install colcon-common-extensions)"),
]

OBSERVER = Path(__file__).parent / "graph_observer.py"
SHUTDOWN_LIMIT = 5.0            # s from SIGINT to every node gone: launch's SIGTERM escalation
# Settings of ours a user's shell does not have: the launch gets them from the nodes themselves (dds.py), and the
# observer must not have them at all, to be an outside tool with the defaults.
OUR_SETTINGS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE", "ROS_AUTOMATIC_DISCOVERY_RANGE",
                "ROS_STATIC_PEERS", "ROS_LOCALHOST_ONLY", "RMW_IMPLEMENTATION", "ROS_DOMAIN_ID", "AMENT_PREFIX_PATH",
                "COLCON_PREFIX_PATH", "PYTHONPATH")
TWIN = ["/arm_node", "/arm_node_commands", "/arm_node_chunks", "/front_camera", "/wrist_camera"]
TWIN_TOPICS = ["/joint_states", "/arm/ee_pose", "/arm/wrench", "/arm/gripper", "/sim/state", "/sim/episode",
               "/front/color/image_raw", "/front/color/camera_info", "/wrist/color/image_raw",
               "/wrist/color/camera_info", "/diagnostics"]


@pytest.fixture(scope="module")
def install_env(tmp_path_factory):
    """The environment of a shell that sourced a fresh `colcon build --symlink-install` of the package."""
    ws = tmp_path_factory.mktemp("ros2_launch_ws")
    proc = start_build(ws, symlink=True)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    base = {k: v for k, v in colcon_env(ws).items() if k not in OUR_SETTINGS}
    dump = subprocess.run(["bash", "-c", ". install/local_setup.bash && env -0"], cwd=ws, env=base,
                          capture_output=True, timeout=120, check=True).stdout
    env = dict(item.split("=", 1) for item in dump.decode().split("\0") if "=" in item)
    env["MUJOCO_GL"] = "egl"
    return env


def child_pids(pid: int) -> set[int]:
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.add(int(stat.parent.name))
    return children


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# What the arm node publishes only when something happens: a tick that took a command (none in a graph nobody drives)
ARM_EVENT_TOPICS = ("/arm/commands_taken",)


def run_graph(install_env, tmp_path, launch_file: str, args: list[str], nodes: list[str], topics: list[str],
              event_topics: tuple[str, ...] = (), set_true: str = "", timeout: float = 150.0) -> dict:
    """Start `launch_file` under the real launch, observe it from outside, Ctrl-C it; returns what was seen."""
    domain = str(random.randint(110, 200))
    log_path = tmp_path / f"{launch_file}.log"
    with open(log_path, "w") as log:
        launch = subprocess.Popen([sys.executable, "-m", "robot_stack.ros2_launch", "robot_stack", launch_file, *args],
                                  env=dict(install_env, ROS_DOMAIN_ID=domain, ROS_LOG_DIR=str(tmp_path / "ros_log")),
                                  stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True, cwd=tmp_path)
    try:
        observer_env = {k: v for k, v in os.environ.items() if k not in OUR_SETTINGS}
        observed = subprocess.run(
            [sys.executable, str(OBSERVER), "--nodes", ",".join(nodes), "--topics", ",".join(topics),
             "--event-topics", ",".join(ARM_EVENT_TOPICS + tuple(event_topics)),
             "--set-true", set_true, "--timeout", str(timeout)], env=dict(observer_env, ROS_DOMAIN_ID=domain), capture_output=True, text=True,
            timeout=timeout + 60)
        assert observed.returncode == 0, observed.stderr
        seen = json.loads(observed.stdout.strip().splitlines()[-1])
        assert launch.poll() is None, f"the launch ended by itself:\n{log_path.read_text()}"
        processes = child_pids(launch.pid)
        os.killpg(launch.pid, signal.SIGINT)          # one Ctrl-C in the launching terminal
        interrupted = time.monotonic()
        while any(alive(p) for p in processes) and time.monotonic() - interrupted < 30:
            time.sleep(0.05)
        stopped_after = time.monotonic() - interrupted
        launch.wait(timeout=30)
    finally:
        if launch.poll() is None:
            os.killpg(launch.pid, signal.SIGKILL)
            launch.wait()
    log = log_path.read_text()
    return {"seen": seen, "log": log, "stopped_after": stopped_after, "processes": processes,
            "returncode": launch.returncode}


def check_clean(result: dict, nodes: list[str], topics: list[str], processes: int) -> None:
    seen, log = result["seen"], result["log"]
    assert seen["complete"], f"the outside observer did not get everything: {json.dumps(seen, indent=1)}\n{log}"
    for node in nodes:
        assert seen["nodes"].count(node) == 1, f"{node} seen {seen['nodes'].count(node)} times: {seen['nodes']}"
    for topic in topics:
        assert seen["topics"][topic]["received"] > 0, topic
    assert len(result["processes"]) == processes, log
    assert result["stopped_after"] < SHUTDOWN_LIMIT, f"nodes still up {result['stopped_after']:.1f} s after SIGINT\n{log}"
    assert result["returncode"] == 0, log
    assert "Traceback" not in log, log
    errors = [line for line in log.splitlines() if re.search(r"\[ERROR\]|\[FATAL\]", line)]
    assert not errors, "\n".join(errors)
    assert len(re.findall(r"process has finished cleanly", log)) == processes, log
    assert "escalating to SIGTERM" not in log and "process has died" not in log, log


def test_sim_launch_under_real_launch_ros(install_env, tmp_path):
    result = run_graph(install_env, tmp_path, "sim.launch.yaml", ["image_width:=64", "image_height:=64"], TWIN,
                       TWIN_TOPICS)
    check_clean(result, TWIN, TWIN_TOPICS, processes=3)


def test_policy_launch_under_real_launch_ros(install_env, tmp_path):
    nodes = TWIN + ["/policy_server", "/policy_server_arm_state"]
    # enabled from outside, the policy decides and sends the arm node its chunks
    topics = TWIN_TOPICS + ["/arm/action_chunk"]
    result = run_graph(install_env, tmp_path, "policy.launch.yaml",
                       [f"checkpoints:={REPO / 'checkpoints' / 'beso_pick_place'}"], nodes, topics,
                       set_true="/policy_server/enable")
    check_clean(result, nodes, topics, processes=4)
    assert result["seen"]["switched"]


def test_collect_launch_under_real_launch_ros(install_env, tmp_path):
    nodes = TWIN + ["/recorder_node"]
    topics = TWIN_TOPICS + ["/recorder/status"]
    result = run_graph(install_env, tmp_path, "collect.launch.yaml",
                       [f"store:={tmp_path / 'demos.zarr'}", "image_width:=64", "image_height:=64"], nodes, topics)
    check_clean(result, nodes, topics, processes=4)


def test_learn_launch_under_real_launch_ros(install_env, tmp_path):
    nodes = ["/arm_node", "/arm_node_commands", "/arm_node_chunks", "/actor0", "/learner_node"]
    topics = ["/joint_states", "/arm/ee_pose", "/sim/state", "/learner/transitions", "/learner/status",
              "/learner/weights", "/diagnostics"]
    # /actor/episodes comes at the end of an episode, which a short run need not reach
    result = run_graph(install_env, tmp_path, "learn.launch.yaml", [f"out:={tmp_path / 'learn'}"], nodes, topics,
                       event_topics=("/actor/episodes",))
    check_clean(result, nodes, topics, processes=3)


VENDOR_SHIM = """import sys
sys.path.insert(0, {repo!r})
from tests.drivers.fakes import {fake} as _fake
sys.modules[__name__] = {module}
"""


def vendor_fakes(root: Path) -> Path:
    """Importable pylibfranka, ur_rtde's modules and pyrealsense2 that are the project's fakes (tests/drivers/fakes:
    the bindings' names and signatures, a simulated arm and camera): the real-arm bring-ups run without hardware."""
    root.mkdir()
    shims = {"pylibfranka": ("fake_pylibfranka", "_fake"), "pyrealsense2": ("fake_pyrealsense2", "_fake")}
    for name in ("rtde_control", "rtde_receive", "rtde_io", "dashboard_client"):
        shims[name] = ("fake_ur_rtde", f"_fake.modules()[{name!r}]")
    for name, (fake, module) in shims.items():
        (root / f"{name}.py").write_text(VENDOR_SHIM.format(repo=str(REPO), fake=fake, module=module))
    return root


@pytest.mark.parametrize("launch_file, robot_ip", [("franka.launch.yaml", "172.16.0.2"), ("ur.launch.yaml", "10.0.0.8")])
def test_real_arm_launch_under_real_launch_ros_with_vendor_fakes(install_env, tmp_path, launch_file, robot_ip):
    nodes = ["/arm_node", "/arm_node_commands", "/arm_node_chunks", "/front_camera", "/wrist_camera"]
    topics = ["/joint_states", "/arm/ee_pose", "/arm/wrench", "/arm/gripper", "/front/color/image_raw",
              "/front/color/camera_info", "/wrist/color/image_raw", "/wrist/color/camera_info", "/diagnostics"]
    env = dict(install_env, PYTHONPATH=os.pathsep.join([str(vendor_fakes(tmp_path / "vendor")),
                                                        install_env.get("PYTHONPATH", "")]))
    result = run_graph(env, tmp_path, launch_file, [f"robot_ip:={robot_ip}"], nodes, topics)
    check_clean(result, nodes, topics, processes=3)


PARSE = """
import json, sys
from robot_stack.ros2_launch import add_interpreter_prefix, stub_composition_interfaces
add_interpreter_prefix()
stub_composition_interfaces()
from launch.frontend import Parser
import launch_ros.actions
parsed = {}
for path in sys.argv[1:]:
    entity, parser = Parser.load(path)
    description = parser.parse_description(entity)
    parsed[path] = sorted({type(a).__name__ for a in description.entities})
print(json.dumps(parsed))
"""


def test_every_launch_file_parses_under_the_real_launch_yaml(install_env):
    """All of launch/ with their real-arm arguments left unset: launch_yaml rejects an unknown key or a malformed
    action (`assert_entity_completely_parsed`), so every file is valid `ros2 launch`."""
    share = Path(install_env["AMENT_PREFIX_PATH"].split(os.pathsep)[0]) / "share" / "robot_stack" / "launch"
    files = sorted(share.glob("*.launch.yaml"))
    assert {f.name for f in files} == {f.name for f in (REPO / "launch").glob("*.launch.yaml")}
    out = subprocess.run([sys.executable, "-c", PARSE, *map(str, files)], env=install_env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    parsed = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(parsed) == len(files)
    for path, kinds in parsed.items():
        assert "DeclareLaunchArgument" in kinds, (path, kinds)
        assert {"Node", "IncludeLaunchDescription", "GroupAction"} & set(kinds), (path, kinds)
