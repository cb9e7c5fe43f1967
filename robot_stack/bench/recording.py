"""`robot-stack bench recording`: the recorder node on the live graph.

Brings up the twin graph with two 640x480 cameras at 30 Hz (arm state at 100 Hz) and the
recorder (collect.launch.yaml), records one episode of `seconds`, and reports from the
store: frames per camera against the camera rate, the largest gap between consecutive
capture stamps (a dropped frame shows as a gap of two periods), the state rate, the
recorder process's CPU use (from /proc), and the store size per minute against raw size.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from robot_stack.child_graph import call, isolated_domain, start, stop


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _recorder_pid(launcher_stderr: list[str]) -> int:
    for line in launcher_stderr:
        m = re.search(r"started recorder_node \(pid (\d+)\)", line)
        if m:
            return int(m.group(1))
    raise RuntimeError("recorder_node did not start")


def main(seconds: float = 60.0, json_path: str | None = None, width: int = 640, height: int = 480,
         fps: float = 30.0) -> dict:
    import threading

    import rclpy
    from std_srvs.srv import Trigger

    from robot_stack.data import EpisodeStore

    isolated_domain()
    path = Path(tempfile.mkdtemp(prefix="bench_recording_")) / "store"
    graph = start(["-m", "robot_stack.cli", "launch", "collect.launch.yaml", f"store:={path}", "task:=reach",
                   f"image_width:={width}", f"image_height:={height}", f"fps:={fps}", "rate:=10.0"])
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(graph.stderr.readline, "")), daemon=True).start()
    rclpy.init()
    node = rclpy.create_node("bench_recording")
    executor_thread = threading.Thread(target=lambda: rclpy.spin(node), daemon=True)
    executor_thread.start()
    try:
        time.sleep(8.0)                                   # cameras and recorder up
        pid = _recorder_pid(lines)
        start_cli = node.create_client(Trigger, "recorder/start")
        stop_cli = node.create_client(Trigger, "recorder/stop")
        call(start_cli, timeout=60.0)
        cpu0, t0 = _cpu_seconds(pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = _cpu_seconds(pid), time.monotonic()
        result = call(stop_cli, timeout=120.0)
        if not result.success:
            raise RuntimeError(f"recorder could not commit: {result.message}")
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stop(graph)
    row: dict = {"seconds": round(t1 - t0, 1), "recorder_cpu_cores": round((cpu1 - cpu0) / (t1 - t0), 3)}
    with EpisodeStore.open(path) as store:
        # Stamps only: ten minutes of 640x480 frames would not fit in memory decoded.
        ep = {name: store.read_stream(0, name, parts=("capture_stamp",)) for name in ("front_rgb", "wrist_rgb", "joint_pos")}
        for cam in ("front_rgb", "wrist_rgb"):
            stamps = ep[cam]["capture_stamp"]
            gaps = np.diff(stamps)
            row[cam] = {"frames": int(len(stamps)), "expected": int(round((stamps[-1] - stamps[0]) * fps)) + 1,
                        "max_gap_ms": round(1000 * float(gaps.max()), 1),
                        "gaps_over_1.5_periods": int(np.sum(gaps > 1.5 / fps))}
        q = ep["joint_pos"]["capture_stamp"]
        row["state_hz"] = round((len(q) - 1) / (q[-1] - q[0]), 1)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    raw = (row["front_rgb"]["frames"] + row["wrist_rgb"]["frames"]) * width * height * 3
    row["store_mb_per_minute"] = round(size / 1e6 * 60 / row["seconds"], 1)
    row["raw_mb_per_minute"] = round(raw / 1e6 * 60 / row["seconds"], 1)
    print(f"recorder on the live graph, 2 x {width}x{height} @ {fps:g} Hz + state, {row['seconds']} s:")
    for cam in ("front_rgb", "wrist_rgb"):
        c = row[cam]
        print(f"  {cam}: {c['frames']} frames of {c['expected']} expected from the capture stamps, "
              f"max gap {c['max_gap_ms']} ms, gaps over 1.5 periods: {c['gaps_over_1.5_periods']}")
    print(f"  state {row['state_hz']} Hz; recorder CPU {row['recorder_cpu_cores']} cores; store "
          f"{row['store_mb_per_minute']} MB/min vs raw {row['raw_mb_per_minute']} MB/min")
    subprocess.run(["rm", "-rf", str(path.parent)], check=False)
    if json_path:
        Path(json_path).write_text(json.dumps(row, indent=2))
    return row
