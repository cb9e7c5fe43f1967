"""LeRobot datasets (format v3.0) from and to episode stores: `robot-stack data export|import --format lerobot`.

The layout is LeRobot's own (``lerobot.datasets.utils``/``dataset_writer`` of lerobot 0.4)::

    meta/info.json                               codebase_version "v3.0", fps, features, totals, path templates
    meta/stats.json                              per feature: min, max, mean, std, count, q01..q99
    meta/tasks.parquet                           index "task" (the string), column task_index (pandas layout)
    meta/episodes/chunk-000/file-000.parquet     one row per episode: tasks, length, dataset_from/to_index,
                                                 data/..., videos/<key>/{chunk,file}_index and from/to_timestamp,
                                                 stats/<feature>/<stat>
    data/chunk-000/file-000.parquet              one row per frame: the non-video features, timestamp,
                                                 frame_index, episode_index, index, task_index
    videos/<key>/chunk-000/file-000.mp4          the frames of every episode back to back (pts = frame / fps)

Mapping (export): a frame per row of the clock stream (``tick`` where there is one: the recorder's and
the expert's control clock), every other stream taken at its latest sample captured at or before that row
(``align_to_clock``, the dataset's rule). ``observation.state`` = ee_pose | gripper | joint_pos and
``action`` = action_pose | action_gripper as float32 (LeRobot's convention), named ``<stream>.<component>``
so that import splits them back; ``<cam>_rgb`` -> ``observation.images.<cam>`` (video); ``reward`` ->
``next.reward``; other numeric streams of at most one axis -> ``observation.<stream>`` in their own dtype.
The task string of an episode is its instruction (else its task name); the store's episode metadata rides
along as JSON in the episodes table (column ``robot_stack/metadata``) so that a round trip keeps seed,
success and camera calibration. Import reads any v3.0 dataset: state and action split by those names where
they are ours, else the streams ``state`` and ``action``.

Written without lerobot itself (it cannot be installed beside this project's torch, see docs/design.md):
pyarrow for parquet, PyAV for the videos (libsvtav1/yuv420p/g=2/crf=30 as LeRobot encodes by default).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import numpy as np

from .errors import StoreError
from .store import EpisodeStore

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000               # files per chunk directory (DEFAULT_CHUNK_SIZE)
DATA_FILE_MB = 100               # DEFAULT_DATA_FILE_SIZE_IN_MB
VIDEO_FILE_MB = 200              # DEFAULT_VIDEO_FILE_SIZE_IN_MB
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
TASKS_PATH = "meta/tasks.parquet"
DEFAULT_FEATURES = {             # lerobot.utils.constants.DEFAULT_FEATURES
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)   # compute_stats.DEFAULT_QUANTILES
STATE_STREAMS = ("ee_pose", "gripper", "joint_pos")
ACTION_STREAMS = ("action_pose", "action_gripper")
POSE_NAMES = ("x", "y", "z", "qx", "qy", "qz", "qw")   # the stack's poses: position + xyzw quaternion
SKIPPED_STREAMS = ("tick",)      # the clock itself: the frame timestamps carry it
METADATA_COLUMN = "robot_stack/metadata"
TIMESTAMP_TOLERANCE_S = 1e-4     # LeRobotDataset's default tolerance_s when it looks up video frames


# ---- small helpers -------------------------------------------------------------------------------
def _pa():
    import pyarrow as pa
    import pyarrow.parquet as pq
    return pa, pq


def _component_names(stream: str, width: int) -> list[str]:
    if width == 7 and stream in ("ee_pose", "action_pose"):
        return [f"{stream}.{n}" for n in POSE_NAMES]
    return [f"{stream}.{i}" for i in range(width)]


def _next_file(chunk: int, file: int) -> tuple[int, int]:
    """lerobot.datasets.utils.update_chunk_file_indices."""
    return (chunk + 1, 0) if file == CHUNKS_SIZE - 1 else (chunk, file + 1)


def _stats(values: np.ndarray, image: bool = False) -> dict[str, np.ndarray]:
    """compute_stats.get_feature_stats: per component (per channel, over [0, 1], for images)."""
    if image:   # (N, H, W, C) uint8 -> per channel, shape (C, 1, 1)
        x = values.astype(np.float64) / 255.0
        axes, shape = (0, 1, 2), (values.shape[-1], 1, 1)
    else:
        x = values.astype(np.float64).reshape(len(values), -1)
        axes, shape = (0,), (x.shape[1],)
    out = {"min": x.min(axis=axes), "max": x.max(axis=axes), "mean": x.mean(axis=axes), "std": x.std(axis=axes),
           "count": np.array([len(values)])}
    flat = np.moveaxis(x, -1, 0).reshape(x.shape[-1], -1) if image else x.T
    for q in QUANTILES:
        out[f"q{int(q * 100):02d}"] = np.quantile(flat, q, axis=1)
    return {k: (v if k == "count" else np.asarray(v).reshape(shape)) for k, v in out.items()}


def _json_stats(stats: dict) -> dict:
    return {f: {k: np.asarray(v).tolist() for k, v in s.items()} for f, s in stats.items()}


def _check_out(out: Path, overwrite: bool, marker: str, what: str) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise StoreError(f"{out}: already exists (pass --overwrite to replace it)")
        if not (out / marker).is_file():
            raise StoreError(f"{out}: refusing to overwrite: not {what} (no {marker}); remove it by hand if it is "
                             "meant to go")


@contextmanager
def new_store(out: Path, sources: list[Path], overwrite: bool, durable: bool, attrs: dict):
    """A new episode store for an import, built beside `out` and swapped in only once complete (as merge does):
    a failed import leaves no half store, and an existing `out` (replaced only with `overwrite`, only if it is
    an episode store) as it was."""
    from .tools import _check_output, _swap_in, _temp_name
    out = Path(out)
    _check_output(out, [Path(s) for s in sources], overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(out)
    try:
        store = EpisodeStore.create(tmp, attrs=attrs, durable=durable)
        try:
            yield store
        finally:
            store.close()
        _swap_in(tmp, out, durable)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap(tmp: Path, out: Path) -> None:
    """The finished directory `tmp` becomes `out`; an old `out` (checked by _check_out) goes only now."""
    if out.exists():
        aside = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(out, aside)
        os.rename(tmp, out)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.rename(tmp, out)


# ---- video ---------------------------------------------------------------------------------------
@contextmanager
def _keep_scheduling():
    """The calling thread's scheduling policy as it was before: SVT-AV1 sets the thread that starts an encoder to
    SCHED_FIFO 99 where it may (root). Kept, that spread to every thread and process the exporting one started
    after it (a test suite's later ROS graphs all at FIFO 99, where one busy thread starves its neighbours: joint
    states went stale, replays drifted)."""
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if os.sched_getscheduler(0) != policy or os.sched_getparam(0).sched_priority != param.sched_priority:
            os.sched_setscheduler(0, policy, param)


class _VideoFile:
    """One MP4 being written: frames of consecutive episodes, pts = frame number (time base 1/fps)."""

    def __init__(self, path: Path, fps: int, width: int, height: int, vcodec: str, crf: int, g: int):
        import av
        if (width % 2) or (height % 2):
            raise ValueError(f"{path}: yuv420p video needs even image sizes, got {width}x{height}")
        os.environ.setdefault("SVT_LOG", "1")   # SVT-AV1 prints its whole configuration to stderr otherwise
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.frames, self.bytes = path, 0, 0
        self.container = av.open(str(path), "w")
        options = {"g": str(g), "crf": str(crf)}
        if vcodec == "libsvtav1":
            options["preset"] = "12"       # LeRobot's default preset; fastest
        self.stream = self.container.add_stream(vcodec, fps, options=options)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"

    def add(self, frames: np.ndarray) -> None:
        import av
        with _keep_scheduling():
            for img in frames:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                frame.pts = self.frames
                self.frames += 1
                self._mux(self.stream.encode(frame))

    def _mux(self, packets) -> None:
        for p in packets:
            self.bytes += p.size
            self.container.mux(p)

    def close(self) -> None:
        with _keep_scheduling():
            self._mux(self.stream.encode())
            self.container.close()


def video_info(path: Path) -> dict:
    """video_utils.get_video_info: what LeRobot stores under a video feature's ``info``."""
    import av
    with av.open(str(path)) as f:
        s = f.streams.video[0]
        return {"video.height": s.height, "video.width": s.width, "video.codec": s.codec_context.codec.canonical_name
                if hasattr(s.codec_context.codec, "canonical_name") else s.codec_context.name,
                "video.pix_fmt": s.pix_fmt, "video.is_depth_map": False, "video.fps": int(s.base_rate),
                "video.channels": 3, "has_audio": bool(f.streams.audio)}


