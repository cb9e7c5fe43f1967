"""Demonstrations from an episode store (zarr) as learner transitions.

A recorded step holds the observation and the absolute TCP target commanded then; the learner
acts in normalised deltas from the arm's set point (sim/env.DeltaAction), clipped to [-1, 1] and
restricted to the axes it drives. So each target is re-expressed against the set point that the
demo's own previous actions, as the agent would execute them, have reached: where the expert moved
faster than max_translation per step the set point lags and the next actions catch up. Against the
expert's previous target instead, every clipped step left a permanent offset (11/20 lift demos
reproduced when replayed through DeltaAction, grasps too high); against the measured TCP, 0/10.
Episodes end at their first successful step (terminated), or at their
last row (truncated), so a demo never teaches that the episode goes on after success.
"""
from __future__ import annotations

import numpy as np

from robot_stack.control.delta import apply_delta, delta_between
from robot_stack.data import EpisodeStore
from robot_stack.learner.replay import Transition
from robot_stack.learner.spaces import (ActionSpec, ObsSpec, SpecError, env_action, grasp_penalty, policy_action,
                                       state_sources, state_vector)

# env observation key -> recorded stream name
STREAMS = {"ee_pose": "ee_pose", "gripper": "gripper", "joint_pos": "joint_pos", "joint_vel": "joint_vel",
           "task_state": "task_state", "front": "front_rgb", "wrist": "wrist_rgb"}


def demo_transitions(path: str, obs_spec: ObsSpec, action_spec: ActionSpec, max_translation: float = 0.02,
                     max_rotation: float = 0.1, episodes=None, only_success: bool = True,
                     penalty: float = 0.0) -> list[Transition]:
    """Every step of the (successful) episodes as transitions; `penalty` is the gripper-change cost."""
    keys = (*state_sources(obs_spec.state_keys), *obs_spec.cameras)
    unknown = [k for k in keys if k not in STREAMS]
    if unknown:
        raise SpecError(f"no recorded stream for observation keys {unknown}; known: {sorted(STREAMS)}")
    out: list[Transition] = []
    with EpisodeStore.open(path) as store:
        needed = [STREAMS[k] for k in keys] + ["action_pose", "action_gripper", "reward"]
        missing = [s for s in needed if s not in store.streams]
        if missing:
            raise SpecError(f"{path}: demos need streams {missing} (write them with `robot-stack sim collect`)")
        for k in (range(store.num_episodes) if episodes is None else episodes):
            meta = store.metadata(k)
            if only_success and not meta.get("success", False):
                continue
            rows = {s: store.read_stream(k, s, parts=("data",))["data"] for s in needed}
            out.extend(_episode(rows, f"demo{k}", obs_spec, action_spec, max_translation, max_rotation, penalty))
    return out


def _episode(rows: dict, name: str, obs_spec: ObsSpec, action_spec: ActionSpec, max_translation: float,
             max_rotation: float, penalty: float) -> list[Transition]:
    def obs_at(t: int) -> dict:
        o = {"state": state_vector({k: rows[STREAMS[k]][t] for k in state_sources(obs_spec.state_keys)},
                                   obs_spec.state_keys)}
        for cam in obs_spec.cameras:
            o[cam] = np.asarray(rows[STREAMS[cam]][t], np.uint8)
        return o

    n = len(rows["reward"])
    observations = [obs_at(t) for t in range(n)]          # each row once: s' of step t is s of step t + 1
    gripper_before, out = 0.0, []
    set_point = np.asarray(rows["ee_pose"][0], np.float64)[:7].copy()
    for t in range(n - 1):
        target = rows["action_pose"][t]
        executed = delta_between(set_point[:3], set_point[3:7], target[:3], target[3:7],
                                 float(rows["action_gripper"][t][0]), max_translation, max_rotation)
        action, grip, gripper_after = policy_action(executed, action_spec, gripper_before)
        applied, _ = env_action(action, grip, action_spec, gripper_before)   # what DeltaAction will receive
        pos, quat, _ = apply_delta(applied, set_point[:3], set_point[3:7], max_translation, max_rotation)
        set_point = np.concatenate((pos, quat))
        reward = float(np.asarray(rows["reward"][t]))
        done = reward >= 1.0
        out.append(Transition(observations[t], action, grip, reward, observations[t + 1], terminated=done,
                              truncated=(t == n - 2 and not done),
                              grasp_penalty=grasp_penalty(grip, gripper_before, gripper_after, penalty),
                              episode=name, step=t))
        gripper_before = gripper_after
        if done:
            break
    return out
