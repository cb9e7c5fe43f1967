"""`robot-stack bench control`: arm_node on the twin while the cameras publish.

Brings up launch/sim.launch.yaml (arm + front + wrist cameras) in child processes,
streams small target poses at 100 Hz, and reports the inner loop's rate, period error
and jitter and the command path latency (target header stamp to the control tick that
uses it) from /diagnostics, and the /joint_states rate seen by a subscriber.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from robot_stack.child_graph import isolated_domain, spin_for, start, stop


def measure(robot: str, seconds: float) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState

    from robot_stack.ros import convert, qos

    graph = start(["-m", "robot_stack.cli", "launch", "sim.launch.yaml", f"robot:={robot}", "task:=reach"])
    rclpy.init()
    node = rclpy.create_node("bench_control")
    diag: dict[str, str] = {}
    joints: list[float] = []
    poses: list[PoseStamped] = []
    node.create_subscription(DiagnosticArray, "diagnostics",
                             lambda m: diag.update({kv.key: kv.value for s in m.status for kv in s.values}), 10)
    node.create_subscription(JointState, "joint_states", lambda m: joints.append(time.monotonic()), qos.SENSOR)
    node.create_subscription(PoseStamped, "arm/ee_pose", poses.append, qos.SENSOR)
    target = node.create_publisher(PoseStamped, "arm/target_pose", qos.COMMAND)
    try:
        spin_for(node, 60.0, lambda: len(poses) > 10 and "rate_hz" in diag)
        if not poses:
            raise RuntimeError(f"the graph did not come up: {graph.stderr.read() if graph.poll() is not None else ''}")
        spin_for(node, 3.0)                                     # let the cameras start
        centre, quat, _ = convert.parse_pose(poses[-1])
        joints.clear()
        elapsed = stream_targets(node, target, centre, quat, seconds)
        spin_for(node, 1.2)                                     # one more diagnostics message
        return {"robot": robot, "seconds": round(elapsed, 1), "joint_states_hz": round(len(joints) / elapsed, 1),
                **{k: float(diag[k]) for k in ("rate_hz", "period_error_pct", "jitter_p99_ms",
                                               "command_latency_p50_ms", "command_latency_p99_ms") if k in diag}}
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stop(graph)


def stream_targets(node, publisher, centre: np.ndarray, quat: np.ndarray, seconds: float) -> float:
    """Targets at 100 Hz on a 5 cm circle from this thread, spinning `node` between them; returns the seconds taken.

    The thread runs at the priority of the stack's own command sources (teleop, the scripted commander): at
    SCHED_OTHER the FIFO camera renderers delay it between taking a target's stamp and writing it, and the command
    path then measures this benchmark's sender."""
    import rclpy

    from robot_stack.nodes.common import COMMAND_SOURCE_PRIORITY, thread_priority
    from robot_stack.ros import convert

    with thread_priority(node.get_logger(), COMMAND_SOURCE_PRIORITY, "target sender"):
        t0 = next_cmd = time.monotonic()
        while time.monotonic() - t0 < seconds:
            if time.monotonic() >= next_cmd:
                phase = 2 * np.pi * 0.2 * (time.monotonic() - t0)
                pos = centre + 0.05 * np.array([np.sin(phase), np.cos(phase) - 1, 0.0])
                publisher.publish(convert.pose_msg(pos, quat, node.get_clock().now().nanoseconds * 1e-9))
                next_cmd += 0.01
            rclpy.spin_once(node, timeout_sec=0.002)
        return time.monotonic() - t0


def main(seconds: float = 30.0, json_path: str | None = None) -> list[dict]:
    isolated_domain()
    rows = [measure(robot, seconds) for robot in ("panda", "ur5e")]
    print("arm_node on the twin, front + wrist cameras publishing 128x128 at 30 Hz, targets at 100 Hz:")
    for r in rows:
        print(f"  {r['robot']:<6} loop {r.get('rate_hz', float('nan')):8.2f} Hz  period error "
              f"{r.get('period_error_pct', float('nan')):.3f}%  p99 jitter {r.get('jitter_p99_ms', float('nan')):.3f} ms  "
              f"/joint_states {r['joint_states_hz']:.1f} Hz  command path p50 {r.get('command_latency_p50_ms', float('nan')):.2f} ms "
              f"p99 {r.get('command_latency_p99_ms', float('nan')):.2f} ms")
    if json_path:
        Path(json_path).write_text(json.dumps(rows, indent=2))
    return rows
