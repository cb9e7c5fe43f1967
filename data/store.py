"""Episode store on zarr v3: one time-major array per stream, replay-buffer episode index, atomic commits.

Layout (``FORMAT_VERSION`` 1)::

    zarr.json                        root attrs["robot_stack_episode_store"]: the commit record
                                     {format_version, num_episodes, streams: {name: {dtype, shape, chunk_rows, length}}}
    streams/<name>/data              (N, *shape) rows of every episode, concatenated
    streams/<name>/capture_stamp     (N,) float64 seconds, when the sample was captured (header stamp)
    streams/<name>/receive_stamp     (N,) float64 seconds, when the recorder received it
    meta/episode_ends/<name>         (E,) int64, exclusive end row of each episode in that stream
    meta/episodes/<k:06d>            group whose attrs are episode k's metadata (JSON)

Why this shape: each stream keeps its own time axis (cameras at 30 Hz, state at 100 Hz) and
training reads one contiguous range per episode and stream. Crash safety rests on two facts:
zarr's LocalStore replaces every file atomically (temp file + rename), and the root commit
record is written last. Rows past a stream's committed ``length`` and episodes at or past
``num_episodes`` are not part of the store; opening for append truncates them (recovery).
Images are one frame per chunk, so a new episode never rewrites a committed image chunk;
low-dimensional streams are buffered in memory and written at commit. Every chunk carries a
CRC32C, so a truncated or flipped chunk is an error, never silent garbage; every chunk is
written even when all zeros, so a missing chunk file is an error too (``_StrictLocalStore``).
"""
from __future__ import annotations

import fcntl
import json
import os
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec
from zarr.storage import LocalStore

from .errors import CorruptEpisodeError, EpisodeNotFoundError, FormatVersionError, StoreError, StoreLockedError
from .frames import fast_frames_supported, read_frames

FORMAT_VERSION = 1
ROOT_KEY = "robot_stack_episode_store"
# Measured on rendered twin frames (README, `bench data`): zstd level 3 is 43x on 640x480 at
# 0.7 ms encode / 0.33 ms decode; lz4 is 21x, zstd 9 is 56x at 4 ms encode. Lossless, so round trips are bit-exact.
IMAGE_CODECS = (ZstdCodec(level=3), Crc32cCodec())
PER_FRAME_CHUNK_BYTES = 16 * 1024   # frames at least this large get one chunk each (images, depth)
LOWDIM_CHUNK_BYTES = 256 * 1024     # target chunk size for low-dimensional streams
IMAGE_GROWTH_ROWS = 256             # per-frame arrays grow their shape in blocks while recording
if TYPE_CHECKING:
    from .writer import EpisodeWriter

_CHUNK_KEY = re.compile(r"(^|/)c(/\d+)*$")


class MissingChunkError(KeyError):
    """A chunk file that must exist does not."""


class _StrictLocalStore(LocalStore):
    """LocalStore that raises for a missing chunk instead of returning the fill value.

    Writes turn strictness off (``lenient``): zarr reads a not-yet-written chunk when it fills part of it.
    """

    strict = True

    async def get(self, key, prototype=None, byte_range=None):
        buf = await super().get(key, prototype, byte_range)
        if buf is None and self.strict and _CHUNK_KEY.search(key):
            raise MissingChunkError(key)
        return buf

    @contextmanager
    def lenient(self):
        old, self.strict = self.strict, False
        try:
            yield
        finally:
            self.strict = old