class VideoReader:
    """Frames of one MP4 read forward in time, holding only those the current episode needs: a dataset's
    video file holds every episode of a camera back to back (hundreds of MB of AV1 for a hub dataset)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._container = None
        self._open()

    def _open(self) -> None:
        import av
        self.close()
        try:
            self._container = av.open(str(self.path))
            stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError, OSError) as exc:
            raise ValueError(f"{self.path}: cannot open video: {exc}") from exc
        self._frames = self._container.decode(stream)
        self._base = stream.time_base
        self.buffer: list[tuple[float, np.ndarray]] = []
        self.done = False

    def _read_one(self) -> None:
        import av
        try:
            fr = next(self._frames)
        except StopIteration:
            self.done = True
            return
        except av.FFmpegError as exc:
            raise ValueError(f"{self.path}: cannot decode video: {exc}") from exc
        t = float(fr.pts * self._base) if fr.pts is not None else (self.buffer[-1][0] if self.buffer else 0.0)
        self.buffer.append((t, fr.to_ndarray(format="rgb24")))

    def frames_at(self, want: np.ndarray, tolerance_s: float) -> np.ndarray:
        """The frame nearest each wanted time; ValueError naming the file where none is within `tolerance_s`."""
        lo, hi = float(want.min()) - tolerance_s, float(want.max()) + tolerance_s
        if self.buffer and self.buffer[0][0] > lo:
            self._open()                                   # asked for an earlier time: read from the start
        while not self.done and (not self.buffer or self.buffer[-1][0] < hi):
            self._read_one()
            while len(self.buffer) > 1 and self.buffer[1][0] <= lo:
                self.buffer.pop(0)                         # before this episode
        if not self.buffer:
            raise ValueError(f"{self.path}: video has no frames")
        stamps = np.array([t for t, _ in self.buffer])
        idx = np.clip(np.searchsorted(stamps, want), 0, len(stamps) - 1)
        prev = np.clip(idx - 1, 0, len(stamps) - 1)
        idx = np.where(np.abs(stamps[prev] - want) < np.abs(stamps[idx] - want), prev, idx)
        off = np.abs(stamps[idx] - want)
        if np.any(off > tolerance_s):
            i = int(np.argmax(off))
            raise ValueError(f"{self.path}: no frame within {tolerance_s} s of {want[i]:.4f} s "
                             f"(nearest {stamps[idx[i]]:.4f} s)")
        return np.stack([self.buffer[j][1] for j in idx])

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


# ---- export --------------------------------------------------------------------------------------
def _clock(store: EpisodeStore, clock: str | None) -> str:
    if clock is not None:
        if clock not in store.streams:
            raise ValueError(f"{store.path}: no stream {clock!r} to use as the clock (streams: {sorted(store.streams)})")
        return clock
    for name in ("tick", "action_pose", "ee_pose"):
        if name in store.streams:
            return name
    return next(iter(store.streams))


def _plan_features(store: EpisodeStore) -> tuple[dict, dict, list[str]]:
    """LeRobot features, and how each is made: {feature: ("concat", [streams]) | ("video", stream) | ("stream", s)}."""
    features: dict = {}
    plan: dict = {}
    skipped: list[str] = []
    specs = store.streams
    for key, streams in (("observation.state", STATE_STREAMS), ("action", ACTION_STREAMS)):
        present = [s for s in streams if s in specs and len(specs[s].shape) <= 1]
        if present:
            names = [n for s in present for n in _component_names(s, int(np.prod(specs[s].shape, dtype=int)))]
            features[key] = {"dtype": "float32", "shape": [len(names)], "names": names}
            plan[key] = ("concat", present)
    used = {s for _, (kind, ss) in plan.items() for s in ss}
    for name, spec in specs.items():
        if name in used:
            continue
        dtype = np.dtype(spec.dtype)
        if len(spec.shape) == 3 and spec.shape[2] == 3 and dtype == np.uint8 and name.endswith("_rgb"):
            key = f"observation.images.{name[:-4]}"
            features[key] = {"dtype": "video", "shape": list(spec.shape), "names": ["height", "width", "channels"]}
            plan[key] = ("video", name)
        elif name in SKIPPED_STREAMS or name.startswith("align.") or len(spec.shape) > 1:
            skipped.append(name)
        else:
            key = "next.reward" if name == "reward" else f"observation.{name}"
            width = int(np.prod(spec.shape, dtype=int)) if spec.shape else 1
            features[key] = {"dtype": "float32" if name == "reward" else dtype.name, "shape": [width],
                             "names": None if width == 1 else _component_names(name, width)}
            plan[key] = ("stream", name)
    return features, plan, skipped


def _task_of(meta: dict) -> str:
    return str(meta.get("instruction") or meta.get("task") or "")


def _fps(store: EpisodeStore, clock: str) -> int:
    for k in range(store.num_episodes):
        stamps = store.read_stream(k, clock, parts=("capture_stamp",))["capture_stamp"]
        if len(stamps) >= 2:
            dt = float(np.median(np.diff(stamps)))
            if dt > 0:
                return max(1, int(round(1.0 / dt)))
    raise ValueError(f"{store.path}: cannot tell the frame rate from stream {clock!r}; pass --fps")


def _arrow_column(values: np.ndarray, ft: dict):
    """The column as LeRobot's datasets features store it: shape (1,) -> a scalar Value, (n,) -> Sequence(length=n)."""
    pa, _ = _pa()
    if ft["shape"] == [1]:
        return pa.array(values.reshape(len(values)))
    flat = pa.array(values.reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, int(ft["shape"][0]))


