"""The egocentric head camera's path: a person standing at the far table edge, looking at their hand.

Smooth drift (a slow walk-in-place plus sway) and jitter (small per-frame shakes), and a gaze that follows
the hand with a lag, as head-mounted video does. The person stands where the robot's front camera is, so a
skill filmed this way and the robot's view of it look alike.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_stack import transforms as tf


@dataclass
class HeadConfig:
    eye: tuple[float, float, float] = (1.05, -0.02, 0.62)    # mean eye position (base frame, m)
    eye_spread: tuple[float, float, float] = (0.05, 0.08, 0.05)   # uniform spread of the start, per clip
    drift: tuple[float, float] = (0.08, 0.16)      # total drift over a clip (m): the SfM baseline
    sway: float = 0.015                            # amplitude of the slow sway (m)
    jitter_pos: float = 0.002                      # per-frame shake (m, std)
    jitter_rot: float = 0.004                      # per-frame shake (rad, std)
    gaze_lag: float = 0.8                          # s: how slowly the gaze follows the hand
    gaze_to_hand: float = 0.4                      # how much the gaze leans toward the hand from the scene centre


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Quaternion (x, y, z, w) of a MuJoCo camera body at `eye` looking at `target`, base z up in the image."""
    f = target - eye
    f = f / np.linalg.norm(f)
    x = np.cross(f, [0.0, 0.0, 1.0])
    x = x / np.linalg.norm(x)
    y = np.cross(x, f)
    return tf.mat_to_quat(np.stack([x, y, -f], axis=1))


def head_path(hand_pos: np.ndarray, centre: np.ndarray, fps: float, rng: np.random.Generator,
              cfg: HeadConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame head positions (T, 3) and camera-body quaternions (T, 4) for a clip whose wrist path is
    `hand_pos` (T, 3), looking around `centre` (the task's objects)."""
    cfg = cfg or HeadConfig()
    n = len(hand_pos)
    t = np.arange(n) / fps
    start = np.array(cfg.eye) + rng.uniform(-1, 1, 3) * np.array(cfg.eye_spread)
    direction = rng.standard_normal(3) * np.array([0.6, 1.0, 0.5])
    direction /= np.linalg.norm(direction)
    length = rng.uniform(*cfg.drift)
    walk = np.outer(t / max(t[-1], 1e-6), direction * length)
    freq = rng.uniform(0.15, 0.5, 3)
    phase = rng.uniform(0, 2 * np.pi, 3)
    sway = cfg.sway * np.sin(2 * np.pi * freq[None] * t[:, None] + phase[None])
    eye = start + walk + sway + rng.standard_normal((n, 3)) * cfg.jitter_pos
    alpha = 1.0 - np.exp(-1.0 / (fps * cfg.gaze_lag))
    gaze = np.empty((n, 3))
    g = (1 - cfg.gaze_to_hand) * centre + cfg.gaze_to_hand * hand_pos[0]
    for i in range(n):
        g = g + alpha * ((1 - cfg.gaze_to_hand) * centre + cfg.gaze_to_hand * hand_pos[i] - g)
        gaze[i] = g
    quat = np.array([tf.quat_mul(look_at(eye[i], gaze[i]),
                                 tf.axis_angle_to_quat(rng.standard_normal(3) * cfg.jitter_rot)) for i in range(n)])
    return eye, quat
