"""`robot-stack bench switch`: from a new text on /task/instruction to the first chunk that reflects it.

launch/policy.launch.yaml (arm_node over the twin, two 128x128 cameras, the policy server at 10 Hz) serves a
checkpoint; mid-episode the bench publishes a new instruction SWITCHES times, two seconds apart, cycling over
three blocks. The server names the capture stamp of the first chunk it computed under the changed task
(`task_applied_stamp` on /diagnostics); the bench finds that chunk among those it received and reports, per
switch, the decisions it took (chunks received after the publish, that one included; goal: at most 2) and the
time from the publish to its arrival. Any instruction policy works; SwitchVLA is the one this is about.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

TEXTS = ("put the green block in the bowl", "put the blue block in the bowl", "put the red block in the bowl")
SPACING_S = 2.0


def switch_latency(checkpoint: str, switches: int) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from std_srvs.srv import SetBool
    from trajectory_msgs.msg import MultiDOFJointTrajectory

    from robot_stack.child_graph import spin_for, start, stop
    from robot_stack.ros import qos
    from robot_stack.ros.task_topics import task_publishers
    from robot_stack.types import Task

    graph = start(["-m", "robot_stack.cli", "launch", "policy.launch.yaml", f"checkpoints:={checkpoint}",
                   "task:=pick_place"])
    rclpy.init()
    node = rclpy.create_node("bench_switch")
    now = lambda: node.get_clock().now().nanoseconds * 1e-9      # noqa: E731
    chunks: list[tuple[float, float]] = []          # (capture stamp, arrival)
    server: dict = {}
    node.create_subscription(MultiDOFJointTrajectory, "arm/action_chunk",
                             lambda m: chunks.append((m.header.stamp.sec + m.header.stamp.nanosec * 1e-9, now())),
                             qos.COMMAND)
    node.create_subscription(DiagnosticArray, "diagnostics",
                             lambda m: [server.update({kv.key: kv.value for kv in s.values})
                                        for s in m.status if s.name == "policy_server"], 10)
    publish_task = task_publishers(node)
    enable = node.create_client(SetBool, "policy_server/enable")
    rows = []
    try:
        if not enable.wait_for_service(timeout_sec=90.0):
            raise RuntimeError("the policy server did not come up")
        publish_task(Task(instruction=TEXTS[-1]), now())
        spin_for(node, 2.0)
        future = enable.call_async(SetBool.Request(data=True))
        spin_for(node, 10.0, future.done)
        # the episode's own start is a task change too: its stamp must be on /diagnostics before the first switch
        spin_for(node, 20.0, lambda: len(chunks) >= 5 and "task_applied_stamp" in server)
        if len(chunks) < 5:
            raise RuntimeError(f"the server published {len(chunks)} chunks in 20 s; errors: {server.get('errors')}")
        for k in range(switches):
            before = server.get("task_applied_stamp")
            t0 = now()
            publish_task(Task(instruction=TEXTS[k % len(TEXTS)]), t0)
            spin_for(node, 5.0, lambda: server.get("task_applied_stamp") not in (None, before))
            applied = server.get("task_applied_stamp")
            hit = [c for c in chunks if applied not in (None, before) and abs(c[0] - float(applied)) < 2e-6 and c[1] > t0]
            if not hit:
                rows.append({"switch": k, "decisions": None, "latency_ms": None})
            else:
                arrival = hit[0][1]
                rows.append({"switch": k, "decisions": sum(t0 < a <= arrival for _, a in chunks),
                             "latency_ms": 1000 * (arrival - t0)})
            spin_for(node, max(0.0, SPACING_S - (now() - t0)))
        mode = server.get("switch_mode")
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stop(graph)
    seen = [r for r in rows if r["decisions"] is not None]
    lat = [r["latency_ms"] for r in seen]
    dec = [r["decisions"] for r in seen]
    return {"switches": switches, "reflected": len(seen), "rows": rows, "last_mode": mode,
            "decisions_max": max(dec, default=None), "decisions_p50": float(np.median(dec)) if dec else None,
            "latency_p50_ms": float(np.percentile(lat, 50)) if lat else None,
            "latency_p99_ms": float(np.percentile(lat, 99)) if lat else None}


def main(switches: int = 20, json_path: str | None = None, checkpoint: str | None = None) -> dict:
    import torch

    from robot_stack.child_graph import isolated_domain
    torch.set_num_threads(1)
    isolated_domain()
    started = time.monotonic()
    from robot_stack.bench.policy import _default_checkpoint
    r = switch_latency(checkpoint or _default_checkpoint("switchvla"), int(switches))
    if r["reflected"]:
        print(f"a new /task/instruction to the first chunk that reflects it, {r['reflected']}/{r['switches']} switches "
              f"seen: decisions p50 {r['decisions_p50']:.0f}, max {r['decisions_max']} (goal: at most 2); time p50 "
              f"{r['latency_p50_ms']:.0f} ms, p99 {r['latency_p99_ms']:.0f} ms; last mode on /diagnostics: "
              f"{r['last_mode']} ({time.monotonic() - started:.0f} s)")
    else:
        print(f"no switch was reflected in a chunk within 5 s ({r['switches']} tried)")
    if json_path:
        Path(json_path).write_text(json.dumps(r, indent=2))
    return r