def _hf_features(features: dict) -> dict:
    """The ``huggingface`` schema metadata ``datasets`` writes (get_hf_features_from_features)."""
    out = {}
    for key, ft in features.items():
        if ft["dtype"] == "video":
            continue
        if list(ft["shape"]) == [1]:
            out[key] = {"dtype": ft["dtype"], "_type": "Value"}
        else:
            out[key] = {"feature": {"dtype": ft["dtype"], "_type": "Value"}, "length": int(ft["shape"][0]),
                        "_type": "Sequence"}
    return out


def _write_table(path: Path, columns: dict, hf: dict | None = None, pandas_index: str | None = None) -> None:
    pa, pq = _pa()
    table = pa.table(columns)
    meta = dict(table.schema.metadata or {})
    if hf is not None:
        meta[b"huggingface"] = json.dumps({"info": {"features": hf}}).encode()
    if pandas_index is not None:   # what DataFrame.to_parquet writes for a named string index
        cols = [{"name": n, "field_name": n, "pandas_type": "unicode" if pa.types.is_string(t) else str(t),
                 "numpy_type": "object" if pa.types.is_string(t) else str(t), "metadata": None}
                for n, t in zip(table.schema.names, table.schema.types)]
        meta[b"pandas"] = json.dumps({"index_columns": [pandas_index], "column_indexes": [
            {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
             "metadata": {"encoding": "UTF-8"}}], "columns": cols, "creator": {"library": "pyarrow",
             "version": pa.__version__}, "pandas_version": "2.2.3"}).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata(meta), path, compression="snappy")


