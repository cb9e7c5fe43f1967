"""`robot-stack collect`: record teleoperated (or scripted) episodes into a zarr store.

Brings up launch/collect.launch.yaml (the twin graph plus the recorder) with our launcher.
With `--teleop scripted` this process is the operator: it resets the twin, starts the
recorder, drives the scripted expert through the topics and marks success or failure.
With a human device the teleop node is started too and the operator's buttons start and
end episodes; this process shows progress until the requested number are recorded.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tqdm import tqdm


def _call(node, client, timeout: float = 30.0):
    from std_srvs.srv import Trigger
    if not client.wait_for_service(timeout_sec=timeout):
        raise RuntimeError(f"service {client.srv_name} is not available")
    future = client.call_async(Trigger.Request())
    deadline = time.monotonic() + timeout
    while not future.done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{client.srv_name} did not answer")
        time.sleep(0.005)
    return future.result()


def run_collect(task: str, robot: str, teleop: str, episodes: int, out: str, seed: int = 0) -> int:
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from std_srvs.srv import Trigger

    from robot_stack.nodes.expert_commander import ExpertCommander

    out = str(Path(out).resolve())
    operator = "scripted" if teleop == "scripted" else "human"
    cmd = [sys.executable, "-m", "robot_stack.cli", "launch", "collect.launch.yaml", f"store:={out}",
           f"robot:={robot}", f"task:={task}", f"seed:={seed}", f"operator:={operator}"]
    if teleop != "scripted":
        raise ValueError("only --teleop scripted is wired into `collect` so far; for a human device run "
                         "`robot-stack launch collect.launch.yaml` with teleop_node")
    graph = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rclpy.init()
    commander = ExpertCommander(robot, task)
    start = commander.create_client(Trigger, "recorder/start")
    success = commander.create_client(Trigger, "recorder/success")
    fail = commander.create_client(Trigger, "recorder/fail")
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(commander)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    done = ok = 0
    try:
        commander.wait_for_graph(timeout=60.0)
        bar = tqdm(range(episodes), desc=f"collect {task} {robot}", unit="ep")
        for _ in bar:
            report = commander.run_episode(on_start=lambda: _call(commander, start))
            result = _call(commander, success if report.success else fail)
            if not result.success:
                raise RuntimeError(f"recorder could not save the episode: {result.message}")
            done += 1
            ok += report.success
            bar.set_postfix(success=f"{ok}/{done}", steps=report.steps)
    finally:
        executor.shutdown(timeout_sec=2.0)
        spinner.join(timeout=2.0)
        commander.destroy_node()
        rclpy.try_shutdown()
        if graph.poll() is None:
            os.killpg(graph.pid, signal.SIGINT)
            try:
                graph.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(graph.pid, signal.SIGKILL)
                graph.wait()
    from robot_stack.data import EpisodeStore
    with EpisodeStore.open(out) as store:
        total = store.num_episodes
    size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    print(f"recorded {done} episodes ({ok} successful) into {out}: {total} episodes in the store, "
          f"{size / 1e6:.1f} MB on disk")
    return 0 if done == episodes else 1
