"""`robot-stack demo`: bring up the twin's ROS 2 graph and run scripted episodes through it.

The graph is started by our launcher from launch/sim.launch.yaml in a child process
(arm_node with the twin driver, front and wrist camera nodes); this process joins the
graph with the expert commander and a viewer, runs the episodes, prints what happened
(success, steps, contact phases, image rates and latencies, control-loop figures from
/diagnostics), writes MP4s from the image topics, and stops the graph.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

from robot_stack.child_graph import BackgroundSpin, call, stop
from robot_stack.supervision import start_graph
from robot_stack.video import write_mp4


class Viewer:
    """Collects images and diagnostics from the graph."""

    def __init__(self, node, cameras=("front", "wrist")):
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image

        from robot_stack.ros import convert, qos
        self.convert = convert
        self.latest: dict[str, np.ndarray] = {}
        self.latency: dict[str, list[float]] = {c: [] for c in cameras}
        self.counts = {c: 0 for c in cameras}
        self.diagnostics: dict[str, str] = {}          # the arm node's
        self.server: dict[str, str] = {}               # the policy server's (a policy's status, e.g. its mode)
        self.node = node
        for cam in cameras:
            node.create_subscription(Image, f"{cam}/color/image_raw", lambda m, c=cam: self._on_image(c, m), qos.IMAGE)
        node.create_subscription(DiagnosticArray, "diagnostics", self._on_diag, 10)

    def _on_image(self, cam, msg) -> None:
        now = self.node.get_clock().now().nanoseconds * 1e-9
        self.latency[cam].append(now - self.convert.from_time(msg.header.stamp))
        self.latest[cam] = self.convert.parse_image(msg)
        self.counts[cam] += 1

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            if status.name.endswith(": arm"):
                self.diagnostics = {kv.key: kv.value for kv in status.values}
            elif status.name == "policy_server":
                self.server = {kv.key: kv.value for kv in status.values}

    def frame(self) -> np.ndarray | None:
        if len(self.latest) < len(self.counts):
            return None
        return np.concatenate([self.latest[c] for c in self.counts], axis=1)


def _show_recording(store: str, video: str | None) -> None:
    """What was recorded, and the first episode replayed in the twin from its recorded actions."""
    from robot_stack.data import tools
    from robot_stack.sim.replay import replay_episode

    info = tools.info(store)
    size = sum(f.stat().st_size for f in Path(store).rglob("*") if f.is_file())
    print(f"store {store}: {info['num_episodes']} episodes, streams {', '.join(sorted(info['streams']))}; "
          f"{size / 1e6:.1f} MB")
    out = str(Path(video) / "replay_episode0.mp4") if video else None
    r = replay_episode(store, 0, "actions", video=out)
    print(f"replayed episode 0 in the twin from its recorded actions: recorded success {r['recorded_success']}, "
          f"replayed success {r['replayed_success']}; TCP tracking error max {1000 * r['tcp_error_max_m']:.1f} mm; "
          f"final objects within {1000 * r.get('final_object_error_m', float('nan')):.1f} mm"
          + (f"; video {r['video']}" if "video" in r else ""))


def run_bringup_demo(robot: str, task: str, episodes: int, seed: int, video: str | None, json_path: str | None,
                     image_size: int = 128, store: str | None = None) -> int:
    import rclpy
    from std_srvs.srv import Trigger

    from robot_stack.nodes.expert_commander import ExpertCommander

    if store:       # the twin graph plus the recorder (collect.launch.yaml includes sim.launch.yaml)
        store = str(Path(store).resolve())
        launch_cmd = [sys.executable, "-m", "robot_stack.cli", "launch", "collect.launch.yaml", f"store:={store}",
                      f"robot:={robot}", f"task:={task}", f"seed:={seed}", "operator:=scripted"]
    else:
        launch_cmd = [sys.executable, "-m", "robot_stack.cli", "launch", "sim.launch.yaml", f"robot:={robot}",
                      f"task:={task}", f"seed:={seed}", f"image_width:={image_size}", f"image_height:={image_size}"]
    print(f"starting the graph: robot-stack launch {' '.join(launch_cmd[4:])}", flush=True)
    graph = start_graph(launch_cmd)     # its own session, and taken down if this process dies
    rclpy.init()
    commander = ExpertCommander(robot, task)
    viewer = Viewer(rclpy.create_node("demo_viewer"))
    rec_start = commander.create_client(Trigger, "recorder/start")
    rec_success = commander.create_client(Trigger, "recorder/success")
    rec_fail = commander.create_client(Trigger, "recorder/fail")
    spin = BackgroundSpin(commander, viewer.node)
    reports = []
    try:
        commander.wait_for_graph(timeout=60.0)
        deadline = time.monotonic() + 30.0
        while viewer.frame() is None and time.monotonic() < deadline:
            if graph.poll() is not None:
                raise RuntimeError(f"the graph exited with code {graph.returncode} before the first images")
            time.sleep(0.05)
        print(f"graph up: arm_node ({robot}, twin) and front + wrist cameras at {image_size}x{image_size}", flush=True)
        for _ in range(episodes):
            frames: list[np.ndarray] = []
            grabbing = threading.Event()
            grabbing.set()

            def grab():
                while grabbing.is_set():
                    f = viewer.frame()
                    if f is not None:
                        frames.append(f)
                    time.sleep(0.1)

            counts0 = dict(viewer.counts)
            for c in viewer.latency:
                viewer.latency[c].clear()
            grabber = threading.Thread(target=grab, daemon=True)
            grabber.start()
            report = commander.run_episode(on_start=(lambda: call(rec_start)) if store else None)
            if store:
                saved = call(rec_success if report.success else rec_fail)
                print(f"  recorder: {saved.message}", flush=True)
            grabbing.clear()
            grabber.join()
            images = {c: viewer.counts[c] - counts0[c] for c in viewer.counts}
            lat = {c: 1000 * float(np.median(v)) if v else float("nan") for c, v in viewer.latency.items()}
            phases = {p: report.phases.count(p) for p in ("pre_contact", "in_contact", "post_contact")}
            diag = viewer.diagnostics
            print(f"episode seed {report.seed}: \"{report.instruction}\" -> {'SUCCESS' if report.success else 'FAILED'} "
                  f"in {report.steps} steps ({report.seconds:.1f} s)")
            print(f"  contact phases (steps): {phases}")
            print("  images: " + ", ".join(f"{c} {images[c]} ({images[c] / report.seconds:.1f}/s, median latency "
                                           f"{lat[c]:.1f} ms)" for c in images))
            print(f"  arm loop: {float(diag.get('rate_hz', 'nan')):.1f} Hz, period error "
                  f"{float(diag.get('period_error_pct', 'nan')):.2f}%, p99 jitter "
                  f"{float(diag.get('jitter_p99_ms', 'nan')):.2f} ms; safety events: "
                  f"{ {k[7:]: v for k, v in diag.items() if k.startswith('safety.')} }", flush=True)
            if video and frames:
                path = write_mp4(Path(video) / f"{task}_{robot}_seed{report.seed}.mp4", frames, fps=10)
                print(f"  video: {path}")
            reports.append({"seed": report.seed, "instruction": report.instruction, "success": report.success,
                            "steps": report.steps, "seconds": round(report.seconds, 2), "phases": phases,
                            "images": images, "median_image_latency_ms": lat, "arm_diagnostics": diag})
    finally:
        spin.close()
        stop(graph, timeout=15)
        print(f"graph stopped (launcher exit code {graph.returncode})", flush=True)
    successes = sum(r["success"] for r in reports)
    print(f"{successes}/{len(reports)} episodes succeeded through the ROS 2 graph")
    if store and reports:
        _show_recording(store, video)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps({"robot": robot, "task": task, "episodes": reports}, indent=2))
    return 0 if reports and successes == len(reports) else 1