def export_lerobot(store_path: str | Path, out: str | Path, *, fps: int | None = None, clock: str | None = None,
                   vcodec: str = "libsvtav1", crf: int = 30, g: int = 2, overwrite: bool = False,
                   episodes: Iterable[int] | None = None, repo_id: str | None = None) -> dict:
    """Write the episodes of the store at `store_path` as a LeRobot v3.0 dataset in the new directory `out`.

    `fps`: the dataset's frame rate (default: the clock stream's median rate, rounded); `clock`: the stream
    whose rows become frames (default ``tick``, else ``action_pose``). The dataset is built beside `out`
    and renamed into place once complete; `overwrite` replaces only a LeRobot dataset."""
    out = Path(out)
    _check_out(out, overwrite, "meta/info.json", "a LeRobot dataset")
    store = EpisodeStore.open(store_path)
    clock = _clock(store, clock)
    fps = int(fps) if fps else _fps(store, clock)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    features, plan, skipped = _plan_features(store)
    ep_list = list(range(store.num_episodes)) if episodes is None else [store._check_index(k) for k in episodes]
    if not ep_list:
        raise ValueError(f"{store.path}: no episodes to export")
    tmp = out.with_name(f".{out.name}.export-{uuid.uuid4().hex[:8]}.partial")
    try:
        result = _export(store, tmp, ep_list, fps, clock, features, plan, vcodec, crf, g)
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        store.close()
    return {"dataset": str(out), "repo_id": repo_id or out.name, **result, "clock": clock, "skipped_streams": skipped}


