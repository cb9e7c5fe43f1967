"""Deterministic episodes from a seed, shared by the tests and the SIGKILL child process."""
from __future__ import annotations

import numpy as np


def episode_data(k: int, frames: int | None = None) -> dict:
    """Stream -> (rows, capture stamps, receive stamps); images 64x96 (one chunk per frame), state at 2.5x the camera rate."""
    rng = np.random.default_rng(1000 + k)
    n_img = frames if frames is not None else 6 + k % 5
    n_state = int(n_img * 2.5)
    t_img = 100.0 * k + np.arange(n_img) / 30.0
    t_state = 100.0 * k + np.arange(n_state) / 75.0
    return {
        "front": (rng.integers(0, 256, (n_img, 64, 96, 3), dtype=np.uint8), t_img, t_img + 0.004),
        "joint_pos": (rng.normal(size=(n_state, 7)).astype(np.float32), t_state, t_state + 0.001),
        "reward": (rng.random(n_state), t_state, t_state),
    }


def write_episode(store, k: int, commit: bool = True, **meta):
    """Append episode k sample by sample (as a recorder would) and commit it."""
    data = episode_data(k)
    writer = store.begin_episode(task="pick_place", seed=k, robot="panda", operator="scripted", **meta)
    for name, (rows, cap, rec) in data.items():
        for row, c, r in zip(rows, cap, rec):
            writer.append(name, row, c, r)
    return writer.commit(success=k % 2 == 0) if commit else writer


def assert_episode_equal(store, k: int) -> None:
    got = store.read_episode(k)
    for name, (rows, cap, rec) in episode_data(k).items():
        assert got[name]["data"].dtype == rows.dtype and np.array_equal(got[name]["data"], rows), (k, name)
        assert np.array_equal(got[name]["capture_stamp"], cap), (k, name)
        assert np.array_equal(got[name]["receive_stamp"], rec), (k, name)
