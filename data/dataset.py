"""Torch Dataset of observation/action windows over an episode store.

One sample per tick of the ``clock`` stream (typically the commanded action at the policy
rate). Every other stream is aligned to that clock the way the recorder aligns live data:
for each tick, the latest sample captured at or before it (the first sample if none is).
Windows never leave their episode: an observation window reaching before the first tick
repeats the first frame, an action window past the last tick repeats the last one, and
``obs_is_pad`` / ``action_is_pad`` say which steps were padded.

Speed: the index (timestamps only) is built once, one zarr read per stream. Sample data is
decoded on first use, per process (the store is opened lazily, so DataLoader workers pickle
only the index): streams whose decoded rows fit in ``cache_bytes`` are held in one array per
stream, filled an episode at a time, so a batch is one fancy-index per key instead of a Python
loop over samples; streams that do not fit go through an LRU cache of whole episodes.
"""
from __future__ import annotations

import mmap
import os
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .align import align_to_clock  # noqa: F401  (re-exported)
from .stats import compute_stats, normalize
from .store import EpisodeStore


def _anonymous_array(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """An array in its own anonymous mapping, with ordinary pages.

    numpy advises transparent huge pages for large arrays; where memory is fragmented the kernel
    then compacts memory inside the first epoch's page faults: 1.0-1.1 s of system time for the
    400 MB of the benchmark's frames, against 0.3 s with ordinary pages (measured here)."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes == 0:
        return np.empty(shape, dtype)
    return np.frombuffer(mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS), dtype).reshape(shape)


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
        stamps = {key: store.read_part(self.episodes, key, "capture_stamp") for key in keys}
        rows: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for i, k in enumerate(self.episodes):
            for key in keys:
                if len(stamps[key][i]) == 0:
                    raise ValueError(f"{self.path}: episode {k} has no rows of stream {key!r}")
                rows[key].append(align_to_clock(stamps[self.clock][i], stamps[key][i]))
        # per key: where each episode's rows start in the key's rows of all this dataset's episodes, and the
        # aligned row (in that numbering) of every clock tick: a window's rows are one gather
        self._row_start = {key: np.concatenate([[0], np.cumsum([len(s) for s in stamps[key]])]).astype(np.int64)
                           for key in keys}
        ticks = np.array([len(s) for s in stamps[self.clock]], dtype=np.int64)
        self._last = ticks - 1
        self._tick_start = self._row_start[self.clock]   # the clock's rows are its ticks
        self._ep_of = np.repeat(np.arange(len(ticks), dtype=np.int32), ticks)
        self._tick = (np.arange(len(self._ep_of)) - self._tick_start[self._ep_of]).astype(np.int32)
        self._grows = {key: np.concatenate([r + self._row_start[key][i] for i, r in enumerate(rows[key])])
                       if rows[key] else np.zeros(0, np.int64) for key in keys}
        self._obs_steps = np.arange(-self.obs_horizon + 1, 1)
        self._act_steps = np.arange(self.action_horizon)
        if self.normalize_modes and stats is None:
            stats = compute_stats(store, sorted(self.normalize_modes), self.episodes)
        self.stats = stats or {}
        # smallest streams first: held whole while they fit in the budget; the rest share what is left as an LRU
        self._specs = {key: store.streams[key] for key in keys}
        sizes = {key: int(self._row_start[key][-1]) * np.dtype(spec.dtype).itemsize
                 * int(np.prod(spec.shape, dtype=np.int64)) for key, spec in self._specs.items()}
        self._resident, budget = set(), self.cache_bytes
        for key in sorted(keys, key=sizes.get):
            if sizes[key] <= budget:
                self._resident.add(key)
                budget -= sizes[key]
        self._lru_bytes = budget
        self._reset_process_state()

    def __len__(self) -> int:
        return len(self._ep_of)

    @staticmethod
    def _process_state() -> dict:
        """Fresh per-process fields (the open store, decoded data): set at init, in another process (a fork),
        and in pickled copies (DataLoader workers open the store themselves)."""
        return {"_store": None, "_pid": None,
                "_blocks": {},      # key -> resident array (rows of every episode)
                "_loaded": {},      # key -> which episodes are decoded into its resident array
                "_complete": {},    # resident arrays with every episode decoded
                "_cache": OrderedDict(), "_cached": 0}   # LRU of whole episodes (key, i) -> rows, and its bytes

    def _reset_process_state(self) -> None:
        self.__dict__.update(self._process_state())

    def __getstate__(self):
        return {**self.__dict__, **self._process_state()}

    def _open(self) -> EpisodeStore:
        if self._store is None or self._pid != os.getpid():
            self._reset_process_state()
            self._store, self._pid = EpisodeStore.open(self.path, "r"), os.getpid()
        return self._store

    def _block(self, key: str, eps: np.ndarray) -> np.ndarray:
        """The resident array of ``key`` with at least episodes ``eps`` decoded into it."""
        store = self._open()
        block = self._blocks.get(key)
        spec = self._specs[key]
        if block is None:
            if not spec.per_frame:   # low-dimensional: every episode in one read, it is small
                parts = store.read_part(self.episodes, key, "data")
                block = np.concatenate(parts) if parts else np.zeros((0, *spec.shape), spec.dtype)
                self._loaded[key] = np.ones(len(self.episodes), bool)
            else:
                block = _anonymous_array((int(self._row_start[key][-1]), *spec.shape), np.dtype(spec.dtype))
                self._loaded[key] = np.zeros(len(self.episodes), bool)
            self._blocks[key] = block
        loaded = self._loaded[key]
        for i in eps[~loaded[eps]]:
            if not loaded[i]:   # eps may repeat an episode
                lo, hi = self._row_start[key][i], self._row_start[key][i + 1]
                store.read_stream(self.episodes[i], key, parts=("data",), out=block[lo:hi])
                loaded[i] = True
        if loaded.all():
            self._complete[key] = block
        return block

    def _episode_data(self, key: str, i: int) -> np.ndarray:
        """The whole stream of one episode (LRU-cached), for streams too large to hold whole."""
        arr = self._cache.get((key, i))
        if arr is not None:
            self._cache.move_to_end((key, i))
            return arr
        arr = self._open().read_stream(self.episodes[i], key, parts=("data",))["data"]
        self._cache[(key, i)] = arr
        self._cached += arr.nbytes
        while self._cached > self._lru_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached -= old.nbytes
        return arr

    def _take(self, key: str, eps: np.ndarray, ticks: np.ndarray) -> np.ndarray:
        """Raw rows of ``key`` at clock ``ticks`` ((B, T), already clipped to their episode) of episodes ``eps`` (B,)."""
        g = self._grows[key][self._tick_start[eps][:, None] + ticks]
        if key in self._resident:
            block = self._complete.get(key)
            return (self._block(key, eps) if block is None else block)[g]
        spec = self._specs[key]
        out = np.empty((*g.shape, *spec.shape), spec.dtype)
        for i in np.unique(eps):
            sel = eps == i
            out[sel] = self._episode_data(key, int(i))[g[sel] - self._row_start[key][i]]
        return out

    def _gather(self, key: str, eps: np.ndarray, ticks: np.ndarray) -> torch.Tensor:
        out = self._take(key, eps, ticks)
        mode = self.normalize_modes.get(key)
        if mode:
            out = normalize(out, self.stats[key], mode)
        return torch.from_numpy(out)

    def rows_at(self, key: str, i: int, ticks) -> np.ndarray:
        """Rows of stream ``key`` aligned to clock ``ticks`` of this dataset's ``i``-th episode (raw, not normalised)."""
        ticks = np.asarray(ticks, dtype=np.int64)
        if ticks.size and not (0 <= ticks.min() and ticks.max() <= self._last[i]):
            raise IndexError(f"ticks {ticks.tolist()} outside episode position {i} (0..{self._last[i]})")
        return self._take(key, np.full(1, i, np.int64), ticks.reshape(1, -1))[0].reshape(*ticks.shape, *self._specs[key].shape)

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
