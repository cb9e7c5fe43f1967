"""Demonstrations from an episode store (zarr) as learner transitions.

A recorded step holds the observation and the absolute TCP target commanded then; the learner
acts in normalised deltas from the arm's set point (sim/env.DeltaAction), so the action is
re-expressed against the previous step's target (the set point the arm was holding; the measured
TCP at the first step): Δposition / max_translation, rotation vector / max_rotation, clipped to
[-1, 1]. Against the measured TCP instead, the controller's lag inflates every delta (59% of
lift's z actions clipped at 2 cm, and 0/10 demos reproduced when replayed through DeltaAction). Episodes end at their first successful step (terminated), or at their
last row (truncated), so a demo never teaches that the episode goes on after success.
"""
from __future__ import annotations

import numpy as np

from robot_stack import transforms as tf
from robot_stack.data import EpisodeStore
from robot_stack.learner.replay import Transition
from robot_stack.learner.spaces import ActionSpec, ObsSpec, SpecError, grasp_penalty, policy_action

# env observation key -> recorded stream name
STREAMS = {"ee_pose": "ee_pose", "gripper": "gripper", "joint_pos": "joint_pos", "joint_vel": "joint_vel",
           "task_state": "task_state", "front": "front_rgb", "wrist": "wrist_rgb"}


def delta_action(reference: np.ndarray, target_pose: np.ndarray, gripper_cmd: float,
                 max_translation: float, max_rotation: float) -> np.ndarray:
    """The 7-D DeltaAction that moves the set point from `reference` to `target_pose` (both xyz + xyzw)."""
    dpos = (target_pose[:3] - reference[:3]) / max_translation
    drot = tf.quat_to_axis_angle(tf.quat_mul(target_pose[3:7], tf.quat_conj(reference[3:7]))) / max_rotation
    return np.clip(np.concatenate((dpos, drot, [2.0 * gripper_cmd - 1.0])), -1.0, 1.0)


def demo_transitions(path: str, obs_spec: ObsSpec, action_spec: ActionSpec, max_translation: float = 0.02,
                     max_rotation: float = 0.1, episodes=None, only_success: bool = True,
                     penalty: float = 0.0) -> list[Transition]:
    """Every step of the (successful) episodes as transitions; `penalty` is the gripper-change cost."""
    keys = (*obs_spec.state_keys, *obs_spec.cameras)
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
        o = {"state": np.concatenate([np.asarray(rows[STREAMS[k]][t], np.float32).ravel()
                                      for k in obs_spec.state_keys])}
        for cam in obs_spec.cameras:
            o[cam] = np.asarray(rows[STREAMS[cam]][t], np.uint8)
        return o

    n = len(rows["reward"])
    observations = [obs_at(t) for t in range(n)]          # each row once: s' of step t is s of step t + 1
    gripper_before, out = 0.0, []
    for t in range(n - 1):
        reference = rows["action_pose"][t - 1] if t else rows["ee_pose"][0]
        executed = delta_action(reference, rows["action_pose"][t], float(rows["action_gripper"][t][0]),
                                max_translation, max_rotation)
        action, grip, gripper_after = policy_action(executed, action_spec, gripper_before)
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
