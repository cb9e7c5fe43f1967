"""Integrity check of an episode store: every problem found, not just the first (``robot-stack data verify``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import CorruptEpisodeError, StoreError


@dataclass(frozen=True)
class Problem:
    episode: int | None   # None: the store as a whole
    key: str
    message: str

    def to_json(self) -> dict:
        return asdict(self)

    def __str__(self):
        where = "store" if self.episode is None else f"episode {self.episode}"
        return f"{where}, {self.key}: {self.message}"


def verify(store_or_path) -> list[Problem]:
    """Read every committed episode fully (chunks are CRC-checked) and check index and metadata consistency."""
    from .store import EpisodeStore
    if isinstance(store_or_path, (str, Path)):
        try:
            store = EpisodeStore.open(store_or_path, "r")
        except StoreError as exc:
            return [Problem(None, "zarr.json", str(exc))]
    else:
        store = store_or_path
    problems: list[Problem] = []
    bad_index = set()
    for name, spec in store.streams.items():
        try:
            ends = store.episode_ends(name)
        except StoreError as exc:
            problems.append(Problem(None, f"meta/episode_ends/{name}", str(exc)))
            bad_index.add(name)
            continue
        if np.any(np.diff(ends) < 0) or (len(ends) and (ends[0] < 0 or ends[-1] != spec.length)):
            problems.append(Problem(None, f"meta/episode_ends/{name}",
                                    f"ends are not increasing up to the stream's {spec.length} rows"))
            bad_index.add(name)
    for k in range(store.num_episodes):
        try:
            meta = store.metadata(k)
        except CorruptEpisodeError as exc:
            problems.append(Problem(k, exc.key, exc.reason))
            meta = None
        for name in store.streams:
            if name in bad_index:
                continue
            try:
                rows = store.read_stream(k, name)
            except CorruptEpisodeError as exc:
                problems.append(Problem(k, exc.key, exc.reason))
                continue
            n = len(rows["data"])
            if meta is not None and meta.get("streams", {}).get(name, 0) != n:
                problems.append(Problem(k, f"streams/{name}", f"{n} rows, metadata says "
                                        f"{meta.get('streams', {}).get(name, 0)}"))
            stamps = rows["capture_stamp"]
            if n and not np.all(np.isfinite(stamps)):
                problems.append(Problem(k, f"streams/{name}/capture_stamp", "non-finite timestamps"))
    return problems