def _export(store, root: Path, ep_list, fps, clock, features, plan, vcodec, crf, g) -> dict:
    pa, _ = _pa()
    all_features = {**features, **DEFAULT_FEATURES}
    video_keys = [k for k, (kind, _) in plan.items() if kind == "video"]
    tasks: dict[str, int] = {}
    rows: dict[str, list] = {k: [] for k in all_features if all_features[k]["dtype"] != "video"}
    ep_rows: list[dict] = []
    ep_stats: list[dict] = []
    videos: dict[str, _VideoFile] = {}
    video_pos: dict[str, tuple[int, int]] = {k: (0, 0) for k in video_keys}
    image_stats_samples: dict[str, list] = {k: [] for k in video_keys}
    total = 0
    for new_k, k in enumerate(ep_list):
        meta = store.metadata(k)
        clock_stamps = store.read_stream(k, clock, parts=("capture_stamp",))["capture_stamp"]
        n = len(clock_stamps)
        if n == 0:
            raise ValueError(f"{store.path}: episode {k} has no rows in the clock stream {clock!r}")
        task = _task_of(meta)
        task_index = tasks.setdefault(task, len(tasks))
        cols: dict[str, np.ndarray] = {}
        for key, (kind, src) in plan.items():
            names = src if kind == "concat" else [src]
            parts = []
            for s in names:
                r = store.read_stream(k, s)
                if len(r["data"]) == 0:
                    raise ValueError(f"{store.path}: episode {k} has no samples of stream {s!r}")
                # latest sample at or before each frame; 1 us of slack absorbs stamps computed as t * dt
                idx = np.clip(np.searchsorted(r["capture_stamp"], clock_stamps + 1e-6, side="right") - 1,
                              0, len(r["data"]) - 1)
                parts.append(r["data"][idx].reshape(n, -1) if kind != "video" else r["data"][idx])
            if kind == "video":
                cols[key] = parts[0]
            else:
                cols[key] = np.concatenate(parts, axis=1).astype(all_features[key]["dtype"])
        frame_index = np.arange(n, dtype=np.int64)
        cols["timestamp"] = (frame_index / fps).astype(np.float32)
        cols["frame_index"] = frame_index
        cols["episode_index"] = np.full(n, new_k, dtype=np.int64)
        cols["index"] = np.arange(total, total + n, dtype=np.int64)
        cols["task_index"] = np.full(n, task_index, dtype=np.int64)
        row = {"episode_index": new_k, "tasks": [task], "length": n, "data/chunk_index": 0, "data/file_index": 0,
               "dataset_from_index": total, "dataset_to_index": total + n,
               "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
        stats = {}
        for key in all_features:
            if all_features[key]["dtype"] == "video":
                frames = cols[key]
                v = videos.get(key)
                if v is not None and v.bytes >= VIDEO_FILE_MB * 1e6:   # roll over to the next file
                    v.close()
                    video_pos[key] = _next_file(*video_pos[key])
                    v = None
                if v is None:
                    c, f = video_pos[key]
                    path = root / VIDEO_PATH.format(video_key=key, chunk_index=c, file_index=f)
                    v = videos[key] = _VideoFile(path, fps, frames.shape[2], frames.shape[1], vcodec, crf, g)
                start = v.frames
                v.add(frames)
                c, f = video_pos[key]
                row.update({f"videos/{key}/chunk_index": c, f"videos/{key}/file_index": f,
                            f"videos/{key}/from_timestamp": start / fps, f"videos/{key}/to_timestamp": v.frames / fps})
                sample = frames[np.linspace(0, n - 1, min(n, 100)).round().astype(int)]
                stats[key] = _stats(sample, image=True)
                image_stats_samples[key].append(sample)
            else:
                stats[key] = _stats(cols[key])
                rows[key].append(cols[key])
        for key, s in stats.items():
            for stat, value in s.items():
                row[f"stats/{key}/{stat}"] = np.asarray(value).reshape(-1).tolist()
        kept = {key: v for key, v in meta.items() if key not in ("episode", "streams")}
        kept["lerobot_t0"] = float(clock_stamps[0])
        row[METADATA_COLUMN] = json.dumps(kept)
        ep_rows.append(row)
        ep_stats.append(stats)
        total += n
    for v in videos.values():
        v.close()

    # data: one file (LeRobot rolls over at data_files_size_in_mb; frames without images are small)
    data_cols = {key: _arrow_column(np.concatenate(rows[key]), all_features[key]) for key in rows}
    hf = _hf_features(all_features)
    _write_table(root / DATA_PATH.format(chunk_index=0, file_index=0), data_cols, hf)
    # episodes
    ep_cols: dict = {}
    for key in ep_rows[0]:
        values = [r.get(key) for r in ep_rows]
        if key == "tasks":
            ep_cols[key] = pa.array(values, type=pa.list_(pa.string()))
        elif key.startswith("stats/"):
            ep_cols[key] = pa.array(values, type=pa.list_(pa.int64() if key.endswith("/count") else pa.float64()))
        else:
            ep_cols[key] = pa.array(values)
    _write_table(root / EPISODES_PATH.format(chunk_index=0, file_index=0), ep_cols)
    # tasks (pandas layout: DataFrame index "task", column task_index)
    _write_table(root / TASKS_PATH, {"task_index": pa.array(list(tasks.values()), type=pa.int64()),
                                      "task": pa.array(list(tasks.keys()), type=pa.string())}, pandas_index="task")
    # stats over the whole dataset (images: over the frames sampled per episode)
    stats = {}
    for key, ft in all_features.items():
        if ft["dtype"] == "video":
            stats[key] = _stats(np.concatenate(image_stats_samples[key]), image=True)
            stats[key]["count"] = np.array([total])
        else:
            stats[key] = _stats(np.concatenate(rows[key]))
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta/stats.json").write_text(json.dumps(_json_stats(stats), indent=4))
    for key in video_keys:
        all_features[key]["info"] = video_info(root / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0))
    robot = store.metadata(ep_list[0]).get("robot") or store.root.attrs.get("robot")
    info = {"codebase_version": CODEBASE_VERSION, "robot_type": robot, "total_episodes": len(ep_rows),
            "total_frames": total, "total_tasks": len(tasks), "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILE_MB, "video_files_size_in_mb": VIDEO_FILE_MB, "fps": fps,
            "splits": {"train": f"0:{len(ep_rows)}"}, "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if video_keys else None, "features": all_features}
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    return {"episodes": len(ep_rows), "frames": total, "fps": fps, "tasks": list(tasks),
            "features": list(features), "videos": video_keys}


# ---- reading a dataset -----------------------------------------------------------------------------
def _read_table(path: Path):
    _, pq = _pa()
    if not path.is_file():
        raise ValueError(f"{path}: missing")
    try:
        return pq.read_table(path)
    except Exception as exc:
        raise ValueError(f"{path}: unreadable parquet: {type(exc).__name__}: {exc}") from exc


def load_info(root: Path) -> dict:
    """meta/info.json, checked the way LeRobotDatasetMetadata relies on it; ValueError naming the file."""
    path = root / "meta/info.json"
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: missing: {root} is not a LeRobot dataset") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable: {exc}") from exc
    if not isinstance(info, dict):
        raise ValueError(f"{path}: not a JSON object")
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3."):
        raise ValueError(f"{path}: codebase_version {version or None!r}; this reads LeRobot v3.x datasets "
                         "(convert older ones with lerobot's convert_dataset_v21_to_v30)")
    for key in ("fps", "features", "data_path", "total_episodes"):
        if key not in info:
            raise ValueError(f"{path}: no {key!r} entry")
    fps = info["fps"]
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
        raise ValueError(f"{path}: fps {fps!r} is not a positive number")
    if not isinstance(info["features"], dict) or not all(isinstance(f, dict) and "dtype" in f and "shape" in f
                                                         for f in info["features"].values()):
        raise ValueError(f"{path}: features must map names to {{dtype, shape, ...}}")
    if any(f["dtype"] == "video" for f in info["features"].values()) and not info.get("video_path"):
        raise ValueError(f"{path}: video features but no video_path")
    return info


