"""`robot-stack eval`: closed-loop success of a policy in the twin, with a 95% interval.

Backends run the same Policy object on the same seeded episodes:
- `ros`: the ROS 2 graph (launch/policy.launch.yaml: arm_node over the twin, two twin
  cameras, the policy server) in real time; this process resets the twin, publishes the
  task on every conditioning kind's topics, enables the server and watches the twin's
  state for success.
- `sim`: in-process and faster than real time (no transport, no camera latency): the
  policy acts on rendered frames and the first `execute_steps` steps of each chunk are
  executed, 0.1 s each, before it decides again. The ros backend passes `execute_steps` to
  the policy server, which decides every `execute_steps` periods while the arm node plays
  the chunk, so both backends replan alike (every 0.1 s with 1). `chunk_blend` > 0 moves a
  new chunk towards the one playing where they overlap (`control.chunks.blend_chunks`): the
  sim backend does what the ros backend's arm node does with the same parameter.

Each episode's task comes from the chosen conditioning kind (robot_stack.policies.conditioning), built
from that kind's options (e.g. `--instruction`, `--goal-seed`); `execute_steps` and `chunk_blend` default
to the checkpoint's deployment settings.

`--checkpoint expert` and `--checkpoint random` run the scripted expert and a random policy
(uniform TCP targets in the workspace, random gripper) on the same seeds, as baselines.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from robot_stack.control.chunks import blend_chunks
from robot_stack.policies.conditioning import NONE, EpisodeContext, get_kind, kinds
from robot_stack.policies.conditioning.instruction import fill_instruction  # noqa: F401  (the eval API)
from robot_stack.sim.env import make_env
from robot_stack.types import Observation, Task


DESCRIBE_AT_MOST = 10         # episodes: a short run (the demo) says what happened in each

def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (well-behaved at 0% and 100%, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _random_actor(env, rng):
    from robot_stack.sim.tasks.base import top_down
    low, high = np.array([0.3, -0.25, 0.02]), np.array([0.65, 0.25, 0.3])
    return lambda obs: np.concatenate((rng.uniform(low, high), top_down(rng.uniform(-1, 1)), [float(rng.random() > 0.5)]))


def chunk_actor(policy, env, cams, execute_steps: int, chunk_blend: float):
    """obs -> the env's action: the policy decides every `execute_steps` steps; each new chunk is blended into the
    one playing with weight `chunk_blend` where they overlap, as the arm node's temporal ensembling."""
    playing: dict = {"left": 0}

    def actor(o):
        obs = Observation(stamp=env.steps * env.policy_dt, images={c: o[c] for c in cams}, ee_pose=o["ee_pose"],
                          gripper=float(o["gripper"][0]))
        if playing["left"]:
            policy.observe(obs)                 # the history stays at the policy rate between decisions
        else:
            chunk = policy.act(obs)
            if chunk_blend > 0 and "chunk" in playing:
                chunk = blend_chunks(playing["chunk"], chunk, chunk_blend)
            playing.update(chunk=chunk, start=env.steps, left=min(execute_steps, len(chunk)))
        playing["left"] -= 1
        c, k = playing["chunk"], env.steps - playing["start"]
        return np.concatenate((c.positions[k], c.quats[k], [c.gripper[k]]))
    return actor


def episode_task(conditioning: str, ctx: EpisodeContext) -> Task:
    """The task of one evaluation episode: the chosen kind's fields (nothing for `none`)."""
    return Task() if conditioning == NONE else Task(**get_kind(conditioning).episode_fields(ctx))


