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

import numpy as np
from tqdm import tqdm

from robot_stack.data import EpisodeStore
from robot_stack.sim.env import make_env
from robot_stack.sim.rollout import expert_steps


def record_expert_episode(env, writer, seed: int) -> dict:
    """One seeded expert episode into an open EpisodeWriter; returns its metadata."""
    rows, phases, rewards, obs = [], [], [], None
    for next_obs, action, info in expert_steps(env, seed):
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
            "steps": len(rows) - 1, "contact_phase": phases, "goal_frame": len(rows) - 1}


def generate(task: str, robot: str, episodes: int, seed: int, out: str, image_size: int = 128,
             only_success: bool = True, overwrite: bool = False) -> dict:
    """`episodes` seeded expert episodes (seeds seed, seed+1, ...) into a new store at `out`."""
    env = make_env(task, robot=robot, image_size=image_size)
    store = EpisodeStore.create(out, overwrite=overwrite, attrs={"source": "scripted expert", "task": task,
                                                                 "robot": robot, "image_size": image_size})
    kept, failed = 0, []
    try:
        with tqdm(total=episodes, desc=f"expert {task}/{robot}", unit="ep") as bar:
            s = seed
            while kept < episodes:
                writer = store.begin_episode()
                meta = record_expert_episode(env, writer, s)
                if only_success and not meta["success"]:
                    writer.discard()
                    failed.append(s)
                else:
                    writer.commit(success=meta.pop("success"), **meta)
                    kept += 1
                    bar.update(1)
                s += 1
    finally:
        store.close()
        env.close()
    return {"store": str(out), "episodes": kept, "seeds": [seed, s - 1], "failed_seeds": failed}
