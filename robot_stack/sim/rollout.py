"""Scripted-expert episodes with their hindsight labels."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robot_stack.sim.env import TwinEnv

SETTLE_STEPS = 2     # steps recorded after success so the final frame shows the outcome at rest


@dataclass
class ExpertEpisode:
    task: str
    robot: str
    seed: int
    success: bool
    steps: int
    instruction: str
    params: dict
    actions: np.ndarray                    # (T, 8) canonical actions
    ee_path: np.ndarray                    # (T + 1, 7) TCP pose, from the reset onwards
    gripper_events: list[tuple[int, str]]  # (step, "close" | "open")
    contact_phase: list[str]               # per step, after the action
    goal_image: np.ndarray | None = None   # final front frame
    frames: list[np.ndarray] = field(default_factory=list)

    def summary(self) -> dict:
        return {"task": self.task, "robot": self.robot, "seed": self.seed, "success": self.success,
                "steps": self.steps, "instruction": self.instruction, "params": self.params,
                "gripper_events": self.gripper_events}


def gripper_events(commands: np.ndarray) -> list[tuple[int, str]]:
    """Steps at which the commanded gripper crosses 0.5, and which way."""
    closed = np.asarray(commands) > 0.5
    events = []
    for t in range(1, len(closed)):
        if closed[t] != closed[t - 1]:
            events.append((t, "close" if closed[t] else "open"))
    if len(closed) and closed[0]:
        events.insert(0, (0, "close"))
    return events


class PositionNoise:
    """DART-style disturbance (Laskey et al. 2017): an offset added to the position the expert commands.

    The arm executes the disturbed target while the episode records the expert's own, so the data
    holds states off the expert's path labelled with the expert's way back: the states a cloned
    policy drifts into. The offset is a per-axis AR(1) process (stationary std `std` in x and y, half
    of it in z, where the table and the grasp height leave little room), correlated over
    about 1 / (1 - correlation) steps so that it moves the arm rather than shaking it.

    While the expert holds its target still it is waiting for the arm to settle there (before a
    grasp, a release, a push); the offset then only decays, so the arm settles within the expert's
    tolerance and the expert goes on as it would undisturbed. Without this the arm sat off the
    release point until the waypoint timed out, and a policy cloned from such data learned to hold
    the block over the bowl (docs/results.md, "Disturbed demonstrations (DART)")."""

    def __init__(self, std: float, rng: np.random.Generator, correlation: float = 0.8):
        if std < 0 or not 0 <= correlation < 1:
            raise ValueError(f"position noise needs std >= 0 and 0 <= correlation < 1, got {std}, {correlation}")
        self.scale = std * np.array([1.0, 1.0, 0.5])
        self.a = correlation
        self.rng = rng
        self.offset = self.scale * rng.standard_normal(3)

    def __call__(self, action: np.ndarray, held: bool = False) -> np.ndarray:
        """The action to execute: `action` with the current offset on its position; the offset then moves on
        (`held`: the expert's target has not moved since the last step, so no new noise enters)."""
        executed = action.copy()
        executed[:3] += self.offset
        noise = 0.0 if held else np.sqrt(1 - self.a ** 2) * self.scale * self.rng.standard_normal(3)
        self.offset = self.a * self.offset + noise
        return executed


def expert_steps(env: TwinEnv, seed: int, position_noise: float = 0.0):
    """One seeded expert episode as (obs, action, info): first the reset (action None), then each step's result.

    The one place an expert episode ends: SETTLE_STEPS steps after success (so the last frame shows
    the outcome at rest), at the time limit without success, or at the limit plus the settling steps.
    `position_noise` (metres, 0 = off): the arm executes the expert's target disturbed by
    `PositionNoise`; the yielded action is always the expert's own.
    """
    obs, info = env.reset(seed=seed)
    yield obs, None, info
    expert = env.task.expert(env.scene, np.random.default_rng(seed + 1), env.policy_dt)
    disturb = PositionNoise(position_noise, np.random.default_rng(seed + 2)) if position_noise > 0 else None
    success, after, last = False, 0, None
    while True:
        action = expert.act(env.scene)
        held = last is not None and np.allclose(action[:3], last, rtol=0.0, atol=1e-5)
        last = action[:3].copy()
        obs, _, _, truncated, info = env.step(disturb(action, held) if disturb else action)
        yield obs, action, info
        success = success or info["success"]
        after += success
        if after > SETTLE_STEPS or (truncated and not success) or env.steps >= env.task.max_steps + SETTLE_STEPS:
            return


def run_expert(env: TwinEnv, seed: int, record_frames: bool = False, goal_size: tuple[int, int] | None = None,
               frame_size: tuple[int, int] = (240, 320)) -> ExpertEpisode:
    """Run the task's scripted expert for one seeded episode and label it in hindsight."""
    actions, path, phases, frames = [], [], [], []
    grab = lambda: np.concatenate([env.render_camera(c, frame_size) for c in ("front", "wrist")], axis=1)  # noqa: E731
    for obs, action, info in expert_steps(env, seed):
        path.append(obs["ee_pose"])
        if record_frames:
            frames.append(grab())
        if action is not None:
            actions.append(action)
            phases.append(info["contact_phase"])
    success = info["success"]
    actions = np.array(actions)
    goal = env.render_camera("front", goal_size) if goal_size else None
    return ExpertEpisode(
        task=env.task.name, robot=env.scene.spec.name, seed=seed, success=bool(success), steps=env.steps,
        instruction=env.instruction, params=env.task.params.as_dict(), actions=actions, ee_path=np.array(path),
        gripper_events=gripper_events(actions[:, 7]), contact_phase=phases, goal_image=goal, frames=frames)