def _run_sim(policy_name: str, policy, task: str, robot: str, seeds: list[int], conditioning: str, options: dict,
             video: str | None, execute_steps: int = 1, chunk_blend: float = 0.0,
             records_path: str | None = None) -> list[dict]:
    """records_path: append each episode's record there as a JSON line as soon as it ends (a parent's progress)."""
    cams = policy.data_spec().cameras if policy is not None else (("front",) if video else ())
    size = policy.data_spec().image_size if policy is not None else 128
    env = make_env(task, robot=robot, cameras=tuple(cams), image_size=size)
    records, cache = [], {}
    for seed in tqdm(seeds, desc=f"eval {policy_name} {task} (sim)", unit="ep"):
        obs, info = env.reset(seed=seed)
        text = None
        if policy is not None:
            spec = policy.data_spec()
            ctx = EpisodeContext(seed=seed, task=task, robot=robot, image_size=size, params=info["task_params"],
                                 options=options, goal_camera=spec.goal_camera, spec=spec,
                                 first_images={c: obs[c] for c in cams}, cache=cache)
            episode = episode_task(conditioning, ctx)
            text = episode.values().get("instruction")
        if policy_name == "expert":
            expert = env.task.expert(env.scene, np.random.default_rng(seed + 1), env.policy_dt)
            actor = lambda o: expert.act(env.scene)            # noqa: E731
        elif policy_name == "random":
            actor = _random_actor(env, np.random.default_rng(seed + 12345))
        else:
            policy.reset(episode)
            actor = chunk_actor(policy, env, cams, execute_steps, chunk_blend)
        frames, success, touched, t0 = [], False, False, time.perf_counter()
        kind = get_kind(conditioning) if policy is not None and conditioning != NONE else None
        for step in range(env.task.max_steps + (kind.extra_steps(ctx) if kind is not None else 0)):
            if video:
                frames.append(np.concatenate([obs[c] for c in cams], axis=1))
            obs, _, terminated, truncated, info = env.step(actor(obs))
            touched |= info["contact_phase"] != "pre_contact"
            if kind is not None:
                info["status"] = policy.status()            # what the policy reports of itself (e.g. its mode)
            change = kind.during_episode(ctx, step + 1, info) if kind is not None else None
            if change:                                   # the task changes while the arm moves (a switch)
                episode = episode.replace(**change)
                policy.update_task(episode)
            judged = kind.success(ctx, env.scene, env.task) if kind is not None else None
            if info["success"] if judged is None else judged:
                success = True
                break
        if video:
            from robot_stack.video import write_mp4
            Path(video).mkdir(parents=True, exist_ok=True)
            write_mp4(Path(video) / f"{policy_name}_{task}_seed{seed}.mp4", frames + [frames[-1]] * 5, fps=10)
        records.append({"seed": seed, "success": success, "touched": touched, "steps": int(info["steps"]),
                        "instruction": text, "params": info["task_params"], "seconds": time.perf_counter() - t0,
                        **(kind.record(ctx) if kind is not None else {})})
        if records_path:
            with open(records_path, "a") as f:
                f.write(json.dumps(records[-1]) + "\n")
    env.close()
    return records


def _lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def _run_sim_parallel(checkpoint, task, robot, seeds, conditioning, options, video, execute_steps,
                      chunk_blend, workers) -> list[dict]:
    """The sim backend in `workers` child processes over contiguous seed ranges; their records, in seed order."""
    import tempfile

    from robot_stack.workers import run_cli_workers

    parts = [p for p in np.array_split(np.asarray(seeds), min(workers, len(seeds))) if len(p)]
    with tempfile.TemporaryDirectory(prefix="eval_workers_") as tmp:
        record_files = [Path(tmp) / f"{k}.jsonl" for k in range(len(parts))]      # one per child, a line per episode
        argvs = []
        for part, records in zip(parts, record_files):
            argv = ["eval", "--checkpoint", checkpoint, "--task", task, "--robot", robot, "--episodes", str(len(part)),
                    "--seed", str(int(part[0])), "--backend", "sim", "--conditioning", conditioning,
                    "--execute-steps", str(execute_steps), "--chunk-blend", str(chunk_blend),
                    "--records", str(records), "--options-json", json.dumps(options)]
            argv += ["--video", video] if video else []
            argvs.append(argv)
        run_cli_workers(argvs, f"eval {task} (sim)", len(seeds), lambda finished: sum(map(_lines, record_files)))
        return [json.loads(line) for records in record_files for line in records.read_text().splitlines()]


def choose_conditioning(policy, options: dict, conditioning: str | None) -> str:
    """The kind to evaluate on: the one asked for; else one the policy accepts whose options were given; else the
    first kind the policy accepts that needs no options; else none. Checked against the policy and the options."""
    if policy is None:
        return NONE                            # the expert and random baselines read no task
    if conditioning is None:
        accepted = [k for k in sorted(kinds()) if k in policy.conditioning]
        given = [k for k in accepted if get_kind(k).given(options)]
        ready = []
        for k in accepted:
            try:
                get_kind(k).check_options(options)
                ready.append(k)
            except ValueError:
                pass
        conditioning = (given or ready or [NONE])[0]
    if conditioning != NONE:
        get_kind(conditioning).check_options(options)     # an unknown name is refused with the registered ones
    baseline = conditioning != NONE and bool(set(get_kind(conditioning).baseline_for) & policy.conditioning)
    if conditioning not in policy.conditioning and not baseline:
        raise ValueError(f"policy {policy.name!r} accepts {sorted(policy.conditioning)}, not {conditioning!r}")
    return conditioning


