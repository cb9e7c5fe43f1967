"""`robot-stack replay`: play a recorded episode back in the twin and measure how well it tracks.

`actions` mode resets the twin to the episode's task and seed (recorded on the twin) and
replays the commanded TCP targets and gripper commands at their recorded times through
the same interpolation and operational-space control the arm node used; it reports the
outcome against the recorded one and the final object positions. `joints` mode replays
the recorded joint positions as joint targets, which works for episodes from a real arm
too. Both report joint and TCP tracking error against the recorded states, sampled at the
recorded stamps, and can render the recorded and replayed front views side by side.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from robot_stack.sim.arm import SimArm
from robot_stack.sim.camera import CameraRenderer
from robot_stack.sim.env import reset_episode
from robot_stack.sim.scene import BLOCKS, Scene
from robot_stack.sim.tasks import make_task
from robot_stack.video import write_mp4


def _latest(stamps: np.ndarray, values: np.ndarray, t: float, default):
    i = int(np.searchsorted(stamps, t, side="right")) - 1
    return values[i] if i >= 0 else default


def _object_positions(scene: Scene) -> dict[str, list[float]]:
    out = {f"{c}_block": scene.block_pos(c).round(4).tolist() for c in BLOCKS}
    out["bowl"] = scene.body_pose("bowl")[0].round(4).tolist()
    out["drawer"] = [round(scene.drawer_opening, 4)]
    return out


def replay_episode(store_path: str, episode: int, mode: str = "actions", video: str | None = None,
                   json_path: str | None = None) -> dict:
    from robot_stack.data import EpisodeStore, StoreError

    if mode not in ("actions", "joints"):
        raise ValueError(f"mode must be 'actions' or 'joints', got {mode!r}")
    with EpisodeStore.open(store_path) as store:
        meta = store.metadata(episode)
        index = int(episode) % store.num_episodes   # -1 is the last episode; errors name its stored index
        # checked before any read or simulation: a store recorded without them (another recorder, a
        # hand-made store) is bad input, reported as one line naming it, not a KeyError deep in the loop
        needed = ("joint_pos", "ee_pose") + (("action_pose",) if mode == "actions" else ())
        missing = [s for s in needed if s not in store.streams]
        if missing:
            raise StoreError(f"{store_path}: episode {episode}: no {', '.join(missing)} stream(s), which "
                             f"`replay --mode {mode}` needs (the store has {', '.join(sorted(store.streams))})")
        wanted = [s for s in ("joint_pos", "ee_pose", "action_pose", "action_gripper", "front_rgb", "gripper")
                  if s in store.streams]
        ep = store.read_episode(episode, wanted)
        for name in needed:
            rows = ep[name]["data"]
            if not len(rows) or (name != "joint_pos" and rows.shape[1:] != (7,)):
                raise StoreError(f"{store_path}: episode {episode}: stream {name!r} has {len(rows)} rows of shape "
                                 f"{rows.shape[1:]}; replay needs at least one row (poses: 7 values)")
    robot, task_name = meta.get("robot", "panda"), meta.get("task")
    for key, value, ok in (("robot", robot, isinstance(robot, str)),
                           ("task", task_name, task_name is None or isinstance(task_name, str)),
                           ("seed", meta.get("seed"), meta.get("seed") is None or (
                               isinstance(meta.get("seed"), int) and not isinstance(meta.get("seed"), bool)))):
        if not ok:   # hand-edited or foreign metadata: name it rather than fail inside the twin
            raise StoreError(f"{store_path}: episode {episode}, key 'meta/episodes/{index:06d}'"
                             f": {key} {value!r} is not a valid {key}")
    scene = Scene(robot)
    arm = SimArm(scene)
    task = make_task(task_name) if task_name else None
    if meta.get("seed") is not None and task is not None:
        reset_episode(scene, arm, task, np.random.default_rng(int(meta["seed"])))
    elif mode == "actions":
        raise ValueError(f"episode {episode} has no twin seed in its metadata; replay it with --mode joints")
    q_rec, q_t = ep["joint_pos"]["data"], ep["joint_pos"]["capture_stamp"]
    ee_rec, ee_t = ep["ee_pose"]["data"], ep["ee_pose"]["capture_stamp"]
    t0 = float(q_t[0])
    if mode == "joints":
        scene.set_q(q_rec[0])
        arm.hold()
    steps = _schedule(ep, mode)
    renderer = CameraRenderer(scene, *ep["front_rgb"]["data"].shape[1:3]) if video and "front_rgb" in ep else None
    frames, joint_err, tcp_err = [], [], []
    t_sim = t0
    check_times = iter(np.concatenate((ee_t, [np.inf])))
    next_check = next(check_times)
    frame_times = iter(np.concatenate((ep["front_rgb"]["capture_stamp"], [np.inf])) if renderer else [np.inf])
    next_frame = next(frame_times)
    for t_cmd, command in steps:
        if mode == "actions":
            pos, quat, grip = command
            arm.command_pose(pos, quat, grip, max(arm.dt, t_cmd[1] - t_cmd[0]))
        else:
            arm.command_joints(command[0], command[1], max(arm.dt, t_cmd[1] - t_cmd[0]))
        while t_sim < t_cmd[1]:
            arm.step()
            t_sim += arm.dt
            while next_check <= t_sim:
                q_ref = _latest(q_t, q_rec, next_check, q_rec[0])
                joint_err.append(float(np.abs(scene.q - q_ref).max()))
                tcp_err.append(float(np.linalg.norm(scene.ee_pose()[0] - _latest(ee_t, ee_rec, next_check, ee_rec[0])[:3])))
                next_check = next(check_times)
            while renderer is not None and next_frame <= t_sim:
                recorded = _latest(ep["front_rgb"]["capture_stamp"], ep["front_rgb"]["data"], next_frame, None)
                frames.append(np.concatenate((recorded, renderer.render("front")), axis=1))
                next_frame = next(frame_times)
    success = bool(task.success(scene)) if task is not None else None
    report = {
        "store": str(store_path), "episode": episode, "mode": mode, "robot": robot, "task": task_name,
        "seed": meta.get("seed"), "recorded_success": meta.get("success"), "replayed_success": success,
        "same_outcome": success == meta.get("success") if meta.get("success") is not None else None,
        "joint_error_max_rad": max(joint_err, default=float("nan")),
        "joint_error_mean_rad": float(np.mean(joint_err)) if joint_err else float("nan"),
        "tcp_error_max_m": max(tcp_err, default=float("nan")),
        "tcp_error_mean_m": float(np.mean(tcp_err)) if tcp_err else float("nan"),
        "final_objects": _object_positions(scene),
    }
    if meta.get("final_sim_state"):
        recorded = _objects_from_state(robot, meta["final_sim_state"])
        report["final_object_error_m"] = max(float(np.linalg.norm(np.subtract(report["final_objects"][k], v)))
                                             for k, v in recorded.items())
    if renderer is not None:
        renderer.close()
        report["video"] = str(write_mp4(video, frames, fps=max(1.0, len(frames) / max(t_sim - t0, 1e-3))))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=2))
    return report


def _objects_from_state(robot: str, state: list[float]) -> dict[str, list[float]]:
    """Object positions in a /sim/state vector (stamp, time, qpos, mocap) as recorded."""
    scene = Scene(robot)
    scene.load_state_message(state)
    return _object_positions(scene)


def _schedule(ep: dict, mode: str) -> list:
    """(time interval, command) pairs in recorded order."""
    if mode == "actions":
        if "action_pose" not in ep:
            raise ValueError("the episode has no recorded actions (action_pose)")
        tp, poses = ep["action_pose"]["capture_stamp"], ep["action_pose"]["data"]
        g = ep.get("action_gripper")
        # every pose or gripper command starts a step: a release sent after the last pose must still happen
        t = np.union1d(tp, g["capture_stamp"][g["capture_stamp"] > tp[0]]) if g else tp
        pose_at = [_latest(tp, poses, ti, poses[0]) for ti in t]
        grips = [float(_latest(g["capture_stamp"], g["data"], ti, [0.0])[0]) if g else 0.0 for ti in t]
        ends = np.append(t[1:], t[-1] + 1.0)          # hold the last target for a second
        return [((t[i], ends[i]), (pose_at[i][:3], pose_at[i][3:], grips[i])) for i in range(len(t))]
    t = ep["joint_pos"]["capture_stamp"]
    q = ep["joint_pos"]["data"]
    width = ep["gripper"]["data"][:, 0] if "gripper" in ep else np.zeros(len(t))
    width_t = ep["gripper"]["capture_stamp"] if "gripper" in ep else t
    opening = max(float(width.max()), 1e-3)
    ends = np.append(t[1:], t[-1] + 0.5)
    return [((t[i], ends[i]), (q[i], float(1.0 - _latest(width_t, width, t[i], opening) / opening)))
            for i in range(len(t))]
