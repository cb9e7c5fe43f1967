"""A ZeroMimic episode on the robot twin: grasp stage, then the post-grasp skill policy.

1. Where to touch: the affordance net on the front camera's first frame (or a pixel given by the caller).
2. A grasp there from the front camera's depth image (`antipodal_grasp`), reached by a straight approach
   from above and closed. No grasp found: the episode stops with the reason and the arm holds.
3. The skill: the policy's wrist-pose chunks, mapped to TCP targets in base, `execute_steps` at a time,
   gripper closed. When a chunk moves the TCP less than `done_motion` for `done_decisions` decisions in a
   row the skill has ended and the gripper opens (ZeroMimic's policies predict no gripper: the release is
   the runner's).

Everything goes through the env's canonical actions (in the graph: the arm node's safety envelope).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_stack.policies.conditioning.wrist_pose import camera_pose_vector
from robot_stack.policies.zeromimic.grasp import GraspConfig, NoGraspFound, antipodal_grasp, predict_pixel
from robot_stack.sim.camera import CameraRenderer, extrinsics, intrinsics
from robot_stack.sim.tasks.base import Waypoint, WaypointExpert
from robot_stack.types import Observation, Task


@dataclass
class DeployConfig:
    depth_hw: tuple = (240, 426)   # the front camera's depth image for the grasp: 16:9, wider than the policy's 3:4
    #                                (a closed drawer's handle is just outside the front camera's 3:4 view)
    grasp_steps: int = 150         # at most this many steps to reach and close
    skill_steps: int = 120
    done_motion: float = 0.006     # m of TCP motion over a chunk below which the skill is over
    done_decisions: int = 3
    release_steps: int = 5


def grasp_stage(env, pixel: np.ndarray | None, affordance=None, cfg: DeployConfig | None = None,
                grasp_cfg: GraspConfig | None = None) -> dict:
    """Find the grasp on the current scene and execute it; returns what happened (`grasped` or `reason`)."""
    cfg = cfg or DeployConfig()
    scene, (h, w) = env.scene, cfg.depth_hw
    renderer = CameraRenderer(scene, h, w)
    try:
        depth = renderer.render_depth("front")
        rgb = renderer.render("front")
    finally:
        renderer.close()
    if pixel is None:
        import cv2
        ah = affordance.image_hw[0]                    # fully convolutional: the wide view at the trained scale
        aw = round(ah * w / h)
        small = cv2.resize(rgb, (aw, ah), interpolation=cv2.INTER_AREA)
        pixel = predict_pixel(affordance, small) * (h / ah)
    try:
        camera = extrinsics(scene, "front")
        away = camera[:3, 2] * [1.0, 1.0, 0.0]           # fingers pointing away from the camera, as the hands did
        pos, quat, width = antipodal_grasp(depth, intrinsics(scene, "front", h, w), camera,
                                           np.asarray(pixel, dtype=float), grasp_cfg, heading=away)
    except NoGraspFound as exc:
        return {"grasped": False, "reason": f"no grasp found: {exc}", "pixel": np.asarray(pixel).tolist()}
    fixed = lambda p: (lambda _s: (p, quat))       # noqa: E731
    expert = WaypointExpert([Waypoint(fixed(pos + [0, 0, 0.08]), 0.0, tol=0.01),
                             Waypoint(fixed(pos), 0.0, speed=0.12, tol=0.006),
                             Waypoint(fixed(pos), 1.0, settle=4, tol=0.02)], env.policy_dt, scene.ee_pose())
    obs, info = None, {}
    for _ in range(cfg.grasp_steps):
        if expert.done:
            break
        obs, _, _, _, info = env.step(expert.act(scene))
    return {"grasped": expert.done, "grasp": pos.tolist(), "width": width, "pixel": np.asarray(pixel).tolist(),
            "obs": obs, "success": bool(info.get("success", False)),
            **({} if expert.done else {"reason": "the approach did not finish"})}


def run_skill(env, policy, goal_image: np.ndarray, obs: dict, cfg: DeployConfig | None = None) -> dict:
    """The post-grasp policy until success, the end of the skill (then release) or `skill_steps`."""
    cfg = cfg or DeployConfig()
    cam = policy.config.camera
    task = Task(goal_image=goal_image, camera_pose=camera_pose_vector(extrinsics(env.scene, cam)),
                skill=policy.config.skill)
    policy.reset(task)
    steps, still, success, t = 0, 0, False, 0.0
    execute = policy.config.execute_steps
    while steps < cfg.skill_steps and not success:
        chunk = policy.act(Observation(stamp=t, images={cam: obs[cam]}, ee_pose=obs["ee_pose"],
                                       gripper=float(obs["gripper"][0])))
        motion = float(np.linalg.norm(chunk.positions[-1] - obs["ee_pose"][:3]))
        still = still + 1 if motion < cfg.done_motion else 0
        if still >= cfg.done_decisions:
            break
        for k in range(min(execute, len(chunk.positions))):
            obs, _, _, _, info = env.step(np.concatenate((chunk.positions[k], chunk.quats[k], [1.0])))
            steps += 1
            t += env.policy_dt
            success = info["success"]
            if success:
                break
    released = False
    if not success:                                    # the skill is over: let go and see
        hold = obs["ee_pose"]
        for _ in range(cfg.release_steps):
            obs, _, _, _, info = env.step(np.concatenate((hold, [0.0])))
            success = success or info["success"]
        released = True
    return {"success": bool(success), "skill_steps": steps, "released": released}


def run_episode(env, policy, seed: int, goal_image: np.ndarray, affordance=None, pixel=None,
                cfg: DeployConfig | None = None) -> dict:
    obs, _ = env.reset(seed=seed)
    grasp = grasp_stage(env, pixel, affordance, cfg)
    if not grasp["grasped"]:
        return {"seed": seed, "success": False, "reason": grasp["reason"]}
    result = run_skill(env, policy, goal_image, grasp["obs"], cfg)
    return {"seed": seed, **result, "grasp": grasp["grasp"], "pixel": grasp["pixel"]}


def expert_goal(task: str, robot: str, seed: int, hw: tuple) -> np.ndarray:
    """The goal image as a user would give it: the task's final frame from the robot's front camera, here the
    scripted expert's on `seed`."""
    from robot_stack.sim.env import make_env
    from robot_stack.sim.rollout import run_expert
    env = make_env(task, robot=robot, cameras=("front",), image_size=tuple(hw))
    try:
        return run_expert(env, seed, goal_size=tuple(hw)).goal_image
    finally:
        env.close()


