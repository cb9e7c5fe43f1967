"""Waypoint plans for sketch-conditioned evaluation, from what the scene shows and never from the scripted experts.

RT-Trajectory's policy can be given a sketch by anything that writes a 3D path: a person, a motion planner, a
language model asked for waypoints. This is such a writer: per seed it resets the twin, reads the facts a
perception system would report (the named block, the bowl, the marked spot, the yellow zone, the TCP's start)
and composes a plan from a small motion vocabulary (go above, descend, close, lift, carry, set down, open, push).
It does not call the tasks' experts or read their waypoints, so `--sketch-waypoints DIR` measures the policy on
sketches that are not the expert's. Each plan is `DIR/seed_<N>.json`, `[{"position": [x, y, z], "gripper":
0|1}, ...]` in the arm's base frame, as `robot-stack eval --sketch-waypoints DIR` reads them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from robot_stack.sim.scene import BLOCK_HALF, Scene
from robot_stack.sim.tasks.push_around import segment_distance

CLEAR = 0.12                # carry and approach height of the TCP (m)
ARC_TOP = 0.24              # the top of a carry over an obstacle
GRASP_Z = BLOCK_HALF        # the TCP at a block's centre on the table
SET_DOWN_Z = BLOCK_HALF + 0.005
PUSH_Z = 0.015              # fingertips just above the table
PUSH_STANDOFF = 0.05        # TCP behind the block's centre before a push leg
PLANNED_TASKS = ("place_at", "out_of_bowl", "arc_over_bowl", "push_around")


def _wp(xy, z: float, gripper: float) -> dict:
    return {"position": [float(xy[0]), float(xy[1]), float(z)], "gripper": float(gripper)}


def _pick(start: np.ndarray, block: np.ndarray) -> list[dict]:
    """From the start pose: above the block, down to it, close, back up."""
    z = max(float(block[2]), GRASP_Z)
    above = max(CLEAR, z + 0.08)
    return [_wp(start[:2], start[2], 0), _wp(block, above, 0), _wp(block, z, 0), _wp(block, z, 1),
            _wp(block, above, 1)]


def _set_down(xy) -> list[dict]:
    return [_wp(xy, CLEAR, 1), _wp(xy, SET_DOWN_Z, 1), _wp(xy, SET_DOWN_Z, 0), _wp(xy, CLEAR, 0)]


def _push_corner(block: np.ndarray, zone: np.ndarray, obstacle: np.ndarray) -> np.ndarray:
    """The corner of an L from block to zone (legs at right angles: the corner lies on the circle over the
    block-zone diameter) whose two legs pass farthest from the obstacle."""
    mid, radius = (block + zone) / 2, np.linalg.norm(zone - block) / 2
    best, best_clear = mid, -1.0
    for angle in np.linspace(-np.pi, np.pi, 72, endpoint=False):
        corner = mid + radius * np.array([np.cos(angle), np.sin(angle)])
        legs = (np.linalg.norm(corner - block), np.linalg.norm(zone - corner))
        if min(legs) < 0.3 * radius:                # a degenerate L is a straight push through the obstacle
            continue
        clear = min(segment_distance(obstacle, block, corner), segment_distance(obstacle, corner, zone))
        if clear > best_clear:
            best, best_clear = corner, clear
    return best


def _push_leg(frm: np.ndarray, to: np.ndarray) -> list[dict]:
    """Come down behind the block (seen from where it should go), push it there, rise."""
    d = (to - frm) / max(float(np.linalg.norm(to - frm)), 1e-9)
    behind, end = frm - PUSH_STANDOFF * d, to - (BLOCK_HALF + 0.01) * d
    return [_wp(behind, CLEAR, 1), _wp(behind, PUSH_Z, 1), _wp(end, PUSH_Z, 1), _wp(end, CLEAR, 1)]


def plan(task: str, scene: Scene, color: str) -> list[dict]:
    """A waypoint plan for `task` in the scene as it is now (after the episode's reset)."""
    start = scene.ee_pose()[0]
    block = scene.block_pos(color)
    if task in ("place_at", "out_of_bowl"):
        return _pick(start, block) + _set_down(scene.spot_pos()[:2])
    if task == "arc_over_bowl":
        bowl, spot = scene.body_pose("bowl")[0][:2], scene.spot_pos()[:2]
        return _pick(start, block) + [_wp(bowl, ARC_TOP, 1)] + _set_down(spot)
    if task == "push_around":
        zone, bowl = scene.target_zone_pos()[:2], scene.body_pose("bowl")[0][:2]
        corner = _push_corner(block[:2], zone, bowl)
        # pushes are made with the hand closed from the start, as the push task's episodes are: no close marker
        return [_wp(start[:2], start[2], 1)] + _push_leg(block[:2], corner) + _push_leg(corner, zone)
    raise ValueError(f"no waypoint plan for task {task!r}; planned tasks: {', '.join(PLANNED_TASKS)}")


def follow(env, waypoints: list[dict], step: float = 0.03, tolerance: float = 0.008) -> bool:
    """Drive the twin along a plan with no policy: toward each waypoint in steps of at most `step` metres, with
    the start orientation, then a few steps for the gripper; returns whether the task succeeded on the way. The
    plans' ceiling: what a sketch-conditioned policy could reach by tracing them exactly."""
    quat = env.scene.ee_pose()[1]
    success = False
    for w in waypoints:
        goal, grip = np.array(w["position"]), [w["gripper"]]
        for _ in range(80):
            tcp = env.scene.ee_pose()[0]
            delta = goal - tcp
            delta *= min(1.0, step / max(float(np.linalg.norm(delta)), 1e-9))
            *_, info = env.step(np.concatenate((tcp + delta, quat, grip)))
            success |= bool(info.get("success"))
            if np.linalg.norm(goal - env.scene.ee_pose()[0]) < tolerance:
                break
        for _ in range(3):
            *_, info = env.step(np.concatenate((goal, quat, grip)))
            success |= bool(info.get("success"))
    return success


def write_plans(task: str, robot: str, seed: int, episodes: int, out: str | Path,
                check: bool = False) -> tuple[list[Path], int | None]:
    """Reset the twin on each seed, plan from the scene, write DIR/seed_<N>.json; returns the files and, with
    `check`, on how many seeds following the plan (`follow`) did the task."""
    from robot_stack.sim.env import make_env

    if task not in PLANNED_TASKS:
        raise ValueError(f"no waypoint plan for task {task!r}; planned tasks: {', '.join(PLANNED_TASKS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = make_env(task, robot=robot, cameras=())
    files, followed = [], 0
    try:
        for s in range(seed, seed + episodes):
            env.reset(seed=s)
            waypoints = plan(task, env.scene, env.task.params.color)
            path = out / f"seed_{s}.json"
            path.write_text(json.dumps(waypoints, indent=1))
            files.append(path)
            followed += check and follow(env, waypoints)
    finally:
        env.close()
    return files, (followed if check else None)