def _column(table, name: str, path: Path) -> np.ndarray:
    if name not in table.column_names:
        raise ValueError(f"{path}: no column {name!r}")
    col = table.column(name).combine_chunks()
    import pyarrow as pa
    if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        values = col.flatten().to_numpy(zero_copy_only=False)
        return values.reshape(len(col), -1)
    return col.to_numpy(zero_copy_only=False)


def _split_names(names, width: int) -> list[tuple[str, int]] | None:
    """[(stream, width), ...] when every name is ``<stream>.<component>`` in runs, else None."""
    if not isinstance(names, list) or len(names) != width or not all(isinstance(n, str) and "." in n for n in names):
        return None
    runs: list[list] = []
    for n in names:
        stream = n.split(".", 1)[0]
        if runs and runs[-1][0] == stream:
            runs[-1][1] += 1
        elif any(r[0] == stream for r in runs):
            return None
        else:
            runs.append([stream, 1])
    return [(s, w) for s, w in runs]


def _stream_layout(info: dict) -> dict[str, list[tuple[str, int, int]]]:
    """feature -> [(stream, first column, width)] for the non-video features import keeps."""
    layout = {}
    for key, ft in info["features"].items():
        if key in DEFAULT_FEATURES or ft["dtype"] in ("video", "image", "string"):
            continue
        width = int(np.prod(ft["shape"], dtype=int)) if ft["shape"] else 1
        if key in ("observation.state", "action"):
            runs = _split_names(ft.get("names"), width)
            if runs is None:
                layout[key] = [("state" if key == "observation.state" else "action", 0, width)]
            else:
                col, parts = 0, []
                for s, w in runs:
                    parts.append((s, col, w))
                    col += w
                layout[key] = parts
        elif key == "next.reward":
            layout[key] = [("reward", 0, width)]
        else:
            name = key.removeprefix("observation.").replace("/", ".")
            layout[key] = [(name, 0, width)]
    return layout