def evaluate(checkpoint: str, task: str, robot: str, episodes: int, seed: int, affordance: str | None = None,
             goal_seed: int | None = None, oracle_pixel: bool = False, cfg: DeployConfig | None = None,
             progress: bool = True) -> dict:
    """`episodes` seeded ZeroMimic episodes in the twin; success with its 95% Wilson interval."""
    from tqdm import tqdm

    from robot_stack.evaluate import wilson_interval
    from robot_stack.policies.base import load_policy
    from robot_stack.policies.zeromimic.affordance import load_affordance
    from robot_stack.sim.camera import project
    from robot_stack.sim.env import make_env
    cfg = cfg or DeployConfig()
    policy = load_policy(checkpoint)
    if task != policy.config.skill:
        raise ValueError(f"{checkpoint} is the {policy.config.skill!r} skill, not {task!r}")
    net = load_affordance(affordance) if affordance else None
    if net is None and not oracle_pixel:
        raise ValueError("the grasp stage needs --affordance CKPT (or --oracle-affordance for the ablation)")
    hw = policy.config.image_hw
    env = make_env(task, robot=robot, cameras=(policy.config.camera,), image_size=tuple(hw))
    records = []
    for s in tqdm(range(seed, seed + episodes), desc=f"zeromimic {task} {robot}", disable=not progress):
        goal = expert_goal(task, robot, s if goal_seed is None else goal_seed, hw)
        pixel = None
        if oracle_pixel:
            env.reset(seed=s)
            h, w = cfg.depth_hw
            point = env.scene.handle_pos() if task.startswith("drawer") else env.scene.block_pos(env.task.params.color)
            pixel = project(point, intrinsics(env.scene, "front", h, w), extrinsics(env.scene, "front"))[0][0]
        records.append(run_episode(env, policy, s, goal, affordance=net, pixel=pixel, cfg=cfg))
    env.close()
    n_ok = sum(r["success"] for r in records)
    low, high = wilson_interval(n_ok, len(records))
    return {"checkpoint": checkpoint, "task": task, "robot": robot, "episodes": len(records), "successes": n_ok,
            "success_rate": n_ok / max(len(records), 1), "ci95": [low, high],
            "grasp_failures": sum("reason" in r for r in records), "records": records}
