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

Power loss: a rename survives SIGKILL but not necessarily a power cut, so durable stores (the
default) fsync every file written since the last commit and its directories before writing the
record, write the record through temp file, fsync, rename, fsync of the root, and fsync the
replacement of any existing file (which may hold committed rows) before renaming it. Cost:
0.15-0.35 s per 300-step 2x128x128 episode on this machine (``bench data``), as much as writing
the episode, so ``durable=False`` skips it for scratch stores (benchmarks, tests, conversions).

One writer at a time (``acquire_lock``): an flock on ``.writer.lock``, which also records its owner
(pid, start time, boot id), so that a lock a dead writer left behind (its descriptor inherited by a
child that outlived it) is taken over, while a live writer is refused by pid. ``create(overwrite=True)``
deletes only a directory that is an episode store (``is_episode_store``), never any other.
"""
from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
import socket
import sys
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
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
# Measured on rendered twin frames (`robot-stack bench data`): zstd level 3 is 43x on 640x480 at
# 0.7 ms encode / 0.33 ms decode; lz4 is 21x, zstd 9 is 56x at 4 ms encode. Lossless, so round trips are bit-exact.
IMAGE_CODECS = (ZstdCodec(level=3), Crc32cCodec())
PER_FRAME_CHUNK_BYTES = 16 * 1024   # frames at least this large get one chunk each (images, depth)
LOWDIM_CHUNK_BYTES = 256 * 1024     # target chunk size for low-dimensional streams
IMAGE_GROWTH_ROWS = 256             # per-frame arrays grow their shape in blocks while recording
FSYNC_THREADS = 8                   # concurrent fsyncs at commit (I/O waits, not CPU)
if TYPE_CHECKING:
    from .writer import EpisodeWriter

_CHUNK_KEY = re.compile(r"(^|/)c(/\d+)*$")
LOCK_FILE = ".writer.lock"
log = logging.getLogger(__name__)


class MissingChunkError(KeyError):
    """A chunk file that must exist does not."""


class _StrictLocalStore(LocalStore):
    """LocalStore that raises for a missing chunk instead of returning the fill value, and remembers
    what it wrote (``written``: keys) so that a durable commit fsyncs exactly those files.

    Writes turn strictness off (``lenient``): zarr reads a not-yet-written chunk when it fills part of it.
    ``durable`` stores write every file themselves (see ``_put``): zarr's atomic write renames without fsync.
    """

    strict = True

    def __init__(self, root, *, read_only: bool = False, durable: bool = False):
        super().__init__(root, read_only=read_only)
        self.durable = durable
        self.written: set[str] = set()

    async def get(self, key, prototype=None, byte_range=None):
        buf = await super().get(key, prototype, byte_range)
        if buf is None and self.strict and _CHUNK_KEY.search(key):
            raise MissingChunkError(key)
        return buf

    async def set(self, key, value):
        if self.durable:
            if not self._is_open:
                await self._open()
            self._check_writable()
            await asyncio.to_thread(_put, self.root / key, value.as_buffer_like(), key == "zarr.json")
        else:
            await super().set(key, value)
        self.written.add(key)

    async def set_if_not_exists(self, key, value):
        await super().set_if_not_exists(key, value)
        self.written.add(key)

    def set_sync(self, key, value):
        if self.durable:
            self._ensure_open_sync()
            self._check_writable()
            _put(self.root / key, value.as_buffer_like(), key == "zarr.json")
        else:
            super().set_sync(key, value)
        self.written.add(key)

    @contextmanager
    def lenient(self):
        old, self.strict = self.strict, False
        try:
            yield
        finally:
            self.strict = old


def _fsync(path: Path) -> None:
    """fsync one file or directory; one deleted since it was written (a discarded episode's) needs none."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path, keys: Iterable[str]) -> None:
    """fsync the files ``keys`` (relative to ``root``) and every directory from theirs up to ``root``.

    A renamed-in file survives power loss only once its directory is synced too, and zarr creates
    the chunk directories (``c/<row>/0/0``) as it goes. Concurrent: ext4 folds concurrent fsyncs into
    few journal commits (an episode of 600 frames, measured here: 0.2-2.6 s one by one, 0.07-0.5 s on
    8 threads, depending on what else was using the disk)."""
    root = Path(root)
    files = {root / key for key in keys}
    dirs: set[Path] = set()
    for path in files:
        d = path.parent
        while d not in dirs:
            dirs.add(d)
            if d == root or d == d.parent:
                break
            d = d.parent
    dirs.add(root)
    with ThreadPoolExecutor(FSYNC_THREADS, thread_name_prefix="fsync") as pool:
        list(pool.map(_fsync, [*sorted(files), *sorted(dirs)]))


def _put(path: Path, data, record: bool) -> None:
    """Write ``path`` through a temp file and a rename, like zarr, adding the fsyncs durability needs.

    A file that already exists may hold committed rows (the shared chunk of a low-dimensional stream,
    an array's shape), so its replacement is fsynced before the rename: a power loss then leaves the
    old or the new content, never an empty file. A new file is synced at commit (``_fsync_tree``),
    before the record names it. The record itself is the commit point: its directory is fsynced too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rewrite = record or path.exists()
    tmp = path.with_suffix(f".{uuid.uuid4().hex}.partial")   # *.partial: removed by recovery if we die here
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            if rewrite:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if record:
        _fsync(path.parent)


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

    def __init__(self, path: Path, mode: str, durable: bool = True):
        self.path = Path(path)
        self.mode = mode
        self.durable = bool(durable)
        self._lock_fd = None
        self._forked = False
        self.took_over: dict | None = None   # the lock record of a dead writer whose lock this store took over
        if mode == "a":
            self._lock_fd, self.took_over = acquire_lock(self.path)
            _LOCKED_STORES.add(self)
        self._writer = None
        self.recovered: dict = {}
        self._zstore = _StrictLocalStore(self.path, read_only=(mode == "r"), durable=self.durable)
        try:
            try:
                self.root = zarr.open_group(store=self._zstore, mode="r" if mode == "r" else "r+", zarr_format=3)
            except FileNotFoundError as exc:
                raise StoreError(f"{self.path}: not an episode store (no zarr group: "
                                 f"{self.path / 'zarr.json'} is missing)") from exc
            except Exception as exc:   # truncated or hand-edited root metadata: JSON or zarr validation errors
                raise StoreError(f"{self.path / 'zarr.json'}: unreadable root metadata: "
                                 f"{type(exc).__name__}: {exc}") from exc
            self._load_record()
            if mode == "a":
                try:
                    self.recovered = self._recover()
                except StoreError:
                    raise
                except Exception as exc:   # damaged array metadata met while truncating uncommitted rows
                    raise StoreError(f"{self.path}: cannot recover the store for appending "
                                     f"(run `robot-stack data verify {self.path}`): {type(exc).__name__}: {exc}") from exc
        except BaseException:
            self.close()   # release the writer lock
            raise

    # ---- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, *, overwrite: bool = False, attrs: dict | None = None,
               durable: bool = True) -> "EpisodeStore":
        """Create an empty store (an error if one exists, unless ``overwrite``) and open it for appending.

        ``durable``: every commit is fsynced before it counts (see ``_commit_record``)."""
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            if not overwrite:
                raise StoreError(f"{path}: already exists (pass overwrite=True to replace it)")
            # overwrite replaces an episode store, nothing else: a mistyped path must not cost a directory
            if not is_episode_store(path):
                raise StoreError(f"{path}: refusing to overwrite: not an episode store (no readable {ROOT_KEY} "
                                 "record in its zarr.json); remove it by hand if it is meant to go")
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
        if durable:   # the empty store itself, and its entry in the parent directory
            _fsync_tree(path, [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()])
            _fsync(path.parent)
        return cls(path, "a", durable)

    @classmethod
    def open(cls, path: str | Path, mode: str = "r", durable: bool = True) -> "EpisodeStore":
        """Open an existing store; ``mode="a"`` takes the writer lock and drops uncommitted data.

        ``durable`` (appending): every commit is fsynced before it counts (see ``_commit_record``)."""
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', not {mode!r}")
        if not Path(path).is_dir():
            raise StoreError(f"{path}: no such episode store")
        return cls(Path(path), mode, durable)

    def _load_record(self) -> None:
        record = self.root.attrs.get(ROOT_KEY)
        if not isinstance(record, dict) or "format_version" not in record:
            raise StoreError(f"{self.path}: not an episode store (no {ROOT_KEY!r} attribute)")
        version = record["format_version"]
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise FormatVersionError(f"{self.path}: format_version {version!r} is newer than this code "
                                     f"reads ({FORMAT_VERSION}); upgrade robot_stack")
        # The record is JSON anyone can edit or damage: check its shape here, once, so that a bad
        # value is one error naming the file rather than an AttributeError deep inside a read.
        try:
            num_episodes = record["num_episodes"]
            if isinstance(num_episodes, bool) or not isinstance(num_episodes, int) or num_episodes < 0:
                raise ValueError(f"num_episodes {num_episodes!r} is not a count")
            if not isinstance(record["streams"], dict):
                raise ValueError(f"streams is a {type(record['streams']).__name__}, not a mapping")
            streams = {}
            for n, spec in record["streams"].items():
                try:
                    streams[n] = StreamSpec.from_json(spec)
                    np.dtype(streams[n].dtype)
                except Exception as exc:
                    raise ValueError(f"stream {n!r}: {type(exc).__name__}: {exc}") from exc
                if streams[n].length < 0 or streams[n].chunk_rows < 1 or any(
                        not isinstance(d, int) or d < 0 for d in streams[n].shape):
                    raise ValueError(f"stream {n!r}: bad length, chunk_rows or shape {spec!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{self.path / 'zarr.json'}: bad commit record ({ROOT_KEY}): "
                             f"{exc if not isinstance(exc, KeyError) else f'no {exc} entry'}") from exc
        self._record = record
        self.num_episodes = num_episodes
        self.streams: dict[str, StreamSpec] = streams
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
        for partial in self.path.glob(LOCK_FILE + ".new-*"):   # a lock takeover that died before its rename
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
            except MissingChunkError as exc:
                raise StoreError(f"{self.path}: episode index of stream {stream!r} unreadable: "
                                 f"chunk file {exc.args[0]} is missing") from exc
            except Exception as exc:
                raise StoreError(f"{self.path}: episode index of stream {stream!r} "
                                 f"(meta/episode_ends/{stream}) unreadable: {type(exc).__name__}: {exc}") from exc
            if ends.shape[0] != self.num_episodes:
                raise StoreError(f"{self.path}: episode index of stream {stream!r} has {ends.shape[0]} "
                                 f"entries for {self.num_episodes} episodes")
            self._ends[stream] = ends
        return ends

    def episode_range(self, k: int, stream: str) -> tuple[int, int]:
        """[start, end) rows of episode ``k`` in ``stream``."""
        k = self._check_index(k)
        try:
            ends = self.episode_ends(stream)
        except KeyError:
            raise
        except StoreError as exc:   # the whole index is bad; this error is about episode k, so it says so
            raise CorruptEpisodeError(k, f"meta/episode_ends/{stream}", str(exc).removeprefix(f"{self.path}: "),
                                      self.path) from exc
        start = int(ends[k - 1]) if k > 0 else 0
        end = int(ends[k])
        if not 0 <= start <= end <= self.streams[stream].length:
            raise CorruptEpisodeError(k, f"meta/episode_ends/{stream}", f"bad range [{start}, {end})", self.path)
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
            raise CorruptEpisodeError(k, key, "metadata group is missing", self.path) from exc
        except Exception as exc:
            raise CorruptEpisodeError(k, key, f"metadata ({key}/zarr.json) unreadable: {type(exc).__name__}: {exc}",
                                      self.path) from exc

    def read_stream(self, k: int, stream: str, rows: slice | None = None, parts=("data", "capture_stamp",
                                                                                 "receive_stamp"),
                    out: np.ndarray | None = None) -> dict:
        """``{"data", "capture_stamp", "receive_stamp"}`` of one stream of episode ``k`` (rows relative to it).

        `parts` picks a subset, e.g. only the stamps of a long image stream (no frames decoded); `out`
        receives the data rows (a slot of a larger buffer: the dataset decodes episodes in place)."""
        start, end = self.episode_range(k, stream)
        step = 1
        if rows is not None:
            s, e, step = rows.indices(end - start)
            if step < 1:
                raise ValueError("rows must be a forward slice")
            start, end = start + s, start + max(s, e)
        result = {}
        spec = self.streams[stream]
        want = (len(range(start, end, step)), *spec.shape)
        if out is not None and (out.shape != want or out.dtype != np.dtype(spec.dtype) or not out.flags.c_contiguous):
            raise ValueError(f"out must be a C-contiguous {np.dtype(spec.dtype)} array of shape {want}, "
                             f"not {out.dtype} {out.shape}")
        for part in parts:
            key = f"streams/{stream}/{part}"
            try:
                if part == "data" and spec.per_frame and self._fast_frames(stream):
                    result[part] = read_frames(self.path / key, start, end, np.dtype(spec.dtype), spec.shape, step, out)
                elif part == "data" and out is not None:
                    out[...] = self._array(stream, part)[start:end:step]
                    result[part] = out
                else:
                    result[part] = self._array(stream, part)[start:end:step]
            except (MissingChunkError, FileNotFoundError) as exc:
                if isinstance(exc, MissingChunkError):
                    chunk = exc.args[0]
                elif exc.filename:
                    chunk = os.path.relpath(exc.filename, self.path)
                else:
                    chunk = f"{key}/zarr.json"
                raise CorruptEpisodeError(k, key, f"chunk file {chunk} is missing", self.path) from exc
            except Exception as exc:
                raise CorruptEpisodeError(k, key, f"{type(exc).__name__}: {exc}", self.path) from exc
        if "data" in result and result["data"].shape[1:] != spec.shape:
            raise CorruptEpisodeError(k, f"streams/{stream}/data",
                                      f"rows have shape {result['data'].shape[1:]}, stream declares {spec.shape}",
                                      self.path)
        return result

    def read_part(self, episodes: Iterable[int], stream: str, part: str = "capture_stamp") -> list[np.ndarray]:
        """One part of ``stream`` for many episodes, in one zarr read per run of adjacent episodes.

        A zarr read costs about 1 ms however few rows it returns, so episode-by-episode reads dominated
        building a dataset's index. A failed bulk read is retried episode by episode: the error then
        names the episode, and a damaged chunk between the wanted episodes does not fail them."""
        if part not in ("data", "capture_stamp", "receive_stamp"):
            raise ValueError(f"part must be 'data', 'capture_stamp' or 'receive_stamp', not {part!r}")
        episodes = [self._check_index(k) for k in episodes]
        ranges = [self.episode_range(k, stream) for k in episodes]
        if part == "data" and self.streams[stream].per_frame:   # one file per row anyway
            return [self.read_stream(k, stream, parts=(part,))[part] for k in episodes]
        out: list = [None] * len(ranges)
        try:
            arr = self._array(stream, part)
            runs: list[list[int]] = []   # positions in `episodes`, grouped while less than a chunk apart
            hi = 0
            for j in sorted(range(len(ranges)), key=lambda j: ranges[j]):
                if runs and ranges[j][0] - hi <= arr.chunks[0]:
                    runs[-1].append(j)
                    hi = max(hi, ranges[j][1])
                else:
                    runs.append([j])
                    hi = ranges[j][1]
            for run in runs:
                lo, hi = ranges[run[0]][0], max(ranges[j][1] for j in run)
                block = arr[lo:hi]
                if part == "data" and block.shape[1:] != self.streams[stream].shape:
                    raise ValueError("rows have the wrong shape")
                for j in run:
                    out[j] = block[ranges[j][0] - lo: ranges[j][1] - lo]
        except Exception:
            return [self.read_stream(k, stream, parts=(part,))[part] for k in episodes]
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
        if self._forked:
            raise StoreError(f"{self.path}: opened for writing by the parent of this forked process; "
                             "open the store again here to record")
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
        """The commit point: one atomic rewrite of the root zarr.json.

        Durable stores first fsync every file written since the last commit and their directories, then
        write the record through temp file, fsync, rename, fsync of the root directory: the rename alone
        survives SIGKILL, but after a power loss the record could name chunks that never reached the disk."""
        record = {**self._record, "num_episodes": num_episodes,
                  "streams": {n: s.to_json() for n, s in streams.items()}}
        written = set(self._zstore.written)
        if self.durable:
            _fsync_tree(self.path, written)
        self.root.update_attributes({ROOT_KEY: record})
        self._zstore.written -= written | {"zarr.json"}
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


# ---- the writer lock ---------------------------------------------------------------------------
# One writer per store. The kernel's flock does most of the work: it is released when the last
# descriptor of the lock file closes, SIGKILL included. Two ways it outlives its process: a fork()
# (multiprocessing workers, a forked helper) or a child started with the descriptor (pass_fds,
# close_fds=False) inherits it and keeps the store locked after the writer is gone, as a stray
# recorder child would. So the lock file also records its owner (pid, the pid's start time, boot
# id, pid namespace, host); a process finding the flock held reads the record, and if the owner is
# provably dead it takes the lock over by renaming a fresh, already-locked file over the old one.
# "Provably": same host, same boot, same pid namespace, and the pid is gone or now belongs to a
# process that started at another time (pid reuse). Anything it cannot decide (another host on a
# shared file system, a record from an older version) is treated as alive: refusing is safe, a
# second writer is not. Forked children also drop their copy at fork (``_drop_locks_in_child``).
_LOCKED_STORES: "weakref.WeakSet[EpisodeStore]" = weakref.WeakSet()


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _pid_namespace() -> int | None:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def _process_start(pid: int) -> tuple[int, str] | None:
    """(start time in clock ticks since boot, state letter) of ``pid``, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()   # the command name (field 2) may hold spaces and ')'
    return int(fields[19]), fields[0]               # field 22 starttime, field 3 state


def _owner_record() -> dict:
    start = _process_start(os.getpid())
    return {"pid": os.getpid(), "start_time": start[0] if start else None, "boot_id": _boot_id(),
            "pid_ns": _pid_namespace(), "host": socket.gethostname(), "argv": " ".join(sys.argv)[:200]}


def owner_alive(record: dict | None) -> bool | None:
    """Whether the process a lock record names still runs: True, False (provably dead), or None (cannot tell)."""
    if not isinstance(record, dict) or isinstance(record.get("pid"), bool) or not isinstance(record.get("pid"), int):
        return None
    if record.get("host") != socket.gethostname() or record.get("pid_ns") != _pid_namespace():
        return None   # another machine or container: its pids mean nothing here
    boot = _boot_id()
    if boot is None or record.get("boot_id") is None:
        return None
    if record["boot_id"] != boot:
        return False  # written before a reboot: no process of that boot runs any more
    now = _process_start(record["pid"])
    if now is None or now[1] in ("Z", "X"):
        return False  # gone, or a zombie (its descriptors are already closed)
    return now[0] == record.get("start_time")   # a different start time: the pid was reused


def _describe(record: dict | None) -> str:
    if not isinstance(record, dict) or "pid" not in record:
        return "a process that left no owner record (an older version, or another tool)"
    argv = f" ({record['argv']})" if record.get("argv") else ""
    host = f" on {record['host']}" if record.get("host") != socket.gethostname() else ""
    return f"pid {record['pid']}{host}{argv}"


def _read_record(fd: int) -> dict | None:
    try:
        record = json.loads(os.pread(fd, 65536, 0) or b"null")
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _write_record(fd: int) -> None:
    """Our owner record into the lock file we hold; no fsync: after a power loss nobody holds the flock."""
    data = json.dumps(_owner_record()).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _try_flock(path: Path) -> tuple[int | None, dict | None]:
    """(fd, None) holding the lock of ``path``, or (None, holder's record) when a live descriptor holds it.

    A lock file replaced by a takeover between our open and our flock is retried: holding the flock
    of an unlinked file would lock nothing."""
    lock_path = path / LOCK_FILE
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            record = _read_record(fd)
            os.close(fd)
            return None, record
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, lock_path):
            return fd, None
        os.close(fd)


