"""Playing action chunks: the target at a time, and temporal ensembling of overlapping chunks.

A chunk's step k is the target to reach at times[k]. Between steps the target is
interpolated; steps already in the past are skipped (latency compensation: a chunk that
arrives late starts where the plan is now, not at its first step). When a new chunk
overlaps the one being played, `blend_chunks` averages the two plans over the overlap
(ACT's temporal ensembling with two members) so consecutive plans do not jerk the arm.

`check_chunk` is the chunk's admission: a chunk is a command that keeps the arm moving until its
last step, so it is bounded in time like any other command (the watchdog's promise would
otherwise be as long as the chunk). It is vectorised and runs off the control thread: the loop
only ever receives a checked ActionChunk.
"""
from __future__ import annotations

import numpy as np

from robot_stack import transforms as tf
from robot_stack.control.safety import SafetyEnvelope, SafetyViolation
from robot_stack.types import ActionChunk


def check_chunk(chunk: ActionChunk, envelope: SafetyEnvelope, now: float, horizon: float) -> ActionChunk:
    """The chunk as it may be played: steps clipped into the box, unit quaternions; or SafetyViolation.

    Refused: steps all in the past, a span (first to last step) longer than `horizon`, a last step
    more than `horizon` after `now` (a stamp far in the future, or a plan the watchdog could not
    bound), non-finite values."""
    times = np.asarray(chunk.times, dtype=float)
    pos = np.asarray(chunk.positions, dtype=float)
    quat = np.asarray(chunk.quats, dtype=float)
    grip = np.asarray(chunk.gripper, dtype=float)
    if not (np.isfinite(times).all() and np.isfinite(pos).all() and np.isfinite(quat).all() and np.isfinite(grip).all()):
        raise SafetyViolation("non-finite values in the action chunk")
    span = float(times[-1] - times[0])
    if span > horizon:
        raise SafetyViolation(f"chunk spans {span:.3f} s ({len(times)} steps), longer than the {horizon} s horizon")
    ahead = float(times[-1] - now)
    if ahead > horizon:
        raise SafetyViolation(f"chunk's last step is {ahead:.3f} s ahead of now, beyond the {horizon} s horizon "
                              f"(a stamp in the future?)")
    if ahead < 0:
        raise SafetyViolation(f"every step of the chunk is already in the past (last step {-ahead:.3f} s ago)")
    norms = np.linalg.norm(quat, axis=1)
    if np.any(norms < 1e-6):
        raise SafetyViolation("zero quaternion in the action chunk")
    quat = quat / norms[:, None]
    clipped = np.clip(pos, envelope.low, envelope.high)
    moved = np.flatnonzero(np.any(clipped != pos, axis=1))
    if moved.size:
        k = int(moved[0])
        envelope.events.add("workspace_clip", f"{moved.size} chunk steps, first {np.round(pos[k], 3).tolist()} -> "
                                              f"{np.round(clipped[k], 3).tolist()}")
    g = np.clip(grip, 0.0, 1.0)
    if np.any(g != grip):
        envelope.events.add("gripper_clip", f"chunk gripper outside [0, 1]: {grip.min()}..{grip.max()}")
    return ActionChunk(times.copy(), clipped, quat, g)


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
