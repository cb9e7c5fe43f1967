"""Expert episodes straight into an episode store, without the ROS 2 graph.

Training sets for the policies come from here: the twin's scripted experts run in-process
(several times faster than real time) and every policy step is written with the stream
names the recorder node uses (`front_rgb`, `wrist_rgb`, `ee_pose`, `gripper`, `joint_pos`,
`action_pose`, `action_gripper`, `tick`), so a policy trained on these episodes reads
recordings from the graph unchanged. Row t holds the observation at tick t and the action
commanded at tick t; the last row is the settled final observation (its action holds the pose),
which is the episode's hindsight goal frame. Two twin-only streams ride along for the online
learner's demos: `task_state` (the privileged object pose, the state observation) and `reward`
(1.0 when the task succeeds after row t's action, else 0.0).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from robot_stack.data import EpisodeStore
from robot_stack.data.errors import StoreError
from robot_stack.data.tools import merge
from robot_stack.sim.env import make_env
from robot_stack.sim.rollout import expert_steps
from robot_stack.workers import run_cli_workers


def record_expert_episode(env, writer, seed: int, position_noise: float = 0.0) -> dict:
    """One seeded expert episode into an open EpisodeWriter; returns its metadata.

    With `position_noise` the arm is disturbed (`rollout.PositionNoise`) and each row's action is
    still the expert's undisturbed target: the label that brings a drifted arm back."""
    from robot_stack.sim.camera import calibration

    rows, phases, rewards, obs, cameras = [], [], [], None, None
    for next_obs, action, info in expert_steps(env, seed, position_noise):
        if cameras is None:                   # after the reset: the wrist camera's hand-eye transform at the start
            cameras = calibration(env.scene, env.cameras, *env.image_size)
        if action is not None:
            rows.append((obs, action))
            phases.append(info["contact_phase"])
            rewards.append(float(info["success"]))
        obs = next_obs
    hold = np.concatenate((obs["ee_pose"], rows[-1][1][7:8]))
    rows.append((obs, hold))
    rewards.append(float(info["success"]))
    dt = env.policy_dt
    for t, (o, a) in enumerate(rows):
        stamp = t * dt
        for cam in env.cameras:
            writer.append(f"{cam}_rgb", o[cam], stamp, stamp)
        writer.append("ee_pose", o["ee_pose"], stamp, stamp)
        writer.append("gripper", o["gripper"], stamp, stamp)
        writer.append("joint_pos", o["joint_pos"], stamp, stamp)
        writer.append("action_pose", a[:7], stamp, stamp)
        writer.append("action_gripper", a[7:8], stamp, stamp)
        writer.append("tick", np.array(stamp), stamp, stamp)
        writer.append("task_state", o["task_state"], stamp, stamp)
        writer.append("reward", np.array(rewards[t]), stamp, stamp)
    return {"task": env.task.name, "robot": env.scene.spec.name, "seed": seed, "success": bool(info["success"]),
            "instruction": env.instruction, "params": env.task.params.as_dict(), "operator": "scripted",
            "steps": len(rows) - 1, "contact_phase": phases, "goal_frame": len(rows) - 1,
            "position_noise": position_noise, "cameras": cameras}


def generate(task: str, robot: str, episodes: int, seed: int, out: str, image_size: int = 128,
             only_success: bool = True, overwrite: bool = False, workers: int = 1, seed_stride: int = 1,
             progress: bool = True, durable: bool = True, position_noise: float = 0.0) -> dict:
    """`episodes` seeded expert episodes (seeds seed, seed+stride, ...) into a new store at `out`.

    With workers > 1 each worker process takes every workers-th seed into a shard store of its own
    and the shards are merged in seed order, so the result holds the episodes one worker would have
    written, except where a failed seed shifts which seeds are kept. `durable`: `out` fsyncs every
    commit (the shards, deleted after the merge, never do). `position_noise` (metres): disturb the
    arm as `rollout.PositionNoise` does, recording the expert's own targets."""
    if workers > 1:
        return _generate_parallel(task, robot, episodes, seed, out, image_size, overwrite, workers, durable,
                                  position_noise)
    env = make_env(task, robot=robot, image_size=image_size)
    store = EpisodeStore.create(out, overwrite=overwrite, attrs={"source": "scripted expert", "task": task,
                                                                 "robot": robot, "image_size": image_size},
                                durable=durable)
    kept, failed, s = 0, [], seed
    try:
        with tqdm(total=episodes, desc=f"expert {task}/{robot}", unit="ep", disable=not progress) as bar:
            while kept < episodes:
                writer = store.begin_episode()
                meta = record_expert_episode(env, writer, s, position_noise)
                if only_success and not meta["success"]:
                    writer.discard()
                    failed.append(s)
                else:
                    writer.commit(success=meta.pop("success"), **meta)
                    kept += 1
                    bar.update(1)
                s += seed_stride
    finally:
        store.close()
        env.close()
    return {"store": str(out), "episodes": kept, "seeds": [seed, s - seed_stride], "failed_seeds": failed}


def _generate_parallel(task, robot, episodes, seed, out, image_size, overwrite, workers, durable=True,
                       position_noise=0.0) -> dict:
    """Shards from `workers` child processes (`robot-stack sim collect --seed-stride --scratch`), then one merged store.

    The shards are scratch (``--scratch``: not fsynced): they are deleted once merged, and a crash before the
    merge loses the run anyway."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (pass --overwrite to replace it)")
    shard_dir = out.with_name(out.name + ".shards")
    shutil.rmtree(shard_dir, ignore_errors=True)
    shard_dir.mkdir(parents=True)
    counts = [n for n in (episodes // workers + (k < episodes % workers) for k in range(workers)) if n]
    shards = [shard_dir / str(k) for k in range(len(counts))]
    argvs = [["sim", "collect", "--task", task, "--robot", robot, "--episodes", str(n), "--seed", str(seed + k),
              "--seed-stride", str(len(counts)), "--image-size", str(image_size), "--out", str(shard),
              "--position-noise", str(position_noise), "--no-progress", "--scratch"]
             for k, (n, shard) in enumerate(zip(counts, shards))]
    stdouts = run_cli_workers(argvs, f"expert {task}/{robot}", episodes,
                              lambda finished: sum(_committed(shard) for shard in shards))
    results = [json.loads(text.strip().splitlines()[-1]) for text in stdouts]
    merge(shards, out, overwrite=overwrite,
          attrs={"source": "scripted expert", "task": task, "robot": robot, "image_size": image_size},
          durable=durable)
    shutil.rmtree(shard_dir)
    return {"store": str(out), "episodes": sum(r["episodes"] for r in results),
            "seeds": [seed, max(r["seeds"][1] for r in results)],
            "failed_seeds": sorted(s for r in results for s in r["failed_seeds"]), "workers": len(counts)}


def _committed(path: Path) -> int:
    """Episodes committed so far in a store another process is writing (0 before it exists)."""
    try:
        with EpisodeStore.open(path) as store:
            return store.num_episodes
    except (StoreError, OSError):
        return 0
