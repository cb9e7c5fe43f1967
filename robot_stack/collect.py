"""`robot-stack collect`: record teleoperated (or scripted) episodes into a zarr store.

Brings up launch/collect.launch.yaml (the twin graph plus the recorder) with our launcher.
With `--teleop scripted` this process is the operator: it resets the twin, starts the
recorder, drives the scripted expert through the topics and marks success or failure.
With a human device the teleop node is started too and the operator's buttons start and
end episodes; this process shows progress until the requested number are recorded.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from robot_stack.child_graph import BackgroundSpin, call, stop
from robot_stack.supervision import start_graph


def run_collect(task: str, robot: str, teleop: str, episodes: int, out: str, seed: int = 0) -> int:
    import rclpy
    from std_srvs.srv import Trigger

    from robot_stack.nodes.expert_commander import ExpertCommander

    out = str(Path(out).resolve())
    operator = "scripted" if teleop == "scripted" else "human"
    cmd = [sys.executable, "-m", "robot_stack.cli", "launch", "collect.launch.yaml", f"store:={out}",
           f"robot:={robot}", f"task:={task}", f"seed:={seed}", f"operator:={operator}"]
    graph = start_graph(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)     # dies with us
    if teleop != "scripted":
        return _collect_human(graph, task, robot, teleop, episodes, out)
    rclpy.init()
    commander = ExpertCommander(robot, task)
    start = commander.create_client(Trigger, "recorder/start")
    success = commander.create_client(Trigger, "recorder/success")
    fail = commander.create_client(Trigger, "recorder/fail")
    spin = BackgroundSpin(commander, threads=2)
    done = ok = 0
    try:
        commander.wait_for_graph(timeout=60.0)
        bar = tqdm(range(episodes), desc=f"collect {task} {robot}", unit="ep")
        for _ in bar:
            report = commander.run_episode(on_start=lambda: call(start))
            result = call(success if report.success else fail)
            if not result.success:
                raise RuntimeError(f"recorder could not save the episode: {result.message}")
            done += 1
            ok += report.success
            bar.set_postfix(success=f"{ok}/{done}", steps=report.steps)
    finally:
        spin.close()
        stop(graph, timeout=20)
    from robot_stack.data import EpisodeStore
    with EpisodeStore.open(out) as store:
        total = store.num_episodes
    size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    print(f"recorded {done} episodes ({ok} successful) into {out}: {total} episodes in the store, "
          f"{size / 1e6:.1f} MB on disk")
    return 0 if done == episodes else 1


KEYS = ("keyboard: w/s a/d q/e move x/y/z, i/k j/l u/o rotate, space gripper, t take over (intervene), "
        "enter start/stop, y success, n fail")


def _collect_human(graph: subprocess.Popen, task: str, robot: str, device: str, episodes: int, out: str) -> int:
    """The operator drives: the teleop node runs here (the keyboard needs this terminal); after each
    saved episode the twin is reset for the next; progress comes from the recorder's status topic."""
    import json

    import rclpy
    from rclpy.parameter import Parameter
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from robot_stack.nodes.teleop_node import TeleopNode
    from robot_stack.ros import qos

    rclpy.init()
    teleop = TeleopNode(parameter_overrides=[Parameter("device", value=device), Parameter("robot", value=robot),
                                              Parameter("task", value=task)])
    status: dict = {}
    teleop.create_subscription(String, "recorder/status", lambda m: status.update(json.loads(m.data)), qos.LATCHED)
    reset = teleop.create_client(Trigger, "sim/reset")
    spin = BackgroundSpin(teleop, threads=2)
    print(KEYS if device == "keyboard" else f"{device}: hold the intervene button to drive; buttons start/stop "
          "and mark success or failure", flush=True)
    saved = 0
    try:
        deadline = time.monotonic() + 60.0
        while "episodes" not in status:
            if time.monotonic() > deadline or graph.poll() is not None:
                raise RuntimeError("the recorder did not come up")
            time.sleep(0.05)
        first = status["episodes"]
        bar = tqdm(total=episodes, desc=f"collect {task} {robot} ({device})", unit="ep")
        while saved < episodes:
            if graph.poll() is not None:
                raise RuntimeError(f"the graph exited with code {graph.returncode}")
            now = status["episodes"] - first
            if now > saved:
                bar.update(now - saved)
                saved = now
                if saved < episodes:
                    call(reset, idempotent=True)             # a fresh scene for the next episode
            time.sleep(0.05)
        bar.close()
    finally:
        spin.close()
        stop(graph, timeout=20)
    print(f"recorded {saved} episodes into {out}")
    return 0 if saved == episodes else 1
