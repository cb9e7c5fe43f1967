"""Torch Dataset of observation/action windows over an episode store.

One sample per tick of the ``clock`` stream (typically the commanded action at the policy
rate). Every other stream is aligned to that clock the way the recorder aligns live data:
for each tick, the latest sample captured at or before it (the first sample if none is).
Windows never leave their episode: an observation window reaching before the first tick
repeats the first frame, an action window past the last tick repeats the last one, and
``obs_is_pad`` / ``action_is_pad`` say which steps were padded.

Speed: the index (timestamps only) is built once; sample data is decoded a whole
episode-stream at a time into a per-process LRU cache bounded by ``cache_bytes``. The store
is opened lazily in each process, so DataLoader workers pickle only the index.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .align import align_to_clock  # noqa: F401  (re-exported)
from .stats import compute_stats, normalize
from .store import EpisodeStore


class EpisodeDataset(torch.utils.data.Dataset):
    """Samples ``{"obs": {key: (To, ...)}, "action": {key: (Ta, ...)}, "obs_is_pad", "action_is_pad", "episode", "tick"}``.

    Images stay uint8 (H, W, C); keys named in ``normalize`` ({key: "minmax" | "meanstd"}) come
    back float32, normalised with ``stats`` (computed on this dataset's episodes when not given:
    pass the training set's stats to the validation set).
    """

    def __init__(self, path: str | Path, obs_keys: Sequence[str], action_keys: Sequence[str],
                 clock: str | None = None, obs_horizon: int = 2, action_horizon: int = 16,
                 episodes: Sequence[int] | None = None, normalize: dict | None = None, stats: dict | None = None,
                 cache_bytes: int = 2 << 30):
        if obs_horizon < 1 or action_horizon < 1:
            raise ValueError("horizons must be at least 1")
        self.path = Path(path)
        self.obs_keys, self.action_keys = tuple(obs_keys), tuple(action_keys)
        self.clock = clock or self.action_keys[0]
        self.obs_horizon, self.action_horizon = int(obs_horizon), int(action_horizon)
        self.normalize_modes = dict(normalize or {})
        self.cache_bytes = int(cache_bytes)
        store = EpisodeStore.open(self.path, "r")
        self.episodes = list(range(store.num_episodes) if episodes is None else episodes)
        keys = sorted({*self.obs_keys, *self.action_keys, self.clock})
        missing = [k for k in keys if k not in store.streams]
        if missing:
            raise KeyError(f"{self.path}: no stream(s) {missing} (streams: {sorted(store.streams)})")
        self._rows: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        ep_of, tick = [], []
        for i, k in enumerate(self.episodes):
            clock_stamps = store.read_stream(k, self.clock)["capture_stamp"]
            for key in keys:
                stamps = clock_stamps if key == self.clock else store.read_stream(k, key)["capture_stamp"]
                if len(stamps) == 0:
                    raise ValueError(f"{self.path}: episode {k} has no rows of stream {key!r}")
                self._rows[key].append(align_to_clock(clock_stamps, stamps))
            ep_of.append(np.full(len(clock_stamps), i, np.int32))
            tick.append(np.arange(len(clock_stamps), dtype=np.int32))
        self._last = np.array([len(r) - 1 for r in self._rows[self.clock]], dtype=np.int64)
        self._ep_of = np.concatenate(ep_of) if ep_of else np.zeros(0, np.int32)
        self._tick = np.concatenate(tick) if tick else np.zeros(0, np.int32)
        self._obs_steps = np.arange(-self.obs_horizon + 1, 1)
        self._act_steps = np.arange(self.action_horizon)
        if self.normalize_modes and stats is None:
            stats = compute_stats(store, sorted(self.normalize_modes), self.episodes)
        self.stats = stats or {}
        self._store, self._pid, self._cache, self._cached = None, None, OrderedDict(), 0

    def __len__(self) -> int:
        return len(self._ep_of)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.update(_store=None, _pid=None, _cache=OrderedDict(), _cached=0)
        return state

    def _open(self) -> EpisodeStore:
        if self._store is None or self._pid != os.getpid():
            self._store, self._pid, self._cache, self._cached = EpisodeStore.open(self.path, "r"), os.getpid(), OrderedDict(), 0
        return self._store

    def _episode_data(self, key: str, i: int) -> np.ndarray:
        """The whole stream of one episode, decoded once and kept in the LRU cache."""
        arr = self._cache.get((key, i))
        if arr is not None:
            self._cache.move_to_end((key, i))
            return arr
        arr = self._open().read_stream(self.episodes[i], key)["data"]
        self._cache[(key, i)] = arr
        self._cached += arr.nbytes
        while self._cached > self.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached -= old.nbytes
        return arr

    def _gather(self, key: str, eps: np.ndarray, ticks: np.ndarray) -> torch.Tensor:
        """Rows of ``key`` for a batch of windows: ``ticks`` is (B, T) clock ticks of episodes ``eps``."""
        first = self._episode_data(key, int(eps[0]))
        out = np.empty((len(eps), ticks.shape[1], *first.shape[1:]), first.dtype)
        for j, (i, t) in enumerate(zip(eps, ticks)):
            out[j] = self._episode_data(key, int(i))[self._rows[key][i][t]]
        mode = self.normalize_modes.get(key)
        if mode:
            out = normalize(out, self.stats[key], mode)
        return torch.from_numpy(out)

    def rows_at(self, key: str, i: int, ticks) -> np.ndarray:
        """Rows of stream ``key`` aligned to clock ``ticks`` of this dataset's ``i``-th episode (raw, not normalised)."""
        return self._episode_data(key, i)[self._rows[key][i][np.asarray(ticks)]]

    def last_tick(self, i: int) -> int:
        return int(self._last[i])

    def window(self, index: int) -> tuple[int, int]:
        """(dataset episode position, clock tick) of sample ``index``."""
        return int(self._ep_of[index]), int(self._tick[index])

    def get_batch(self, indices) -> dict:
        """A batch as one tensor per key (leading batch axis): what ``__getitem__`` stacks, without per-sample collation."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        eps, t = self._ep_of[idx], self._tick[idx].astype(np.int64)
        last = self._last[eps][:, None]
        obs_t, act_t = t[:, None] + self._obs_steps, t[:, None] + self._act_steps
        obs_c, act_c = np.clip(obs_t, 0, last), np.clip(act_t, 0, last)
        return {
            "obs": {key: self._gather(key, eps, obs_c) for key in self.obs_keys},
            "action": {key: self._gather(key, eps, act_c) for key in self.action_keys},
            "obs_is_pad": torch.from_numpy(obs_t < 0),
            "action_is_pad": torch.from_numpy(act_t > last),
            "episode": torch.as_tensor([self.episodes[i] for i in eps]),
            "tick": torch.from_numpy(t),
        }

    def __getitem__(self, index) -> dict:
        """One sample (``int``), or a whole batch (a list of ints, as a BatchSampler yields: see ``loader``)."""
        if isinstance(index, (list, tuple, np.ndarray, torch.Tensor)):
            return self.get_batch(index)
        batch = self.get_batch([index])
        return {"obs": {k: v[0] for k, v in batch["obs"].items()}, "action": {k: v[0] for k, v in batch["action"].items()},
                "obs_is_pad": batch["obs_is_pad"][0], "action_is_pad": batch["action_is_pad"][0],
                "episode": int(batch["episode"][0]), "tick": int(batch["tick"][0])}

    def loader(self, batch_size: int = 64, shuffle: bool = True, num_workers: int = 0, seed: int = 0,
               drop_last: bool = False, **kwargs) -> torch.utils.data.DataLoader:
        """DataLoader that fetches whole batches (``get_batch``): 3-5x the samples/s of per-sample collation."""
        generator = torch.Generator().manual_seed(seed)
        base = torch.utils.data.RandomSampler(self, generator=generator) if shuffle else range(len(self))
        sampler = torch.utils.data.BatchSampler(base, batch_size, drop_last)
        return torch.utils.data.DataLoader(self, sampler=sampler, batch_size=None, num_workers=num_workers,
                                           persistent_workers=num_workers > 0, **kwargs)
