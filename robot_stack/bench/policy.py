"""`robot-stack bench policy`: act() latency per policy, and capture-to-arm latency through ROS 2.

1. act() on this CPU, batch 1, 128x128 frames: every registered policy at its default config
   (latency depends on the architecture, not the weights) and BESO with two frames of history (the
   shipped push checkpoint), BESO at its 3 DPM-Solver-1 steps
   against the same network sampled with 16-step DDIM and 100-step DDPM (the ratio).
2. End to end: launch/policy.launch.yaml (arm_node over the twin, two 128x128 twin cameras
   at 10 Hz, the policy server at 10 Hz) with a checkpoint for SECONDS; the arm node measures
   each chunk from the capture stamp of its oldest observation to its arrival, and counts
   control ticks that came late (missed). Checkpoints: the shipped checkpoints/<name>_pick_place
   when none are given (their configs are what the demo runs: frames, proprio, chunk length).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from robot_stack.types import Observation, Task


def _obs(size: int, t: float) -> Observation:
    rng = np.random.default_rng(0)
    return Observation(stamp=t, images={c: rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for c in ("front", "wrist")},
                       ee_pose=np.array([0.45, 0.0, 0.2, 1.0, 0.0, 0.0, 0.0]), gripper=0.08)


def _stats() -> dict:
    from robot_stack.policies.actions import compute_stats
    rng = np.random.default_rng(0)
    from robot_stack.policies.grif.language import TEXT_DIM
    return {"action": compute_stats(rng.normal(size=(100, 7))), "proprio": compute_stats(rng.normal(size=(100, 8))),
            "text": {"mean": [0.0] * TEXT_DIM, "scale": 1.0}}


def _time(fn, n: int) -> dict:
    for _ in range(3):
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t0))
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def example_task(size: int) -> Task:
    """A task carrying every registered conditioning kind's example, so each policy finds what it reads."""
    from robot_stack.policies.conditioning import kinds
    fields: dict = {}
    for kind in kinds().values():
        fields.update(kind.example(size))
    return Task(**fields)