def acquire_lock(path: Path) -> tuple[int, dict | None]:
    """Take the writer lock of the store at ``path``: (descriptor, record of the dead owner taken over or None).

    Raises StoreLockedError naming the holder when a live (or undecidable) process holds it."""
    path = Path(path)
    fd, holder = _try_flock(path)
    if fd is not None:
        _write_record(fd)
        return fd, None
    if owner_alive(holder) is not False:
        raise StoreLockedError(f"{path}: locked for writing by {_describe(holder)}; stop that process first",
                               holder)
    # Takeovers are serialised by a second, never-replaced lock file, so two processes that both
    # found the owner dead cannot each install their own lock file; under it, decide again.
    guard = os.open(path / (LOCK_FILE + ".takeover"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)   # held for a few system calls only
        fd, holder = _try_flock(path)
        if fd is not None:                  # released meanwhile
            _write_record(fd)
            return fd, None
        if owner_alive(holder) is not False:   # someone else took it over first, and lives
            raise StoreLockedError(f"{path}: locked for writing by {_describe(holder)}; stop that process first",
                                   holder)
        # The new lock file is locked before it takes the lock's name: nobody can flock it first.
        tmp = path / f"{LOCK_FILE}.new-{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _write_record(fd)
            os.replace(tmp, path / LOCK_FILE)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
    finally:
        os.close(guard)
    log.warning("%s: took over the writer lock of %s, which is no longer running (a process it started "
                "still held the lock)", path, _describe(holder))
    return fd, holder


def _lock(path: Path) -> int:
    """One writer per store (see ``acquire_lock``)."""
    return acquire_lock(path)[0]


def _drop_locks_in_child() -> None:
    """A forked child must not keep its parent's stores locked after the parent dies; it may not write either."""
    for store in list(_LOCKED_STORES):
        if store._lock_fd is not None:
            try:
                os.close(store._lock_fd)
            except OSError:
                pass
            store._lock_fd = None
            store._forked = True


os.register_at_fork(after_in_child=_drop_locks_in_child)


def is_episode_store(path: str | Path) -> bool:
    """Whether ``path`` is a directory whose root metadata carries the episode store's commit record.

    What ``overwrite`` checks before deleting anything: a damaged store reads as "not a store" too,
    so it is never removed by a flag, only by hand."""
    try:
        meta = json.loads((Path(path) / "zarr.json").read_text())
        return isinstance(meta.get("attributes", {}).get(ROOT_KEY), dict)
    except (OSError, ValueError, AttributeError):
        return False


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
