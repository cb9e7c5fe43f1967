"""Playing action chunks: the target at a time, and temporal ensembling of overlapping chunks.

A chunk's step k is the target to reach at times[k]. Between steps the target is
interpolated; steps already in the past are skipped (latency compensation: a chunk that
arrives late starts where the plan is now, not at its first step). When a new chunk
overlaps the one being played, `blend_chunks` averages the two plans over the overlap
(ACT's temporal ensembling with two members) so consecutive plans do not jerk the arm.
"""
from __future__ import annotations

import numpy as np

from robot_stack import transforms as tf
from robot_stack.types import ActionChunk


def chunk_target_at(chunk: ActionChunk, t: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The chunk's target at time t: steps already past are skipped, between steps it interpolates."""
    i = int(np.searchsorted(chunk.times, t))
    if i == 0:
        return chunk.positions[0], chunk.quats[0], float(chunk.gripper[0])
    if i >= len(chunk):
        return chunk.positions[-1], chunk.quats[-1], float(chunk.gripper[-1])
    a = (t - chunk.times[i - 1]) / (chunk.times[i] - chunk.times[i - 1])
    pos = (1 - a) * chunk.positions[i - 1] + a * chunk.positions[i]
    return pos, tf.slerp(chunk.quats[i - 1], chunk.quats[i], a), float(chunk.gripper[i])


def blend_chunks(old: ActionChunk, new: ActionChunk, weight_old: float) -> ActionChunk:
    """`new`, with each step inside `old`'s time span moved `weight_old` of the way towards `old`'s plan there."""
    pos, quat, grip = new.positions.copy(), new.quats.copy(), new.gripper.copy()
    for k, t in enumerate(new.times):
        if old.times[0] <= t <= old.times[-1]:
            p_old, q_old, g_old = chunk_target_at(old, t)
            pos[k] = (1 - weight_old) * pos[k] + weight_old * p_old
            quat[k] = tf.slerp(quat[k], q_old, weight_old)
            grip[k] = (1 - weight_old) * grip[k] + weight_old * g_old
    return ActionChunk(new.times.copy(), pos, quat, grip)
