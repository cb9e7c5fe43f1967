"""The twin graph from launch/sim.launch.yaml through our launcher, as a user starts it."""
import os
import re
import signal
import subprocess
import sys
import time

from sensor_msgs.msg import Image, JointState

from robot_stack.ros import qos
from tests.nodes.conftest import wait_for


def test_sim_launch_brings_up_the_graph_and_shuts_down_cleanly(ros):
    proc = subprocess.Popen(
        [sys.executable, "-m", "robot_stack.cli", "launch", "sim.launch.yaml", "robot:=ur5e", "image_width:=64",
         "image_height:=48", "fps:=15.0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, env=os.environ.copy())
    try:
        node = ros.node("observer")
        joints, images = [], []
        node.create_subscription(JointState, "joint_states", joints.append, qos.SENSOR)
        node.create_subscription(Image, "wrist/color/image_raw", images.append, qos.IMAGE)
        wait_for(lambda: len(joints) > 20 and len(images) > 3, timeout=60.0, what="joint states and images")
        assert joints[-1].name[0] == "ur5e_joint1"
        assert (images[-1].height, images[-1].width, images[-1].encoding) == (48, 64, "rgb8")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGINT, out
    pids = [int(p) for p in re.findall(r"started \w+ \(pid (\d+)\)", out)]
    assert len(pids) == 3, out
    time.sleep(0.2)
    for pid in pids:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as f:          # a zombie of this container's init is gone too
                assert f.read().split()[2] == "Z", f"node {pid} still running"
        except ProcessLookupError:
            pass
    assert "Traceback" not in out, out


def test_a_node_stops_on_sigterm(ros):
    proc = subprocess.Popen([sys.executable, "-m", "robot_stack.nodes.arm_node", "--ros-args", "-p", "task:=reach",
                             "-p", "realtime:=true"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = ros.node("watcher")
    joints = []
    node.create_subscription(JointState, "joint_states", joints.append, qos.SENSOR)
    wait_for(lambda: len(joints) > 5, timeout=30.0, what="the node up")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
