"""A small store with the streams `robot-stack replay` reads (joint_pos, ee_pose, action_pose, front_rgb)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from robot_stack.data import EpisodeStore

FRAME = (96, 96, 3)   # 27 KiB: one chunk file per frame, so a damaged frame belongs to one episode


def write_replay_store(path: Path, episodes: int = 3, seeds=None) -> Path:
    """`episodes` episodes of 4 frames and 10 state rows each, seeds 0, 1, ... unless given."""
    seeds = list(range(episodes)) if seeds is None else list(seeds)
    with EpisodeStore.create(path, durable=False) as store:
        for k, seed in enumerate(seeds):
            rng = np.random.default_rng(seed)
            t = 10.0 * seed + np.arange(10) / 10.0
            w = store.begin_episode(task="pick_place", robot="panda", operator="scripted", seed=seed)
            w.append_many("joint_pos", rng.normal(size=(10, 7)).astype(np.float32), t)
            w.append_many("ee_pose", np.tile([0.4, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0], (10, 1)), t)
            w.append_many("action_pose", np.tile([0.4, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0], (10, 1)), t)
            w.append_many("front_rgb", rng.integers(0, 256, (4, *FRAME), dtype=np.uint8), t[::3][:4])
            w.commit(success=True)
    return path


def frame_chunk(path: Path, k: int, i: int = 0) -> Path:
    """The chunk file of frame `i` of episode `k`'s front_rgb stream."""
    with EpisodeStore.open(path) as store:
        start, _ = store.episode_range(k, "front_rgb")
    return path / f"streams/front_rgb/data/c/{start + i}/0/0/0"
