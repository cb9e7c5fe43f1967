"""Per-key normalisation statistics (JSON-compatible, saved next to checkpoints) and the train/val split."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

EPS = 1e-8


def split_episodes(episodes: int | Sequence[int], val_fraction: float = 0.1, seed: int = 0) -> tuple[list, list]:
    """Split by episode, never by sample (windows of one episode must not leak into validation); same seed, same split."""
    eps = list(range(episodes)) if isinstance(episodes, int) else sorted(int(e) for e in episodes)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(val_fraction * len(eps)))
    if val_fraction > 0 and len(eps) > 1:
        n_val = min(max(n_val, 1), len(eps) - 1)
    order = np.random.default_rng(seed).permutation(len(eps))
    val = sorted(eps[i] for i in order[:n_val])
    train = sorted(eps[i] for i in order[n_val:])
    return train, val


def _reduce_axes(row_ndim: int) -> tuple:
    """Low-dim rows: per dimension. Images (H, W, C): per channel."""
    return (0,) if row_ndim <= 1 else tuple(range(row_ndim))


def compute_stats(store, keys: Sequence[str], episodes: Sequence[int] | None = None,
                  max_image_frames: int = 2000) -> dict:
    """``{key: {"min", "max", "mean", "std", "count"}}`` over the given episodes (lists, JSON-ready).

    Images are subsampled to about ``max_image_frames`` frames: per-channel statistics settle long before.
    """
    episodes = range(store.num_episodes) if episodes is None else list(episodes)
    out = {}
    for key in keys:
        spec = store.streams[key]
        if len(spec.shape) >= 2:   # images: every stride-th frame, data only (no stamps)
            total = sum(end - start for start, end in (store.episode_range(k, key) for k in episodes))
            stride = max(1, total // max_image_frames)
            parts = [store.read_stream(k, key, slice(None, None, stride), parts=("data",))["data"] for k in episodes]
        else:   # low-dimensional: every row, one zarr read per run of adjacent episodes
            parts = store.read_part(episodes, key, "data")
        x = np.concatenate(parts).astype(np.float64) if parts else np.zeros((0, *spec.shape))
        if len(x) == 0:
            raise ValueError(f"no rows of {key!r} in the selected episodes")
        axes = _reduce_axes(len(spec.shape))
        out[key] = {"min": x.min(axis=axes).tolist(), "max": x.max(axis=axes).tolist(),
                    "mean": x.mean(axis=axes).tolist(), "std": x.std(axis=axes).tolist(), "count": int(len(x))}
    return out


def normalize(x: np.ndarray, stats: dict, mode: str) -> np.ndarray:
    """``minmax`` maps [min, max] to [-1, 1]; ``meanstd`` to zero mean, unit variance (as float32)."""
    x = np.asarray(x, dtype=np.float32)
    if mode == "minmax":
        lo, hi = np.asarray(stats["min"], np.float32), np.asarray(stats["max"], np.float32)
        return 2.0 * (x - lo) / np.maximum(hi - lo, EPS) - 1.0
    if mode == "meanstd":
        return (x - np.asarray(stats["mean"], np.float32)) / np.maximum(np.asarray(stats["std"], np.float32), EPS)
    raise ValueError(f"normalisation mode must be 'minmax' or 'meanstd', not {mode!r}")


def unnormalize(y: np.ndarray, stats: dict, mode: str) -> np.ndarray:
    """Inverse of ``normalize`` (policies predict normalised actions)."""
    y = np.asarray(y, dtype=np.float32)
    if mode == "minmax":
        lo, hi = np.asarray(stats["min"], np.float32), np.asarray(stats["max"], np.float32)
        return (y + 1.0) / 2.0 * np.maximum(hi - lo, EPS) + lo
    if mode == "meanstd":
        return y * np.maximum(np.asarray(stats["std"], np.float32), EPS) + np.asarray(stats["mean"], np.float32)
    raise ValueError(f"normalisation mode must be 'minmax' or 'meanstd', not {mode!r}")


def save_stats(path: str | Path, stats: dict) -> Path:
    path = Path(path)
    path.write_text(json.dumps(stats, indent=1))
    return path


def load_stats(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
