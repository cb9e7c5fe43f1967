"""Online RLPD in the twin in one process: the Actor and the Learner called directly, no transport.

This is the reproducible path for results and tests; the ROS 2 nodes run the same two roles
apart. Training episodes use seeds from `train_seed` upwards, evaluation seeds from `eval.seed`
(disjoint), with the deterministic policy. Writes `curve.png` (success against env steps and
wall time), `curve.json`, and checkpoints (`checkpoint/`, resumable) to `out`.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from robot_stack.evaluate import wilson_interval
from robot_stack.learner.demos import demo_transitions
from robot_stack.learner.rlpd import RLPDAgent, RLPDConfig
from robot_stack.learner.roles import Actor, Learner, LearnerSettings
from robot_stack.learner.specs import specs_for


class LearnedReward(gym.Wrapper):
    """Reward and termination from `reward_fn(obs) -> (reward, success)` instead of the task's predicate."""

    def __init__(self, env, reward_fn):
        super().__init__(env)
        self.reward_fn = reward_fn

    def step(self, action):
        obs, _, _, truncated, info = self.env.step(action)
        reward, success = self.reward_fn(obs)
        info = {**info, "task_success": info["success"], "success": bool(success), "is_success": bool(success)}
        return obs, reward, bool(success), bool(truncated and not success), info


def learned_reward(cfg: DictConfig):
    """The reward classifier named by `reward_classifier` as `obs -> (reward, success)` (None for the task's
    reward), and the cameras the env must render: the policy's and the classifier's."""
    cameras = tuple(cfg.obs.cameras)
    if not cfg.reward_classifier:
        return None, cameras
    from robot_stack.learner.reward_classifier import load_reward_classifier, reward_fn
    classifier = load_reward_classifier(cfg.reward_classifier)
    return reward_fn(classifier), tuple(dict.fromkeys((*cameras, *classifier.config.cameras)))


def make_learning_env(cfg: DictConfig):
    from robot_stack.sim.env import DeltaAction, make_env

    reward_fn, cameras = learned_reward(cfg)
    env = make_env(cfg.task, robot=cfg.robot.name, cameras=cameras, image_size=cfg.obs.image_size,
                   reward=cfg.reward)
    env.arm.log_warnings = False         # exploration pushes targets past the workspace all the time; clipping is intended
    env = DeltaAction(env, cfg.action.max_translation, cfg.action.max_rotation)
    return LearnedReward(env, reward_fn) if reward_fn is not None else env


def make_agent(cfg: DictConfig) -> RLPDAgent:
    obs_spec, action_spec = specs_for(cfg)
    agent_cfg = RLPDConfig.from_dict(OmegaConf.to_container(cfg.agent, resolve=True))
    return RLPDAgent(obs_spec, action_spec, agent_cfg, seed=cfg.seed)


def load_demos(cfg: DictConfig, agent: RLPDAgent) -> list:
    if not cfg.demos:
        return []
    return demo_transitions(cfg.demos, agent.obs_spec, agent.action_spec, cfg.action.max_translation,
                            cfg.action.max_rotation, penalty=cfg.grasp_penalty)


def resume_or_build(cfg: DictConfig, ckpt: Path) -> tuple[Learner, dict | None]:
    """The learner saved at `ckpt` with its run state (state.json), or a fresh one from cfg and the demos and None."""
    settings = LearnerSettings(cfg.buffer_capacity, cfg.seed)
    for saved in (ckpt, ckpt.with_name(ckpt.name + ".old")):     # .old alone: killed in the middle of a swap
        if (saved / "state.json").exists():
            return Learner.load(saved, settings), json.loads((saved / "state.json").read_text())
    agent = make_agent(cfg)
    return Learner(agent, load_demos(cfg, agent), settings), None


def evaluate(env, actor: Actor, episodes: int, seed: int) -> dict:
    """Deterministic policy on seeds seed .. seed + episodes - 1: success rate with a 95% Wilson interval."""
    outcomes = []
    for k in range(episodes):
        for _ in actor.episode_steps(env, seed + k, deterministic=True):
            pass
        outcomes.append(actor.outcome)
    successes = sum(o["success"] for o in outcomes)
    lo, hi = wilson_interval(successes, episodes)
    return {"success_rate": successes / episodes, "successes": successes, "episodes": episodes,
            "ci95": [lo, hi], "mean_length": float(np.mean([o["length"] for o in outcomes]))}


