"""`robot-stack bench controller`: the control loop as a thread of arm_node against its own process, A/B.

First BESO, then GRIF serving through launch/policy.launch.yaml (`bench policy`'s end-to-end run) for SECONDS
each, once with the loop in the node (`controller_process=false`) and once in its own process
(`controller_process=true`), alternating, with the bare SCHED_FIFO loop (`bench/tick_floor.py`) beside the graph
over the same window: late control ticks against the bare loop's (the machine's floor), and capture-to-arm (the
oldest observation's capture stamp to the chunk's arrival at the arm node). Then `rounds` rounds of
launch/sim.launch.yaml (Panda at 1 kHz, front + wrist twin cameras at 30 Hz) in both designs with targets at
100 Hz for TARGET_SECONDS: late ticks, tick CPU p50/p99 and the command path (target header stamp to the
control tick that takes it) p50/p99, all from /diagnostics differenced over the window.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from robot_stack.bench.control import stream_targets
from robot_stack.child_graph import isolated_domain, spin_for, start, stop

DESIGNS = {"thread": "controller_process=false", "process": "controller_process=true"}


def measure(design: str, seconds: float, robot: str = "panda") -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseStamped

    from robot_stack.ros import convert, qos

    graph = start(["-m", "robot_stack.cli", "launch", "sim.launch.yaml", f"robot:={robot}", "task:=reach",
                   f"overrides:={DESIGNS[design]} diagnostics_rate=2.0"])
    rclpy.init()
    node = rclpy.create_node("bench_controller")
    diag: dict[str, str] = {}
    poses: list[PoseStamped] = []
    node.create_subscription(DiagnosticArray, "diagnostics",
                             lambda m: diag.update({kv.key: kv.value for s in m.status for kv in s.values}), 10)
    node.create_subscription(PoseStamped, "arm/ee_pose", poses.append, qos.SENSOR)
    target = node.create_publisher(PoseStamped, "arm/target_pose", qos.COMMAND)
    floor: dict = {}
    try:
        spin_for(node, 90.0, lambda: len(poses) > 10 and "missed_ticks" in diag)
        if "missed_ticks" not in diag:
            raise RuntimeError(f"the {design} graph did not come up")
        spin_for(node, 3.0)                                     # let the cameras start
        centre, quat, _ = convert.parse_pose(poses[-1])
        before = dict(diag)
        probe = threading.Thread(target=lambda: floor.update(_floor(seconds)), daemon=True)
        probe.start()
        stream_targets(node, target, centre, quat, seconds)
        probe.join(timeout=seconds + 30)
        spin_for(node, 1.2)                                     # one more diagnostics message
        after = dict(diag)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stop(graph)
    ticks = float(after["ticks"]) - float(before["ticks"])
    late = float(after["missed_ticks"]) - float(before["missed_ticks"])
    return {"design": design, "robot": robot, "seconds": seconds, "ticks": int(ticks), "late_ticks": int(late),
            "floor_ticks": int(floor.get("ticks", 0)), "floor_late_ticks": int(floor.get("missed_ticks", -1)),
            "floor_fifo": floor.get("fifo"), "steal_pct": floor.get("steal_pct"),
            **{k: float(after[k]) for k in ("rate_hz", "jitter_p99_ms", "tick_cpu_p50_us", "tick_cpu_p99_us",
                                            "command_latency_p50_ms", "command_latency_p99_ms", "command_receive_p50_ms",
                                            "command_receive_p99_ms") if k in after}}


def _floor(seconds: float) -> dict:
    out = subprocess.run([sys.executable, "-m", "robot_stack.bench.tick_floor", str(seconds), "1000", "80"],
                         capture_output=True, text=True, timeout=seconds + 60)
    return json.loads(out.stdout.strip().splitlines()[-1])


def with_policy(design: str, seconds: float, checkpoint: str = "beso_pick_place") -> dict:
    from robot_stack.bench.policy import end_to_end

    path = Path(__file__).resolve().parents[2] / "checkpoints" / checkpoint
    row = end_to_end(str(path), seconds, (f"overrides:={DESIGNS[design]}",))
    return {"design": design, "checkpoint": checkpoint, **row}


POLICIES = ("beso_pick_place", "grif_pick_place")


def main(seconds: float = 20.0, json_path: str | None = None, target_seconds: float | None = None,
         rounds: int = 2) -> list[dict]:
    isolated_domain()
    served = [with_policy(design, seconds, checkpoint) for checkpoint in POLICIES for design in DESIGNS]
    rows = [measure(design, target_seconds or seconds) for _ in range(rounds) for design in DESIGNS]
    print(f"serving through policy.launch.yaml (cameras at 10 Hz), {seconds:.0f} s per run, designs interleaved; "
          f"bare SCHED_FIFO loop beside each run:")
    for r in served:
        ratio = r["missed_ticks"] / max(r["floor_missed_ticks"], 1)
        print(f"  {r['checkpoint']:<16} {r['design']:<8} late ticks {r['missed_ticks']:6d} of {r['control_ticks']:7d}  "
              f"(bare loop {r['floor_missed_ticks']:5d} of {r['floor_ticks']}; {ratio:5.1f}x)  capture-to-arm p50 "
              f"{r['chunk_latency_p50_ms']:.1f} ms p99 {r['chunk_latency_p99_ms']:.1f} ms over {r['chunks_received']} "
              f"chunks  steal {r['cpu_steal_pct']:.1f}%")
    print(f"arm_node on the twin (panda, 1 kHz), front + wrist cameras 128x128 at 30 Hz, targets at 100 Hz, "
          f"{target_seconds or seconds:.0f} s per run, designs interleaved; bare SCHED_FIFO loop beside each run:")
    for r in rows:
        ratio = r["late_ticks"] / max(r["floor_late_ticks"], 1)
        print(f"  {r['design']:<8} late ticks {r['late_ticks']:5d} of {r['ticks']:6d}  (bare loop {r['floor_late_ticks']:4d}"
              f" of {r['floor_ticks']}; {ratio:6.1f}x)  tick CPU p50 {r.get('tick_cpu_p50_us', float('nan')):5.0f} us "
              f"p99 {r.get('tick_cpu_p99_us', float('nan')):5.0f} us  command path p50 "
              f"{r.get('command_latency_p50_ms', float('nan')):.2f} ms p99 {r.get('command_latency_p99_ms', float('nan')):.2f} ms"
              f" (taken from the middleware p50 {r.get('command_receive_p50_ms', float('nan')):.2f} ms "
              f"p99 {r.get('command_receive_p99_ms', float('nan')):.2f} ms)"
              f"  steal {r['steal_pct']:.1f}%")
    if json_path:
        Path(json_path).write_text(json.dumps({"policy": served, "cameras_and_targets": rows}, indent=2))
    return served + rows


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 20.0)