def act_latency(n: int = 100) -> dict:
    from robot_stack.policies import REGISTRY, discover
    discover()
    rows = {}
    # BESO also at two frames of history: the shipped push checkpoint's config (twice the image encoding).
    configs = [(name, cls, {}) for name, cls in sorted(REGISTRY.items())] + [("beso_2frames", REGISTRY["beso"],
                                                                               {"obs_horizon": 2})]
    for name, cls, config in configs:
        policy = cls.from_config(config, _stats()).eval()
        size = policy.data_spec().image_size
        policy.reset(example_task(size))
        obs = _obs(size, time.time())           # made once: only act() is inside the timed region

        def act():
            obs.stamp = time.time()
            return policy.act(obs)
        rows[name] = _time(act, n)
        if name == "beso":
            for method, steps in (("ddim", 16), ("ddpm", 100)):
                saved = (policy.config.sampler, policy.config.sampling_steps)
                policy.config.sampler, policy.config.sampling_steps = method, steps
                rows[f"beso_{method}{steps}"] = _time(act, max(10, n // 5))
                policy.config.sampler, policy.config.sampling_steps = saved
    return rows


def end_to_end(checkpoint: str, seconds: float, launch_args: tuple[str, ...] = ()) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from std_srvs.srv import SetBool

    from robot_stack.child_graph import spin_for, start, stop
    from robot_stack.ros.task_topics import task_publishers

    graph = start(["-m", "robot_stack.cli", "launch", "policy.launch.yaml", f"checkpoints:={checkpoint}",
                   "task:=pick_place", *launch_args])
    rclpy.init()
    node = rclpy.create_node("bench_policy")
    diag: dict[str, dict] = {}
    node.create_subscription(DiagnosticArray, "diagnostics",
                             lambda m: [diag.__setitem__(s.name, {kv.key: kv.value for kv in s.values}) for s in m.status],
                             10)
    publish_task = task_publishers(node)
    enable = node.create_client(SetBool, "policy_server/enable")
    try:
        if not enable.wait_for_service(timeout_sec=90.0):
            raise RuntimeError(f"the policy server did not come up: {graph.stderr.read() if graph.poll() is not None else ''}")
        now = node.get_clock().now().nanoseconds * 1e-9
        publish_task(example_task(128), now)
        spin_for(node, 2.0)
        future = enable.call_async(SetBool.Request(data=True))
        spin_for(node, 10.0, future.done)
        spin_for(node, 3.0)
        base = next((v for k, v in diag.items() if k.endswith(": arm")), {})
        floor = _start_floor(seconds)
        t0 = time.monotonic()
        spin_for(node, seconds)
        elapsed = time.monotonic() - t0
        spin_for(node, 1.5)
        floor_out, _ = floor.communicate(timeout=30)
        machine = json.loads(floor_out.strip().splitlines()[-1])
        arm = next((v for k, v in diag.items() if k.endswith(": arm")), {})
        server = diag.get("policy_server", {})
        cameras = [v for k, v in diag.items() if ": camera " in k]
        return {"seconds": round(elapsed, 1), "chunks_received": int(float(arm.get("chunks_received", 0))),
                "chunk_latency_p50_ms": float(arm.get("chunk_latency_p50_ms", "nan")),
                "chunk_latency_p99_ms": float(arm.get("chunk_latency_p99_ms", "nan")),
                "control_rate_hz": float(arm.get("rate_hz", "nan")),
                "control_ticks": int(float(arm.get("ticks", 0))) - int(float(base.get("ticks", 0))),
                "missed_ticks": int(float(arm.get("missed_ticks", 0))) - int(float(base.get("missed_ticks", 0))),
                "jitter_p99_ms": float(arm.get("jitter_p99_ms", "nan")),
                "server_act_p50_ms": float(server.get("act_p50_ms", "nan")),
                "server_act_p99_ms": float(server.get("act_p99_ms", "nan")),
                "server_obs_age_p50_ms": float(server.get("obs_age_p50_ms", "nan")),
                "server_obs_age_p99_ms": float(server.get("obs_age_p99_ms", "nan")), "server_errors": server.get("errors"),
                "camera_publish_p99_ms": max((float(c.get("capture_to_publish_p99_ms", "nan")) for c in cameras),
                                             default=float("nan")),
                "floor_ticks": machine["ticks"], "floor_missed_ticks": machine["missed_ticks"],
                "floor_fifo": machine["fifo"], "cpu_steal_pct": machine["steal_pct"]}
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stop(graph)


def _start_floor(seconds: float) -> subprocess.Popen:
    """The bare loop of `tick_floor` beside the graph, at the Panda arm loop's rate and priority."""
    from robot_stack.config import load_config
    from robot_stack.robots.spec import get_robot
    priority = load_config("arm_node").realtime_priority
    return subprocess.Popen([sys.executable, "-m", "robot_stack.bench.tick_floor", str(seconds),
                             str(get_robot("panda").control_hz), str(priority)], stdout=subprocess.PIPE, text=True)


def _default_checkpoint(name: str) -> str:
    """The shipped checkpoint: a default-config one made here once went stale when the defaults changed
    (2 frames + proprio after BESO moved to 1 frame, which changes what the latency measures)."""
    path = Path("checkpoints") / f"{name}_pick_place"
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"no shipped checkpoint at {path.resolve()}: run the bench from the repository root")
    return str(path.resolve())


def main(seconds: float = 60.0, json_path: str | None = None, checkpoints: dict | None = None) -> dict:
    from robot_stack.child_graph import isolated_domain
    torch.set_num_threads(2)
    isolated_domain()
    rows = act_latency()
    print("act() latency, batch 1, 128x128, this CPU (torch threads 2):")
    for name, r in rows.items():
        print(f"  {name:<14} p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms")
    if "beso" in rows:
        for other in ("beso_ddim16", "beso_ddpm100"):
            print(f"  {other} / beso (3 steps): {rows[other]['p50_ms'] / rows['beso']['p50_ms']:.1f}x")
    e2e = {}
    for name in ("beso", "grif"):
        ckpt = (checkpoints or {}).get(name) or _default_checkpoint(name)
        torch.set_num_threads(1)
        e2e[name] = end_to_end(ckpt, seconds)
        r = e2e[name]
        print(f"end to end through ROS 2, {name} at 10 Hz, two 128x128 cameras, {r['seconds']} s: capture -> chunk at "
              f"the arm p50 {r['chunk_latency_p50_ms']:.1f} ms, p99 {r['chunk_latency_p99_ms']:.1f} ms over "
              f"{r['chunks_received']} chunks; control {r['control_rate_hz']:.1f} Hz, missed ticks "
              f"{r['missed_ticks']}/{r['control_ticks']} (a bare loop at the same rate and priority beside it: "
              f"{r['floor_missed_ticks']}/{r['floor_ticks']}, CPU steal {r['cpu_steal_pct']:.1f}%), p99 jitter "
              f"{r['jitter_p99_ms']:.2f} ms; in the server, capture -> "
              f"act() start p50 {r['server_obs_age_p50_ms']:.1f} ms p99 {r['server_obs_age_p99_ms']:.1f} ms, act() p50 "
              f"{r['server_act_p50_ms']:.1f} ms p99 {r['server_act_p99_ms']:.1f} ms; capture -> published by the camera "
              f"p99 {r['camera_publish_p99_ms']:.1f} ms")
    out = {"act": rows, "end_to_end": e2e}
    if json_path:
        Path(json_path).write_text(json.dumps(out, indent=2))
    return out