def import_lerobot(src: str | Path, out: str | Path, *, overwrite: bool = False, durable: bool = True,
                   tolerance_s: float = TIMESTAMP_TOLERANCE_S) -> dict:
    """Read the LeRobot v3.x dataset at `src` into a new episode store at `out`.

    Frames become rows at stamps t0 + frame_index / fps (t0: the exported episode's first stamp where the
    dataset came from this stack, else 0); video frames are looked up at from_timestamp + timestamp within
    `tolerance_s`, as LeRobotDataset does. Task strings become each episode's instruction (and ``tasks``)."""
    root = Path(src)
    info = load_info(root)
    fps = float(info["fps"])
    features = info["features"]
    layout = _stream_layout(info)
    video_keys = [k for k, f in features.items() if f["dtype"] == "video"]
    image_keys = [k for k, f in features.items() if f["dtype"] == "image"]
    ep_tables = sorted((root / "meta/episodes").glob("*/*.parquet"))
    if not ep_tables:
        raise ValueError(f"{root / 'meta/episodes'}: no episode tables (chunk-*/file-*.parquet)")
    import pyarrow as pa
    episodes = pa.concat_tables([_read_table(p) for p in ep_tables], promote_options="default").to_pylist()
    episodes.sort(key=lambda r: r["episode_index"])
    tasks_path = root / TASKS_PATH
    tasks_table = _read_table(tasks_path)
    if "task_index" not in tasks_table.column_names:
        raise ValueError(f"{tasks_path}: no column 'task_index'")
    task_col = "task" if "task" in tasks_table.column_names else "__index_level_0__"
    if task_col not in tasks_table.column_names:
        raise ValueError(f"{tasks_path}: no task strings (index 'task')")
    task_names = dict(zip(tasks_table.column("task_index").to_pylist(), tasks_table.column(task_col).to_pylist()))
    data_files: dict[tuple[int, int], object] = {}
    readers: dict[str, VideoReader] = {}

    def data_table(c: int, f: int):
        if (c, f) not in data_files:
            data_files[(c, f)] = _read_table(root / info["data_path"].format(chunk_index=c, file_index=f))
        return data_files[(c, f)]

    out = Path(out)
    counts = {"episodes": 0, "frames": 0}
    try:
        with new_store(out, [root], overwrite, durable, {"source": "lerobot", "lerobot_dataset": str(root), "fps": fps,
                                                          "robot": info.get("robot_type")}) as store:
            for ep in episodes:
                k = int(ep["episode_index"])
                c, f = int(ep.get("data/chunk_index") or 0), int(ep.get("data/file_index") or 0)
                table = data_table(c, f)
                path = root / info["data_path"].format(chunk_index=c, file_index=f)
                ep_col = _column(table, "episode_index", path)
                sel = np.flatnonzero(ep_col == k)
                if len(sel) == 0:
                    raise ValueError(f"{path}: no frames of episode {k}")
                sub = table.take(pa.array(sel))
                order = np.argsort(_column(sub, "frame_index", path), kind="stable")
                sub = sub.take(pa.array(order))
                n = sub.num_rows
                if ep.get("length") is not None and int(ep["length"]) != n:
                    raise ValueError(f"{path}: episode {k} has {n} frames, its episode table says {ep['length']}")
                meta = json.loads(ep[METADATA_COLUMN]) if ep.get(METADATA_COLUMN) else {}
                t0 = float(meta.pop("lerobot_t0", 0.0))
                stamps = t0 + _column(sub, "frame_index", path).astype(np.float64) / fps
                task_idx = _column(sub, "task_index", path)
                ep_tasks = [task_names.get(int(t), "") for t in dict.fromkeys(task_idx.tolist())]
                if not meta:
                    meta = {"task": ep_tasks[0] if ep_tasks else "", "operator": "lerobot", "robot": info.get("robot_type")}
                meta.setdefault("instruction", ep_tasks[0] if ep_tasks else "")
                meta["tasks"] = ep_tasks
                meta["lerobot_episode_index"] = k
                with store.begin_episode(meta) as writer:
                    for key, parts in layout.items():
                        values = _column(sub, key, path).reshape(n, -1)
                        if values.dtype.kind == "f":
                            values = values.astype(np.float64)   # the stack's streams are float64 (merge needs equal dtypes)
                        for stream, col, width in parts:
                            block = values[:, col:col + width]
                            if features[key]["shape"] in ([1], (1,)) and stream not in ("state", "action"):
                                block = block.reshape(n)   # a scalar per row
                            writer.append_many(stream, np.ascontiguousarray(block), stamps)
                    for key in video_keys:
                        vpath = root / info["video_path"].format(video_key=key, chunk_index=int(ep[f"videos/{key}/chunk_index"]),
                                                                 file_index=int(ep[f"videos/{key}/file_index"]))
                        reader = readers.get(key)
                        if reader is None or reader.path != vpath:
                            if reader is not None:
                                reader.close()
                            reader = readers[key] = VideoReader(vpath)
                        want = float(ep[f"videos/{key}/from_timestamp"]) + _column(sub, "timestamp", path).astype(np.float64)
                        frames = reader.frames_at(want, tolerance_s)
                        writer.append_many(f"{key.removeprefix('observation.images.')}_rgb", frames, stamps)
                    for key in image_keys:
                        import imageio.v3 as iio
                        col = sub.column(key).to_pylist()
                        imgs = np.stack([iio.imread(c["bytes"]) if c and c.get("bytes") else iio.imread(root / c["path"])
                                         for c in col])
                        writer.append_many(f"{key.removeprefix('observation.images.')}_rgb", imgs[..., :3], stamps)
                    writer.append_many("tick", stamps, stamps)
                    writer.commit(success=meta.pop("success", None))
                counts["episodes"] += 1
                counts["frames"] += n
    finally:
        for reader in readers.values():
            reader.close()
    return {"store": str(out), **counts, "fps": fps, "tasks": sorted(set(task_names.values())),
            "streams": sorted(EpisodeStore.open(out).streams)}
