"""`robot-stack bench recording`: the recorder node on the live graph.

Brings up the twin graph with two 640x480 cameras at 30 Hz (arm state at 100 Hz) and the
recorder (collect.launch.yaml), records one episode of `seconds`, and accounts for every frame
between the camera and the store, per camera:

- published: frames the camera published during the episode (the span of the publisher's
  sequence numbers over the frames the recorder received, from the middleware's message info),
  and the rate that is against the configured one (a renderer that cannot keep 30 Hz on this
  machine publishes fewer frames: a shortfall of the publisher, not a loss);
- lost in transport: published but never handed to the recorder (sequence gaps);
- received, dropped at the recorder (its write queue full), written (appended to the store);
- in the store: frames read back, the largest gap between consecutive capture stamps.

The goal is the recorder's: 0 frames lost between publisher and store (published == written ==
frames in the store). Also reported: the state rate, the recorder process's CPU use (cores,
from /proc), its resident memory at the start and end of the episode and its write queue's
high-water mark, and the store size per minute against raw size.

`--source replay` (robot-stack bench recording --source replay) replaces the twin
cameras with two publishers that replay frames pre-rendered from the twin cameras at the same
size and rate, so the recorder's figure does not depend on the renderer keeping up; the arm
node still runs the twin and publishes the state.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from robot_stack.child_graph import call, isolated_domain, start, stop
from robot_stack.supervision import die_with_parent

CAMERAS = ("front", "wrist")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _node_pids(launcher_stderr: list[str]) -> dict[str, int]:
    """Node name -> pid, from our launcher's "started NAME (pid N)" lines."""
    pids = {}
    for line in list(launcher_stderr):
        m = re.search(r"started (\w+) \(pid (\d+)\)", line)
        if m:
            pids[m.group(1)] = int(m.group(2))
    return pids


def _drain(proc: subprocess.Popen, into: list[str]) -> None:
    threading.Thread(target=lambda: into.extend(iter(proc.stderr.readline, "")), daemon=True).start()


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench recording: timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


class _Monitor:
    """recorder/status and the cameras' /diagnostics, as they arrive."""

    def __init__(self, node):
        from diagnostic_msgs.msg import DiagnosticArray
        from std_msgs.msg import String

        from robot_stack.ros import qos

        self.status: dict | None = None
        self.cameras: dict[str, dict[str, str]] = {}      # camera name -> latest diagnostic values
        self.max_interval_ms: dict[str, float] = {}       # camera name -> longest publish interval while watched
        self.watch = False
        node.create_subscription(String, "recorder/status", self._on_status, qos.LATCHED)
        node.create_subscription(DiagnosticArray, "diagnostics", self._on_diag, 10)

    def _on_status(self, msg) -> None:
        self.status = json.loads(msg.data)

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            m = re.search(r"camera (\w+)$", status.name)
            if m:
                values = {kv.key: kv.value for kv in status.values}
                self.cameras[m.group(1)] = values
                if self.watch:
                    self.max_interval_ms[m.group(1)] = max(self.max_interval_ms.get(m.group(1), 0.0),
                                                           float(values.get("max_interval_ms", 0.0)))