@dataclass
class StreamSpec:
    """A stream's per-row dtype and shape, rows per chunk, and committed row count."""

    dtype: str
    shape: tuple
    chunk_rows: int
    length: int = 0

    def to_json(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "StreamSpec":
        return cls(d["dtype"], tuple(d["shape"]), int(d["chunk_rows"]), int(d["length"]))

    @property
    def per_frame(self) -> bool:
        return self.chunk_rows == 1


def _software_version() -> str:
    try:
        from importlib.metadata import version
        return version("robot_stack")
    except Exception:
        return "unknown"


def _episode_key(k: int) -> str:
    return f"meta/episodes/{k:06d}"


class EpisodeStore:
    """An episode store opened for reading (``mode="r"``) or appending (``mode="a"``, one writer: flock)."""

    def __init__(self, path: Path, mode: str):
        self.path = Path(path)
        self.mode = mode
        self._lock_fd = None
        if mode == "a":
            self._lock_fd = _lock(self.path)
        self._writer = None
        self.recovered: dict = {}
        self._zstore = _StrictLocalStore(self.path, read_only=(mode == "r"))
        try:
            try:
                self.root = zarr.open_group(store=self._zstore, mode="r" if mode == "r" else "r+", zarr_format=3)
            except FileNotFoundError as exc:
                raise StoreError(f"{self.path}: not an episode store (no zarr group)") from exc
            self._load_record()
            if mode == "a":
                self.recovered = self._recover()
        except BaseException:
            self.close()   # release the writer lock
            raise

    # ---- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, *, overwrite: bool = False, attrs: dict | None = None) -> "EpisodeStore":
        """Create an empty store (an error if one exists, unless ``overwrite``) and open it for appending."""
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            if not overwrite:
                raise StoreError(f"{path}: already exists (pass overwrite=True to replace it)")
            import shutil
            os.close(_lock(path))   # never delete a store another process is recording into
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        root = zarr.open_group(store=LocalStore(path), mode="w", zarr_format=3)
        root.create_group("streams")
        root.create_group("meta/episode_ends")
        root.create_group("meta/episodes")
        record = {"format_version": FORMAT_VERSION, "num_episodes": 0, "streams": {},
                  "created_by": f"robot_stack {_software_version()}"}
        root.update_attributes({ROOT_KEY: record, **(attrs or {})})
        return cls(path, "a")

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> "EpisodeStore":
        """Open an existing store; ``mode="a"`` takes the writer lock and drops uncommitted data."""
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', not {mode!r}")
        if not Path(path).is_dir():
            raise StoreError(f"{path}: no such episode store")
        return cls(Path(path), mode)

    def _load_record(self) -> None:
        record = self.root.attrs.get(ROOT_KEY)
        if not isinstance(record, dict) or "format_version" not in record:
            raise StoreError(f"{self.path}: not an episode store (no {ROOT_KEY!r} attribute)")
        version = record["format_version"]
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise FormatVersionError(f"{self.path}: format_version {version!r} is newer than this code "
                                     f"reads ({FORMAT_VERSION}); upgrade robot_stack")
        self._record = record
        self.num_episodes = int(record["num_episodes"])
        self.streams: dict[str, StreamSpec] = {n: StreamSpec.from_json(s) for n, s in record["streams"].items()}
        self._ends: dict[str, np.ndarray] = {}
        self._arrays: dict[str, zarr.Array] = {}
        self._fast: dict[str, bool] = {}

    @property
    def format_version(self) -> int:
        return int(self._record["format_version"])

    def _recover(self) -> dict:
        """Truncate everything past the commit record: rows, episode-end entries, metadata, new streams."""
        dropped: dict = {}
        for name in list(self.root["streams"].group_keys()):
            if name not in self.streams:
                del self.root["streams"][name]
                if name in self.root["meta/episode_ends"]:
                    del self.root["meta/episode_ends"][name]
                dropped[name] = "uncommitted stream"
        with self._zstore.lenient():
            for name, spec in self.streams.items():
                for part in ("data", "capture_stamp", "receive_stamp"):
                    arr = self._array(name, part)
                    if arr.shape[0] != spec.length:
                        dropped[f"streams/{name}/{part}"] = arr.shape[0] - spec.length
                        arr.resize((spec.length, *arr.shape[1:]))
                ends = self._open_array(f"meta/episode_ends/{name}")
                if ends.shape[0] != self.num_episodes:
                    ends.resize((self.num_episodes,))
        for key in list(self.root["meta/episodes"].group_keys()):
            if int(key) >= self.num_episodes:
                del self.root["meta/episodes"][key]
                dropped[f"meta/episodes/{key}"] = "uncommitted episode"
        for partial in self.path.rglob("*.partial"):   # temp files of an interrupted atomic write
            partial.unlink(missing_ok=True)
        self._arrays.clear()
        return dropped

    # ---- reading -------------------------------------------------------------------------
    def _array(self, stream: str, part: str = "data") -> zarr.Array:
        key = f"streams/{stream}/{part}"
        arr = self._arrays.get(key)
        if arr is None:
            arr = self._arrays[key] = self._open_array(key)
        return arr

    def _open_array(self, key: str) -> zarr.Array:
        """Array handle that writes all-zero chunks too (array config is not persisted, so set on every open):
        an absent chunk must always mean damage, never "all zeros"."""
        return self.root[key].with_config({"write_empty_chunks": True})

    def _fast_frames(self, stream: str) -> bool:
        ok = self._fast.get(stream)
        if ok is None:
            ok = self._fast[stream] = fast_frames_supported(self._array(stream, "data"))
        return ok

    def episode_ends(self, stream: str) -> np.ndarray:
        """Exclusive end row of each committed episode in ``stream`` (replay-buffer style)."""
        if stream not in self.streams:
            raise KeyError(f"{self.path}: no stream {stream!r} (streams: {sorted(self.streams)})")
        ends = self._ends.get(stream)
        if ends is None:
            try:
                ends = np.asarray(self.root[f"meta/episode_ends/{stream}"][: self.num_episodes], dtype=np.int64)
            except Exception as exc:
                raise StoreError(f"{self.path}: episode index of stream {stream!r} unreadable: {exc}") from exc
            if ends.shape[0] != self.num_episodes:
                raise StoreError(f"{self.path}: episode index of stream {stream!r} has {ends.shape[0]} "
                                 f"entries for {self.num_episodes} episodes")
            self._ends[stream] = ends
        return ends

    def episode_range(self, k: int, stream: str) -> tuple[int, int]:
        """[start, end) rows of episode ``k`` in ``stream``."""
        k = self._check_index(k)
        ends = self.episode_ends(stream)
        start = int(ends[k - 1]) if k > 0 else 0
        end = int(ends[k])
        if not 0 <= start <= end <= self.streams[stream].length:
            raise CorruptEpisodeError(k, f"meta/episode_ends/{stream}", f"bad range [{start}, {end})")
        return start, end

    def _check_index(self, k: int) -> int:
        k = int(k)
        if k < 0:
            k += self.num_episodes
        if not 0 <= k < self.num_episodes:
            raise EpisodeNotFoundError(f"{self.path}: no episode {k} (store has {self.num_episodes})")
        return k

    def metadata(self, k: int) -> dict:
        """Episode ``k``'s metadata (task, instruction, success, robot, operator, seed, ...)."""
        k = self._check_index(k)
        key = _episode_key(k)
        try:
            return dict(self.root[key].attrs)
        except KeyError as exc:
            raise CorruptEpisodeError(k, key, "metadata group is missing") from exc
        except Exception as exc:
            raise CorruptEpisodeError(k, key, f"metadata unreadable: {exc}") from exc

    def read_stream(self, k: int, stream: str, rows: slice | None = None, parts=("data", "capture_stamp",
                                                                                 "receive_stamp")) -> dict:
        """``{"data", "capture_stamp", "receive_stamp"}`` of one stream of episode ``k`` (rows relative to it).

        `parts` picks a subset, e.g. only the stamps of a long image stream (no frames decoded)."""
        start, end = self.episode_range(k, stream)
        step = 1
        if rows is not None:
            s, e, step = rows.indices(end - start)
            if step < 1:
                raise ValueError("rows must be a forward slice")
            start, end = start + s, start + max(s, e)
        out = {}
        spec = self.streams[stream]
        for part in parts:
            key = f"streams/{stream}/{part}"
            try:
                if part == "data" and spec.per_frame and self._fast_frames(stream):
                    out[part] = read_frames(self.path / key, start, end, np.dtype(spec.dtype), spec.shape, step)
                else:
                    out[part] = self._array(stream, part)[start:end:step]
            except (MissingChunkError, FileNotFoundError) as exc:
                chunk = exc.args[0] if isinstance(exc, MissingChunkError) else Path(exc.filename).name
                raise CorruptEpisodeError(k, key, f"chunk {chunk!r} is missing") from exc
            except Exception as exc:
                raise CorruptEpisodeError(k, key, f"{type(exc).__name__}: {exc}") from exc
        if "data" in out and out["data"].shape[1:] != spec.shape:
            raise CorruptEpisodeError(k, f"streams/{stream}/data",
                                      f"rows have shape {out['data'].shape[1:]}, stream declares {spec.shape}")
        return out

    def read_episode(self, k: int, streams: Iterable[str] | None = None) -> dict[str, dict]:
        """Every stream of episode ``k``: ``{stream: {"data", "capture_stamp", "receive_stamp"}}``."""
        k = self._check_index(k)
        return {name: self.read_stream(k, name) for name in (streams or self.streams)}

    # ---- writing -------------------------------------------------------------------------
    def begin_episode(self, metadata: dict | None = None, **more) -> "EpisodeWriter":
        """Start episode ``num_episodes``; nothing is visible to readers until ``commit``."""
        from .writer import EpisodeWriter
        if self.mode != "a":
            raise StoreError(f"{self.path}: opened read-only; open with mode='a' to record")
        if self._writer is not None and not self._writer.closed:
            raise StoreError(f"{self.path}: episode {self._writer.episode} is still open (commit or discard it)")
        self._writer = EpisodeWriter(self, {**(metadata or {}), **more})
        return self._writer

    def _create_stream(self, name: str, dtype: np.dtype, shape: tuple) -> StreamSpec:
        row_bytes = max(1, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        chunk_rows = 1 if row_bytes >= PER_FRAME_CHUNK_BYTES else max(1, LOWDIM_CHUNK_BYTES // row_bytes)
        g = self.root.require_group(f"streams/{name}")
        with self._zstore.lenient():
            g.create_array("data", shape=(0, *shape), dtype=dtype, chunks=(chunk_rows, *shape), fill_value=0,
                           compressors=IMAGE_CODECS, config={"write_empty_chunks": True}, overwrite=True)
            for part in ("capture_stamp", "receive_stamp"):
                g.create_array(part, shape=(0,), dtype="float64", chunks=(max(1024, chunk_rows),), fill_value=0,
                               compressors=IMAGE_CODECS, config={"write_empty_chunks": True}, overwrite=True)
            ends = self.root["meta/episode_ends"].create_array(
                name, shape=(self.num_episodes,), dtype="int64", chunks=(4096,), fill_value=0,
                compressors=IMAGE_CODECS, config={"write_empty_chunks": True}, overwrite=True)
            if self.num_episodes:
                ends[:] = 0   # the stream had no rows in earlier episodes
        return StreamSpec(dtype.str, tuple(shape), chunk_rows, 0)

    def _commit_record(self, num_episodes: int, streams: dict[str, StreamSpec]) -> None:
        """The commit point: one atomic rewrite of the root zarr.json."""
        record = {**self._record, "num_episodes": num_episodes,
                  "streams": {n: s.to_json() for n, s in streams.items()}}
        self.root.update_attributes({ROOT_KEY: record})
        self._record = record
        self.num_episodes = num_episodes
        self.streams = {n: StreamSpec.from_json(s) for n, s in record["streams"].items()}
        self._ends.clear()

    # ---- misc ------------------------------------------------------------------------------
    def info(self) -> dict:
        return {"path": str(self.path), "format_version": self.format_version, "num_episodes": self.num_episodes,
                "streams": {n: {"dtype": np.dtype(s.dtype).name, "shape": list(s.shape), "rows": s.length,
                                "chunk_rows": s.chunk_rows} for n, s in self.streams.items()},
                "created_by": self._record.get("created_by"),
                "bytes_on_disk": sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())}

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._writer is not None and not self._writer.closed:
            self._writer.discard()
        self.close()

    def __repr__(self):
        return f"EpisodeStore({str(self.path)!r}, mode={self.mode!r}, episodes={self.num_episodes})"


def _lock(path: Path) -> int:
    """One writer per store: an flock the kernel releases when the process dies (SIGKILL included)."""
    fd = os.open(path / ".writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise StoreLockedError(f"{path}: another process is writing to this store") from exc
    return fd


def to_json_compatible(value: Any) -> Any:
    """Metadata must survive JSON: numpy scalars/arrays become Python values; anything else is an error."""
    if isinstance(value, dict):
        return {str(k): to_json_compatible(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_compatible(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    json.dumps(value)   # raises TypeError naming the type
    return value