def plot_curve(curve: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, label in ((axes[0], "env_steps", "env steps"), (axes[1], "wall_s", "wall time (s)")):
        x = [p[key] for p in curve]
        y = [p["success_rate"] for p in curve]
        lo = [p["ci95"][0] for p in curve]
        hi = [p["ci95"][1] for p in curve]
        ax.plot(x, y, marker="o")
        ax.fill_between(x, lo, hi, alpha=0.2)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("evaluation success (95% CI)")
    axes[0].set_ylim(-0.02, 1.02)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(cfg: DictConfig, progress: bool = True) -> dict:
    torch.set_num_threads(int(cfg.threads))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    env = make_learning_env(cfg)
    ckpt = out / "checkpoint"
    learner, state = resume_or_build(cfg, ckpt)
    state = state or {"env_steps": 0, "episodes": 0, "wall_s": 0.0, "curve": [], "train_successes": []}
    agent = learner.agent
    actor = Actor(agent, seed=cfg.seed + state["episodes"], grasp_penalty=cfg.grasp_penalty,
                  random_steps=max(0, cfg.random_steps - state["env_steps"]))
    actor.episodes = state["episodes"]
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    start = time.monotonic() - state["wall_s"]
    next_eval = (state["env_steps"] // cfg.eval.every + 1) * cfg.eval.every
    next_ckpt = (state["env_steps"] // cfg.checkpoint_every + 1) * cfg.checkpoint_every
    metrics: dict = {}
    bar = tqdm(total=cfg.env_steps, initial=state["env_steps"], desc=f"rlpd {cfg.task}", unit="step",
               disable=not progress)

    def record_eval(episodes: int) -> dict:
        result = evaluate(env, actor, episodes, cfg.eval.seed)
        point = {"env_steps": state["env_steps"], "wall_s": round(time.monotonic() - start, 1),
                 "updates": agent.updates, **result}
        state["curve"].append(point)
        plot_curve(state["curve"], out / "curve.png", f"RLPD {cfg.task} ({cfg.robot.name}), "
                   f"{'state' if not cfg.obs.cameras else '+'.join(cfg.obs.cameras)} observations")
        (out / "curve.json").write_text(json.dumps(state["curve"], indent=1))
        bar.write(f"eval at {point['env_steps']} steps ({point['wall_s']:.0f} s): "
                  f"{result['successes']}/{episodes} success")
        return point

    while state["env_steps"] < cfg.env_steps:
        for transition in actor.episode_steps(env, cfg.train_seed + state["episodes"]):
            learner.ingest(transition)
            state["env_steps"] += 1
            bar.update(1)
            if len(learner.online_buffer) >= cfg.learning_starts:
                for _ in range(cfg.updates_per_step):
                    metrics = learner.update()
        state["episodes"] += 1
        state["train_successes"].append(actor.outcome["success"])
        recent = state["train_successes"][-20:]
        bar.set_postfix(train_success=f"{np.mean(recent):.2f}", q=f"{metrics.get('q_mean', 0):.2f}",
                        alpha=f"{metrics.get('alpha', 0):.3f}")
        if state["env_steps"] >= next_eval and state["env_steps"] < cfg.env_steps:
            record_eval(cfg.eval.episodes)
            next_eval += cfg.eval.every
        if state["env_steps"] >= next_ckpt:
            save_checkpoint(learner, ckpt, state, start)
            next_ckpt += cfg.checkpoint_every
    bar.close()
    final = record_eval(cfg.eval.final_episodes)
    save_checkpoint(learner, ckpt, state, start)
    summary = {"task": cfg.task, "robot": cfg.robot.name, "env_steps": state["env_steps"], "episodes": state["episodes"],
               "updates": agent.updates, "wall_s": final["wall_s"], "final": final,
               "rejected_transitions": dict(learner.rejected), "out": str(out)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    env.close()
    return summary


def save_checkpoint(learner: Learner, path: Path, state: dict, start: float) -> None:
    """Write to a sibling folder, then swap it in: a kill while saving leaves the previous checkpoint (as `path`,
    or as `path.old` between the two renames, which `resume_or_build` reads)."""
    import shutil
    state = {**state, "wall_s": time.monotonic() - start}
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    learner.save(tmp)
    (tmp / "state.json").write_text(json.dumps(state))
    old = path.with_name(path.name + ".old")
    if path.exists():
        # an .old beside a complete checkpoint is a swap a kill interrupted after its second step: not needed
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)