def main(seconds: float = 60.0, json_path: str | None = None, width: int = 640, height: int = 480,
         fps: float = 30.0, source: str = "twin") -> dict:
    import rclpy
    from std_srvs.srv import Trigger

    from robot_stack.data import EpisodeStore

    if source not in ("twin", "replay"):
        raise ValueError(f"source {source!r}: twin or replay")
    isolated_domain()
    path = Path(tempfile.mkdtemp(prefix="bench_recording_")) / "store"
    procs: list[subprocess.Popen] = []
    logs: dict[str, list[str]] = {}
    publishers: list[subprocess.Popen] = []
    if source == "twin":
        procs.append(start(["-m", "robot_stack.cli", "launch", "collect.launch.yaml", f"store:={path}", "task:=reach",
                            f"image_width:={width}", f"image_height:={height}", f"fps:={fps}", "rate:=10.0"]))
        _drain(procs[-1], logs.setdefault("graph", []))
    else:
        procs.append(start(["-m", "robot_stack.cli", "launch", "sim.launch.yaml", "cameras:=false", "task:=reach"]))
        _drain(procs[-1], logs.setdefault("graph", []))
        procs.append(start(["-m", "robot_stack.nodes.recorder_node", "--ros-args", "-r", "__node:=recorder_node",
                            "-p", f"store:={path}", "-p", "task:=reach", "-p", "cameras:=front,wrist",
                            "-p", "rate:=10.0"]))
        _drain(procs[-1], logs.setdefault("recorder", []))
        for cam in CAMERAS:
            publishers.append(subprocess.Popen(
                [sys.executable, "-m", "robot_stack.bench.image_publisher", "--twin-camera", cam,
                 "--topic", f"{cam}/color/image_raw", "--width", str(width), "--height", str(height),
                 "--rate", str(fps), "--count", "0", "--camera-qos"],
                start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                preexec_fn=die_with_parent()))      # SIGKILL when this bench dies, however it dies
            _drain(publishers[-1], logs.setdefault(f"publisher_{cam}", []))
    rclpy.init()
    node = rclpy.create_node("bench_recording")
    monitor = _Monitor(node)
    threading.Thread(target=lambda: rclpy.spin(node), daemon=True).start()
    publisher_summaries = []
    try:
        _wait(lambda: "arm_node" in _node_pids(logs["graph"]), 60.0, "the arm node to start")
        if source == "twin":
            _wait(lambda: "recorder_node" in _node_pids(logs["graph"]), 60.0, "the recorder to start")
            pids = _node_pids(logs["graph"])
        else:
            pids = {**_node_pids(logs["graph"]), "recorder_node": procs[-1].pid,
                    **{f"replay_{c}": p.pid for c, p in zip(CAMERAS, publishers)}}
        pid = pids["recorder_node"]
        _wait(lambda: monitor.status is not None, 60.0, "recorder/status")
        if source == "twin":
            _wait(lambda: all(int(monitor.cameras.get(c, {}).get("frames_published", 0)) > 30 for c in CAMERAS),
                  60.0, "both twin cameras to publish")
        start_cli = node.create_client(Trigger, "recorder/start")
        stop_cli = node.create_client(Trigger, "recorder/stop")
        time.sleep(2.0)                                    # past the first frames: settled rates
        rss0 = _rss_mb(pid)
        result = call(start_cli, timeout=60.0)
        if not result.success:
            raise RuntimeError(f"recorder could not start: {result.message}")
        monitor.watch = True
        cpu0, t0 = {n: _cpu_seconds(p) for n, p in pids.items()}, time.monotonic()
        rss_max, rss_series, next_sample = rss0, [], 0.0
        while time.monotonic() - t0 < seconds:
            time.sleep(min(1.0, max(0.0, seconds - (time.monotonic() - t0))))
            rss = _rss_mb(pid)
            rss_max = max(rss_max, rss)
            if time.monotonic() - t0 >= next_sample:
                rss_series.append([round(time.monotonic() - t0), round(rss)])
                next_sample += max(1.0, seconds / 20)
        cpu1, t1 = {n: _cpu_seconds(p) for n, p in pids.items()}, time.monotonic()
        rss1 = _rss_mb(pid)
        monitor.watch = False
        result = call(stop_cli, timeout=120.0)
        if not result.success:
            raise RuntimeError(f"recorder could not commit: {result.message}")
        _wait(lambda: monitor.status is not None and not monitor.status["recording"]
              and monitor.status["episodes"] >= 1, 30.0, "the recorder's final status")
        status = monitor.status
        cameras = dict(monitor.cameras)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        for pub in publishers:
            stop(pub)
            out = pub.stdout.read() if pub.stdout else ""
            publisher_summaries += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        for proc in reversed(procs):
            stop(proc)
    elapsed = t1 - t0
    cores = {n: round((cpu1[n] - cpu0[n]) / elapsed, 3) for n in pids}
    row: dict = {"source": source, "seconds": round(elapsed, 1), "fps": fps, "size": [width, height],
                 "recorder_cpu_cores": cores["recorder_node"], "cpu_cores": cores,
                 "machine_load_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
                 "recorder_rss_mb": {"start": round(rss0), "end": round(rss1), "max": round(rss_max),
                                     "series_s_mb": rss_series},
                 "recorder_queue_max_mb": status.get("queue", {}).get("max_mb"),
                 "recorder_errors": status.get("errors")}
    counts = status["streams"]
    with EpisodeStore.open(path) as store:
        # Stamps only: ten minutes of 640x480 frames would not fit in memory decoded.
        ep = {f"{c}_rgb": store.read_stream(0, f"{c}_rgb", parts=("capture_stamp",)) for c in CAMERAS}
        ep["joint_pos"] = store.read_stream(0, "joint_pos", parts=("capture_stamp",))
    for cam in CAMERAS:
        stream = f"{cam}_rgb"
        c = counts.get(stream, {})
        stamps = ep[stream]["capture_stamp"]
        gaps = np.diff(stamps) if len(stamps) > 1 else np.zeros(1)
        published = c.get("published")
        entry = {"published": published,
                 "publisher_hz": round(published / elapsed, 2) if published else None,
                 "lost_in_transport": c.get("lost_in_transport"), "received": c.get("received", 0),
                 "dropped_at_recorder": c.get("dropped", 0), "written": c.get("written", 0),
                 "in_store": int(len(stamps)),
                 "lost_publisher_to_store": (published - int(len(stamps))) if published is not None else None,
                 "expected_from_capture_stamps": int(round((stamps[-1] - stamps[0]) * fps)) + 1 if len(stamps) else 0,
                 "max_gap_ms": round(1000 * float(gaps.max()), 1),
                 "gaps_over_1.5_periods": int(np.sum(gaps > 1.5 / fps))}
        if source == "twin" and cam in cameras:
            entry["camera_diagnostics"] = {"frames_published_total": int(cameras[cam].get("frames_published", 0)),
                                           "fps_achieved_since_start": float(cameras[cam].get("fps_achieved", 0)),
                                           "max_publish_interval_ms": monitor.max_interval_ms.get(cam)}
        row[stream] = entry
    if publisher_summaries:
        row["replay_publishers"] = publisher_summaries
    q = ep["joint_pos"]["capture_stamp"]
    row["state_hz"] = round((len(q) - 1) / (q[-1] - q[0]), 1)
    row["state_counts"] = counts.get("joint_pos", {})
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    raw = sum(row[f"{c}_rgb"]["in_store"] for c in CAMERAS) * width * height * 3
    row["store_mb_per_minute"] = round(size / 1e6 * 60 / elapsed, 1)
    row["raw_mb_per_minute"] = round(raw / 1e6 * 60 / elapsed, 1)
    lost = [row[f"{c}_rgb"]["lost_publisher_to_store"] for c in CAMERAS]
    row["frames_lost_publisher_to_store"] = None if None in lost else int(sum(lost))
    row["goal_met"] = row["frames_lost_publisher_to_store"] == 0 and row["recorder_cpu_cores"] <= 1.0

    print(f"recorder on the live graph ({source} cameras), 2 x {width}x{height} @ {fps:g} Hz + state, "
          f"{row['seconds']} s:")
    for cam in CAMERAS:
        c = row[f"{cam}_rgb"]
        print(f"  {cam}_rgb: published {c['published']} ({c['publisher_hz']} Hz of {fps:g}), lost in transport "
              f"{c['lost_in_transport']}, received {c['received']}, dropped at recorder {c['dropped_at_recorder']}, "
              f"written {c['written']}, in store {c['in_store']}; lost publisher->store {c['lost_publisher_to_store']}")
        print(f"      capture stamps: {c['expected_from_capture_stamps']} frames at {fps:g} Hz over their span, "
              f"max gap {c['max_gap_ms']} ms, gaps over 1.5 periods: {c['gaps_over_1.5_periods']}"
              + (f"; camera max publish interval {c['camera_diagnostics']['max_publish_interval_ms']} ms"
                 if "camera_diagnostics" in c else ""))
    for p in publisher_summaries:
        print(f"  replay publisher {p['topic']}: {p['published']} frames at {p['rate_hz']} Hz, "
              f"{p['periods_late']} periods late")
    print(f"  state {row['state_hz']} Hz; recorder CPU {row['recorder_cpu_cores']} cores, RSS "
          f"{row['recorder_rss_mb']['start']} -> {row['recorder_rss_mb']['end']} MB (max "
          f"{row['recorder_rss_mb']['max']}), write queue max {row['recorder_queue_max_mb']} MB; store "
          f"{row['store_mb_per_minute']} MB/min vs raw {row['raw_mb_per_minute']} MB/min")
    print(f"  CPU cores per process: {', '.join(f'{n} {v}' for n, v in cores.items())} "
          f"(machine: {row['cpus']} CPUs, load {row['machine_load_1min']})")
    print(f"  frames lost between publisher and store: {row['frames_lost_publisher_to_store']} "
          f"(goal 0, recorder <= 1 core): {'met' if row['goal_met'] else 'NOT met'}")
    subprocess.run(["rm", "-rf", str(path.parent)], check=False)
    if json_path:
        Path(json_path).write_text(json.dumps(row, indent=2))
    return row

