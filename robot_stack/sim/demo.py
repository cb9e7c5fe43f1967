"""`robot-stack sim demo`: scripted experts over seeded episodes, success per task and robot."""
from __future__ import annotations

import json
import math
from pathlib import Path

from tqdm import tqdm

from robot_stack.sim.env import make_env
from robot_stack.robots.spec import ROBOTS
from robot_stack.sim.rollout import run_expert
from robot_stack.sim.tasks import TASKS
from robot_stack.video import write_mp4


def _names(value: str, valid: dict, kind: str) -> list[str]:
    if value == "all":
        return list(valid)
    names = value.split(",")
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"unknown {kind} {', '.join(unknown)}; valid {kind}s: {', '.join(valid)} (or 'all')")
    return names


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a success rate."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def run_demo(task: str, robot: str, episodes: int, seed: int, video: str | None = None,
             json_path: str | None = None, progress: bool = True) -> dict:
    tasks = _names(task, TASKS, "task")
    robots = _names(robot, ROBOTS, "robot")
    rows, records = [], []
    for robot_name in robots:
        for task_name in tasks:
            env = make_env(task_name, robot_name, cameras=(), terminate_on_success=False)
            successes, steps = 0, 0
            bar = tqdm(range(seed, seed + episodes), desc=f"{task_name:>12} {robot_name:<5}", disable=not progress,
                       leave=False)
            for s in bar:
                ep = run_expert(env, s, record_frames=video is not None)
                successes += ep.success
                steps += ep.steps
                records.append(ep.summary())
                if video:
                    write_mp4(Path(video) / f"{task_name}_{robot_name}_seed{s}.mp4", ep.frames, fps=1 / env.policy_dt)
                bar.set_postfix(success=f"{successes}/{bar.n + 1}")
            env.close()
            low, high = wilson_interval(successes, episodes)
            rows.append({"task": task_name, "robot": robot_name, "episodes": episodes, "successes": successes,
                         "success_rate": successes / episodes, "ci95": [round(low, 3), round(high, 3)],
                         "mean_steps": steps / episodes})
            print(f"{task_name:>12} {robot_name:<5} {successes:>4}/{episodes:<4} {100 * successes / episodes:5.1f}%  "
                  f"(95% CI {100 * low:.0f}-{100 * high:.0f}%)  mean steps {steps / episodes:.1f}", flush=True)
    result = {"seed": seed, "episodes": episodes, "results": rows, "episode_records": records}
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2))
    return result
