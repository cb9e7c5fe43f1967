"""Human-like wrist motion: keyframes joined by minimum-jerk segments, with pauses and a slight tremor.

People move point to point with bell-shaped speed profiles (Flash and Hogan 1985); the minimum-jerk
polynomial 10s^3 - 15s^4 + 6s^5 is that profile. Orientation follows the same timing by slerp.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_stack import transforms as tf


@dataclass
class Keyframe:
    """Reach `pos`/`quat`/`closure` in `duration` s from the previous keyframe, then stay `pause` s."""

    pos: np.ndarray
    quat: np.ndarray
    closure: float
    duration: float
    pause: float = 0.0
    holding: bool = False      # the hand holds the object during the move to this keyframe and its pause
    phase: str = ""            # approach | grasp | skill | release | retreat


@dataclass
class WristPath:
    """Per-frame wrist poses (base frame), closure, holding flag and phase name."""

    times: np.ndarray
    pos: np.ndarray        # (T, 3)
    quat: np.ndarray       # (T, 4) x, y, z, w
    closure: np.ndarray    # (T,)
    holding: np.ndarray    # (T,) bool
    phase: list[str]


def min_jerk(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, 0.0, 1.0)
    return s ** 3 * (10 - 15 * s + 6 * s ** 2)


def sample(keyframes: list[Keyframe], fps: float, rng: np.random.Generator, tremor: float = 0.001) -> WristPath:
    """The keyframes at `fps`, starting at the first one; `tremor` (m) is low-pass noise on the position."""
    times, pos, quat, closure, holding, phase = [], [], [], [], [], []
    prev = keyframes[0]
    t_end = 0.0
    segments = []
    for kf in keyframes[1:]:
        segments.append((t_end, t_end + kf.duration, prev, kf))
        t_end += kf.duration + kf.pause
        prev = kf
    n = int(np.floor(t_end * fps)) + 1
    for i in range(n):
        t = i / fps
        seg = next((s for s in segments if t < s[1] + s[3].pause + 1e-9), segments[-1])
        t0, t1, a, b = seg
        s = float(min_jerk(np.array((t - t0) / max(t1 - t0, 1e-6))))
        times.append(t)
        pos.append(a.pos + s * (b.pos - a.pos))
        quat.append(tf.slerp(a.quat, b.quat, s))
        closure.append(a.closure + s * (b.closure - a.closure))
        holding.append(b.holding)
        phase.append(b.phase)
    pos = np.array(pos)
    if tremor > 0:
        noise = rng.standard_normal(pos.shape) * tremor
        kernel = np.array([0.25, 0.5, 0.25])
        noise = np.stack([np.convolve(noise[:, k], kernel, mode="same") for k in range(3)], axis=1)
        pos = pos + noise
    return WristPath(np.array(times), pos, np.array(quat), np.array(closure), np.array(holding), phase)