def run_eval(checkpoint: str, task: str, robot: str, episodes: int, seed: int, options: dict | None = None,
             conditioning: str | None = None, backend: str = "ros", video: str | None = None,
             json_path: str | None = None, execute_steps: int | None = None, chunk_blend: float | None = None,
             workers: int = 1, records_path: str | None = None) -> dict:
    """`options`: the conditioning kinds' eval options by dest (e.g. {"instruction": "pick the {object}"}).
    `execute_steps` / `chunk_blend`: None takes the checkpoint's deployment settings."""
    import torch

    from robot_stack.policies import load_policy

    torch.set_num_threads(1)      # batch-1 inference gains little from threads; two threads thrash on a busy 2-core CPU
    options = {k: v for k, v in (options or {}).items() if v is not None}
    if episodes < 1:
        raise ValueError("--episodes must be at least 1")
    policy = None if checkpoint in ("expert", "random") else load_policy(checkpoint)
    deploy = policy.deploy if policy is not None else {"execute_steps": 1, "chunk_blend": 0.0}
    execute_steps = deploy["execute_steps"] if execute_steps is None else execute_steps
    chunk_blend = deploy["chunk_blend"] if chunk_blend is None else chunk_blend
    if execute_steps < 1:
        raise ValueError(f"--execute-steps must be at least 1, got {execute_steps}")
    if not 0.0 <= chunk_blend < 1.0:
        raise ValueError(f"--chunk-blend must be in [0, 1), got {chunk_blend}")
    conditioning = choose_conditioning(policy, options, conditioning)
    seeds = list(range(seed, seed + episodes))
    name = checkpoint if policy is None else policy.name
    arm = None
    if workers > 1 and (backend == "sim" or policy is None):
        records = _run_sim_parallel(checkpoint, task, robot, seeds, conditioning, options, video,
                                    execute_steps, chunk_blend, workers)
    elif backend == "sim" or policy is None:
        records = _run_sim(name, policy, task, robot, seeds, conditioning, options, video,
                           execute_steps, chunk_blend, records_path)
    else:
        from robot_stack.eval_ros import run_ros
        records, arm = run_ros(checkpoint, policy, task, robot, seeds, conditioning, options, video,
                               execute_steps=execute_steps, chunk_blend=chunk_blend)
    n_ok = sum(r["success"] for r in records)
    n_touched = sum(r["touched"] for r in records)      # how far failures got: did the gripper reach the object?
    lo, hi = wilson_interval(n_ok, len(records))
    report = {"checkpoint": checkpoint, "policy": name, "task": task, "robot": robot, "backend": backend,
              "conditioning": conditioning, "execute_steps": execute_steps, "chunk_blend": chunk_blend, "options": options,
              "seeds": [seeds[0], seeds[-1]],
              "episodes": len(records), "successes": n_ok, "success_rate": n_ok / max(1, len(records)), "touched": n_touched,
              "ci95": [lo, hi], "mean_steps": float(np.mean([r["steps"] for r in records])) if records else None,
              "records": records}
    if arm is not None:
        report["arm_diagnostics"] = arm
        print(f"arm node: chunks received {arm.get('chunks_received')}, capture->arm latency p50 "
              f"{arm.get('chunk_latency_p50_ms')} ms p99 {arm.get('chunk_latency_p99_ms')} ms, loop {arm.get('rate_hz')} Hz,"
              f" missed ticks {arm.get('missed_ticks')}")
    print(f"{name} on {task} ({robot}, {backend}, {conditioning}): {n_ok}/{len(records)} = "
          f"{100 * report['success_rate']:.0f}% (95% CI {100 * lo:.0f}-{100 * hi:.0f}%), "
          f"mean length {report['mean_steps']:.1f} steps; the gripper touched the object in {n_touched}/{len(records)}")
    kind = get_kind(conditioning) if conditioning != NONE and policy is not None else None
    for r in (records if kind is not None and len(records) <= DESCRIBE_AT_MOST else []):
        line = kind.describe(r)
        if line:
            print(f"  seed {r['seed']}: {line}")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=1))
    return report
