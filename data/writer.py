"""EpisodeWriter: buffers one episode and commits it atomically (see store.py for why it is crash safe)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import StoreError, StreamShapeError
from .store import IMAGE_GROWTH_ROWS, StreamSpec, _episode_key, _software_version, to_json_compatible

FLUSH_FRAMES = 8   # per-frame streams go to disk in blocks of this many frames, so memory stays bounded


class EpisodeWriter:
    """Appends samples to streams of one episode; ``commit`` publishes it, ``discard`` drops it.

    Streams are declared by their first append (dtype and per-row shape); later appends must
    match. Not thread-safe: the recorder calls it from its one writer thread.
    """

    def __init__(self, store, metadata: dict):
        self.store = store
        self.episode = store.num_episodes
        self.metadata = to_json_compatible(metadata)
        self.closed = False
        self._new: dict[str, StreamSpec] = {}          # streams first declared in this episode
        self._rows: dict[str, list] = {}               # buffered rows not yet on disk
        self._stamps: dict[str, tuple[list, list]] = {}
        self._flushed: dict[str, int] = {}             # per-frame rows already written past the committed length
        self._ended: list[tuple[dict, dict[str, int]]] = []   # (metadata, rows so far per stream) of ended episodes

    # ---- appending -------------------------------------------------------------------------
    def append(self, stream: str, value: Any, capture_stamp: float, receive_stamp: float | None = None) -> None:
        """Add one sample; ``receive_stamp`` defaults to ``capture_stamp`` (data that was not transported)."""
        value = np.asarray(value)
        spec = self._spec(stream, value.dtype, value.shape)
        self._push(stream, spec, value[None], [capture_stamp], [capture_stamp if receive_stamp is None else receive_stamp])

    def append_many(self, stream: str, values: Any, capture_stamps, receive_stamps=None) -> None:
        """Add several samples of one stream at once (rows along axis 0)."""
        values = np.asarray(values)
        capture = np.asarray(capture_stamps, dtype=np.float64).reshape(-1)
        receive = capture if receive_stamps is None else np.asarray(receive_stamps, dtype=np.float64).reshape(-1)
        if values.ndim == 0 or not values.shape[0] == capture.shape[0] == receive.shape[0]:
            raise StreamShapeError(self.episode, stream, f"{values.shape[:1]} rows but {capture.shape[0]} "
                                   f"capture and {receive.shape[0]} receive stamps")
        spec = self._spec(stream, values.dtype, values.shape[1:])
        self._push(stream, spec, values, list(capture), list(receive))

    def _spec(self, stream: str, dtype: np.dtype, shape: tuple) -> StreamSpec:
        self._check_open()
        spec = self._new.get(stream) or self.store.streams.get(stream)
        if spec is None:
            if not stream or "/" in stream or stream.startswith("."):
                raise StreamShapeError(self.episode, stream, "stream names are non-empty and contain no '/'")
            if dtype.kind not in "biuf":
                raise StreamShapeError(self.episode, stream, f"dtype {dtype} is not numeric")
            spec = self._new[stream] = self.store._create_stream(stream, dtype, tuple(shape))
            return spec
        if tuple(shape) != spec.shape:
            raise StreamShapeError(self.episode, stream, f"value has shape {tuple(shape)}, "
                                   f"the stream was declared with shape {spec.shape}")
        if not np.can_cast(dtype, spec.dtype, "same_kind"):
            raise StreamShapeError(self.episode, stream, f"value has dtype {dtype}, the stream stores {np.dtype(spec.dtype)}")
        return spec

    def _push(self, stream: str, spec: StreamSpec, rows: np.ndarray, capture: list, receive: list) -> None:
        if not all(map(math.isfinite, capture)) or not all(map(math.isfinite, receive)):
            raise StreamShapeError(self.episode, stream, "timestamps must be finite")
        self._rows.setdefault(stream, []).append(np.asarray(rows, dtype=spec.dtype))
        cap, rec = self._stamps.setdefault(stream, ([], []))
        cap.extend(float(c) for c in capture)
        rec.extend(float(r) for r in receive)
        if spec.per_frame and sum(len(r) for r in self._rows[stream]) >= FLUSH_FRAMES:
            self._flush(stream, spec)

    def _flush(self, stream: str, spec: StreamSpec, exact: bool = False) -> None:
        """Write buffered frames of a per-frame stream past the committed rows (invisible until commit)."""
        pending = self._rows.pop(stream, [])
        if not pending:
            return
        block = np.concatenate(pending)
        start = spec.length + self._flushed.get(stream, 0)
        arr = self.store._array(stream, "data")
        need = start + len(block)
        with self.store._zstore.lenient():
            if arr.shape[0] < need:
                arr.resize((need if exact else need + IMAGE_GROWTH_ROWS, *spec.shape))
            arr[start:need] = block
        self._flushed[stream] = need - spec.length

    @property
    def num_rows(self) -> dict[str, int]:
        """Rows appended so far in this episode, per stream."""
        before = self._ended[-1][1] if self._ended else {}
        return {s: n for s, (c, _) in self._stamps.items() if (n := len(c) - before.get(s, 0))}

    # ---- finishing -------------------------------------------------------------------------
    def end_episode(self, success: bool | None = None, **metadata) -> int:
        """End this episode without publishing it and start the next in the same commit; returns its index.

        Bulk copies (``merge``) use it: one commit for many episodes writes each low-dimensional array,
        episode index and commit record once per batch instead of once per episode. ``commit`` publishes
        every ended episode with the current one; ``discard`` drops them all."""
        self._check_open()
        meta = {**self.metadata, **to_json_compatible(metadata)}
        if success is not None:
            meta["success"] = bool(success)
        self._ended.append((meta, {s: len(c) for s, (c, _) in self._stamps.items()}))
        self.metadata = {}
        self.episode += 1
        return self.episode - 1

    def commit(self, success: bool | None = None, **metadata) -> int:
        """Write everything, then the commit record; returns the index of the last episode written.

        On a durable store (the default) every file written for the episode, and its directories, is
        fsynced before the record is written, and the record itself too (``EpisodeStore._commit_record``):
        once this returns, the episode survives a power loss, not only a killed process."""
        self.end_episode(success, **metadata)
        store, first = self.store, self.store.num_episodes
        specs = {**store.streams, **self._new}
        lengths: dict[str, int] = {}
        with store._zstore.lenient():
            for name, spec in specs.items():
                n_new = len(self._stamps.get(name, ((), ()))[0])
                end = spec.length + n_new
                if spec.per_frame:
                    self._flush(name, spec, exact=True)
                    data = store._array(name, "data")
                    if data.shape[0] != end:
                        data.resize((end, *spec.shape))
                elif n_new:
                    self._write_rows(store._array(name, "data"), spec.length, np.concatenate(self._rows.pop(name)))
                if n_new:
                    cap, rec = self._stamps[name]
                    self._write_rows(store._array(name, "capture_stamp"), spec.length, np.asarray(cap))
                    self._write_rows(store._array(name, "receive_stamp"), spec.length, np.asarray(rec))
                ends = store._open_array(f"meta/episode_ends/{name}")
                ends.resize((first + len(self._ended),))
                ends[first:] = np.asarray([spec.length + rows.get(name, 0) for _, rows in self._ended], np.int64)
                lengths[name] = end
            before: dict[str, int] = {}
            version = _software_version()       # a package-metadata lookup: once per commit, not per episode
            for k, (meta, rows) in enumerate(self._ended, start=first):
                meta.setdefault("software_version", version)
                meta["streams"] = {n: rows[n] - before.get(n, 0) for n in rows if rows[n] > before.get(n, 0)}
                meta["episode"] = k
                store.root.require_group(_episode_key(k)).update_attributes(meta)
                before = rows
        new_specs = {n: StreamSpec(s.dtype, s.shape, s.chunk_rows, lengths[n]) for n, s in specs.items()}
        store._commit_record(first + len(self._ended), new_specs)
        self._close()
        return self.episode - 1

    @staticmethod
    def _write_rows(arr, start: int, rows: np.ndarray) -> None:
        end = start + len(rows)
        if arr.shape[0] != end:
            arr.resize((end, *arr.shape[1:]))
        arr[start:end] = rows

    def discard(self) -> None:
        """Drop this episode: truncate frames already written and remove streams it declared."""
        if self.closed:
            return
        store = self.store
        with store._zstore.lenient():
            for name, spec in store.streams.items():
                if self._flushed.get(name):
                    store._array(name, "data").resize((spec.length, *spec.shape))
            for name in self._new:
                del store.root["streams"][name]
                del store.root["meta/episode_ends"][name]
        store._arrays.clear()
        self._close()

    def _close(self) -> None:
        self.closed = True
        self._rows.clear()
        self._stamps.clear()
        self._ended.clear()

    def _check_open(self) -> None:
        if self.closed:
            raise StoreError(f"{self.store.path}: episode {self.episode} was already committed or discarded")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        """Leaving the block without ``commit`` discards the episode (an exception never half-commits)."""
        self.discard()
