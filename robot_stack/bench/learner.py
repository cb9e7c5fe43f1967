"""`robot-stack bench learner`: gradient updates per second at batch 256, state and image observations.

One update = `critic_actor_ratio` critic steps on the REDQ ensemble, one gripper-critic step,
one actor and one temperature step (learner/rlpd.py), on batches drawn 50/50 from a demo and
an online replay buffer exactly as the learner draws them (sampling time included). Also the
replay buffer's memory per transition against storing obs and next_obs separately.
SECONDS bounds each configuration's timed part; torch threads as the learner uses them.
"""
from __future__ import annotations

import json
import time

import numpy as np
import torch

from robot_stack.learner.replay import Transition
from robot_stack.learner.rlpd import RLPDAgent, RLPDConfig
from robot_stack.learner.roles import Learner, LearnerSettings
from robot_stack.learner.spaces import ActionSpec, ObsSpec

CASES = {   # the observations of conf/learn.yaml's state run and of the image run (docs/results.md, "Online RL: lift")
    "state (lift: 11-D state)": ObsSpec(("ee_pose", "gripper", "object_rel"), 11, (), 128),
    "image (front + wrist 128x128 + 8-D proprio)": ObsSpec(("ee_pose", "gripper"), 8, ("front", "wrist"), 128),
}
CRITICS = (2, 10)   # conf/learn.yaml and HIL-SERL; SERL and RLPD


def _fill(learner: Learner, spec: ObsSpec, n: int, rng: np.random.Generator) -> None:
    def obs():
        o = {"state": rng.normal(size=spec.state_dim).astype(np.float32)}
        o.update({c: rng.integers(0, 255, (spec.image_size, spec.image_size, 3), dtype=np.uint8)
                  for c in spec.cameras})
        return o
    for buffer in (learner.demo_buffer, learner.online_buffer):
        current = obs()
        for t in range(n):
            nxt = obs()
            buffer.add(Transition(current, rng.uniform(-1, 1, 3).astype(np.float32), int(rng.integers(3)),
                                  float(rng.random() < 0.1), nxt, terminated=(t % 50 == 49), truncated=False,
                                  episode=f"e{t // 50}", step=t % 50))
            current = obs() if t % 50 == 49 else nxt


def bench_case(name: str, spec: ObsSpec, seconds: float, threads: int, batch_size: int = 256,
               num_critics: int = 10) -> dict:
    torch.set_num_threads(threads)
    agent = RLPDAgent(spec, ActionSpec(), RLPDConfig(batch_size=batch_size, num_critics=num_critics))
    learner = Learner(agent, [], LearnerSettings(buffer_capacity=5000))
    _fill(learner, spec, 1000, np.random.default_rng(0))
    learner.update()                                    # warm-up
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t0 = time.perf_counter()
        learner.update()
        times.append(time.perf_counter() - t0)
    t = np.array(times)
    per_transition = learner.online_buffer.nbytes() / learner.online_buffer.capacity
    naive = per_transition + sum(np.prod(s) * np.dtype(d).itemsize for s, d in spec.shapes().values())
    return {"case": name, "batch_size": batch_size, "num_critics": num_critics, "threads": threads,
            "updates": len(t), "updates_per_s": float(1.0 / t.mean()), "ms_per_update_p50": 1000 * float(np.median(t)),
            "buffer_bytes_per_transition": int(per_transition), "naive_bytes_per_transition": int(naive)}


def main(seconds: float = 30.0, json_path: str | None = None) -> list[dict]:
    results = []
    for threads in (1, 2):
        for (name, spec), critics in ((case, n) for case in CASES.items() for n in CRITICS):
            r = bench_case(name, spec, seconds, threads, num_critics=critics)
            results.append(r)
            print(f"{name}, batch {r['batch_size']}, {r['num_critics']} critics, {threads} thread(s): "
                  f"{r['updates_per_s']:.2f} updates/s ({r['ms_per_update_p50']:.1f} ms p50, {r['updates']} timed); "
                  f"buffer {r['buffer_bytes_per_transition']} B/transition vs {r['naive_bytes_per_transition']} "
                  f"storing obs and next_obs", flush=True)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=1)
    return results
