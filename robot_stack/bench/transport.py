"""`robot-stack bench transport`: image latency and drops between two processes over ROS 2.

A child process publishes with the image QoS the camera node uses; this process
subscribes with the same QoS the policy server will, and measures stamp-to-callback
latency and missing frame numbers.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from robot_stack.child_graph import isolated_domain, start, stop

CASES = (  # (label, width, height, rate, encoding, share of --seconds)
    ("640x480 rgb8 @30Hz", 640, 480, 30.0, "rgb8", 1.0),
    ("640x480 depth 16UC1 @30Hz", 640, 480, 30.0, "16UC1", 0.25),
    ("128x128 rgb8 @10Hz", 128, 128, 10.0, "rgb8", 0.25),
)


def measure(width: int, height: int, rate: float, encoding: str, seconds: float) -> dict:
    import rclpy
    from sensor_msgs.msg import Image

    from robot_stack.ros import qos

    count = max(10, int(seconds * rate))
    pub = start(["-m", "robot_stack.bench.image_publisher", "--width", str(width), "--height", str(height),
                 "--rate", str(rate), "--encoding", encoding, "--count", str(count)])
    rclpy.init()
    node = rclpy.create_node("bench_transport")
    latencies, seen = [], set()

    def on_image(msg: Image) -> None:
        now = node.get_clock().now().nanoseconds
        latencies.append((now - (msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)) * 1e-6)
        seen.add(int(msg.header.frame_id))

    node.create_subscription(Image, "bench/image", on_image, qos.IMAGE)
    deadline = time.monotonic() + seconds + 30.0
    try:
        while pub.poll() is None and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        for _ in range(20):
            rclpy.spin_once(node, timeout_sec=0.01)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stop(pub)
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {"frames_sent": count, "frames_received": len(seen), "dropped": count - len(seen),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "max_ms": round(float(np.max(lat)), 2)}


def main(seconds: float = 60.0, json_path: str | None = None) -> list[dict]:
    isolated_domain()
    rows = []
    for label, w, h, rate, enc, share in CASES:
        row = {"case": label, **measure(w, h, rate, enc, seconds * share)}
        rows.append(row)
        print(f"  {label:<28} sent {row['frames_sent']:>5}  dropped {row['dropped']:>4}  latency p50 {row['p50_ms']:6.2f} ms  "
              f"p99 {row['p99_ms']:6.2f} ms  max {row['max_ms']:6.2f} ms", flush=True)
    if json_path:
        Path(json_path).write_text(json.dumps(rows, indent=2))
    return rows
