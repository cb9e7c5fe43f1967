"""What `robot-stack data info|ls|show|video|verify|merge` do: plain dicts, JSON-ready."""
from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .align import align_to_clock
from .errors import StoreError
from .store import LOCK_FILE, EpisodeStore, _fsync, _lock, is_episode_store
from .verify import verify as _verify

EPISODE_COLUMNS = ("task", "instruction", "success", "robot", "operator", "seed")


def info(path: str | Path) -> dict:
    """Format, streams (dtype, shape, rows), episode and success counts, size on disk."""
    store = EpisodeStore.open(path)
    out = store.info()
    successes = [store.metadata(k).get("success") for k in range(store.num_episodes)]
    out["successes"] = sum(1 for s in successes if s is True)
    return out


def _duration(store: EpisodeStore, k: int) -> float:
    spans = []
    for name in store.streams:
        stamps = store.read_stream(k, name, parts=("capture_stamp",))["capture_stamp"]
        if len(stamps):
            spans.append((stamps[0], stamps[-1]))
    return float(max(e for _, e in spans) - min(s for s, _ in spans)) if spans else 0.0


def list_episodes(path: str | Path) -> list[dict]:
    """One row per episode: index, the metadata columns, duration, rows per stream."""
    store = EpisodeStore.open(path)
    rows = []
    for k in range(store.num_episodes):
        meta = store.metadata(k)
        rows.append({"episode": k, **{c: meta.get(c) for c in EPISODE_COLUMNS},
                     "duration_s": round(_duration(store, k), 3), "rows": meta.get("streams", {})})
    return rows


def stream_timing(capture: np.ndarray, receive: np.ndarray) -> dict:
    """Rate, gaps (intervals over twice the median) and transport latency of one stream."""
    n = len(capture)
    out = {"rows": n}
    if n >= 2:
        dt = np.diff(capture)
        median = float(np.median(dt))
        out.update(rate_hz=round((n - 1) / float(capture[-1] - capture[0]), 3) if capture[-1] > capture[0] else None,
                   median_dt_s=median, max_dt_s=float(dt.max()), gaps=int(np.sum(dt > 2 * median)),
                   non_monotonic=int(np.sum(dt < 0)))
    if n:
        lat = receive - capture
        out.update(latency_mean_s=float(lat.mean()), latency_max_s=float(lat.max()))
    return out


def show(path: str | Path, k: int) -> dict:
    """Episode ``k``'s metadata and, per stream, its rate, gaps and latency."""
    store = EpisodeStore.open(path)
    streams = {}
    for name, spec in store.streams.items():
        r = store.read_stream(k, name)
        streams[name] = {"dtype": np.dtype(spec.dtype).name, "shape": list(spec.shape),
                         **stream_timing(r["capture_stamp"], r["receive_stamp"])}
    return {"episode": int(k) % max(store.num_episodes, 1), "metadata": store.metadata(k), "streams": streams}


def image_streams(store: EpisodeStore) -> list[str]:
    """Colour streams: uint8 (H, W, 3)."""
    return [n for n, s in store.streams.items() if len(s.shape) == 3 and s.shape[2] == 3 and np.dtype(s.dtype) == np.uint8]


def export_video(path: str | Path, k: int, out_mp4: str | Path, streams: list[str] | None = None,
                 fps: float | None = None) -> dict:
    """MP4 of episode ``k`` with its image streams side by side, on the clock of the fastest of them."""
    from robot_stack.video import write_mp4
    store = EpisodeStore.open(path)
    names = [n for n in (streams or image_streams(store))]
    if not names:
        raise ValueError(f"{path}: no image streams to export")
    data = {n: store.read_stream(k, n) for n in names}
    names = [n for n in names if len(data[n]["data"])]
    if not names:
        raise ValueError(f"{path}: episode {k} has no image frames")
    clock_name = max(names, key=lambda n: len(data[n]["data"]))
    clock = data[clock_name]["capture_stamp"]
    height = max(data[n]["data"].shape[1] for n in names)
    rows = {n: align_to_clock(clock, data[n]["capture_stamp"]) for n in names}

    def frame(i: int) -> np.ndarray:
        parts = []
        for n in names:
            img = data[n]["data"][rows[n][i]]
            if img.shape[0] != height:   # nearest-neighbour to a common height
                scale = height / img.shape[0]
                ys = (np.arange(height) / scale).astype(int)
                xs = (np.arange(int(round(img.shape[1] * scale))) / scale).astype(int)
                img = img[ys][:, xs]
            parts.append(img)
        return np.concatenate(parts, axis=1)

    if fps is None:
        timing = stream_timing(clock, clock)
        fps = timing.get("rate_hz") or 10.0
    write_mp4(out_mp4, (frame(i) for i in range(len(clock))), fps=fps)
    return {"path": str(out_mp4), "frames": len(clock), "fps": fps, "streams": names}


def verify(path: str | Path) -> list[dict]:
    """Every integrity problem, as dicts (episode None = the whole store).

    A store that cannot be opened at all (no root, a damaged root or commit record) raises
    StoreError, which the CLI reports as an error (exit 2): there is nothing to list episode by
    episode. Problems found inside a readable store are the report (exit 1)."""
    with EpisodeStore.open(path) as store:
        return [p.to_json() for p in _verify(store)]


def _layout(store: EpisodeStore) -> dict:
    return {n: (np.dtype(s.dtype).name, tuple(s.shape)) for n, s in store.streams.items()}


def _overlaps(a: Path, b: Path) -> bool:
    """Whether one of the two paths is the other or lies inside it (resolved: symlinks and `..` count)."""
    a, b = a.resolve(), b.resolve()
    if a == b or a in b.parents or b in a.parents:
        return True
    try:   # the same directory under two mount points (a bind mount) resolves to two paths
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_output(out: Path, sources: list[Path], overwrite: bool) -> None:
    """Refuse an output that would destroy an input or something that is not an episode store.

    `merge X X --overwrite` used to delete X before reading it; an unrelated directory given as
    OUT was removed whole. Checked before anything is opened or written."""
    for src in sources:
        if _overlaps(out, src):
            raise StoreError(f"{out}: the output is also an input ({src}); merge into a new path")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise StoreError(f"{out}: already exists (pass --overwrite to replace it)")
        if not is_episode_store(out):
            raise StoreError(f"{out}: refusing to overwrite: not an episode store; remove it by hand if it is "
                             "meant to go")


_RENAME_EXCHANGE = 2   # linux/fs.h
STALE_TEMP_S = 60.0    # a temporary merge store without a lock file is another merge's being created, if younger


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (renameat2 RENAME_EXCHANGE); False where the kernel, libc or
    file system cannot, and the caller falls back to two renames."""
    import ctypes
    import errno
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _temp_name(out: Path) -> Path:
    return out.with_name(f".{out.name}.merge-{uuid.uuid4().hex[:12]}.partial")


def _remove_stale_temps(out: Path) -> None:
    """Delete temporary stores that merges into `out` left when they were killed: those whose writer lock
    nobody holds any more (a live merge still holds its own, so it is left alone)."""
    for tmp in out.parent.glob(f".{out.name}.merge-*.partial"):
        if not tmp.is_dir():
            continue
        # a store takes its lock only at the end of EpisodeStore.create: a young one without a lock
        # file may be another merge's, being created right now
        if not (tmp / LOCK_FILE).exists() and time.time() - tmp.stat().st_mtime < STALE_TEMP_S:
            continue
        try:
            fd = _lock(tmp)
        except (StoreError, OSError):
            continue
        try:
            shutil.rmtree(tmp, ignore_errors=True)
        finally:
            os.close(fd)


def _swap_in(tmp: Path, out: Path, durable: bool) -> None:
    """Make the finished store `tmp` the store at `out`, replacing the old one only now.

    With RENAME_EXCHANGE the path `out` holds the old or the new store at every instant; the
    two-rename fallback leaves a moment without it, but never loses either (the old one is
    renamed aside, then deleted). A store someone started recording into meanwhile is refused."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not is_episode_store(out):   # checked again: it may have changed during a long merge
            raise StoreError(f"{out}: refusing to overwrite: not an episode store")
        fd = _lock(out)   # never replace a store another process is recording into
        try:
            if not _exchange(tmp, out):
                aside = _temp_name(out)
                os.rename(out, aside)
                try:
                    os.rename(tmp, out)
                except BaseException:
                    os.rename(aside, out)   # put the old store back: a *.partial name would be cleaned up
                    raise
                tmp = aside
        finally:
            os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)   # now the old store
    else:
        os.rename(tmp, out)
    if durable:   # the renames themselves survive a power loss only once the parent directory is synced
        _fsync(out.parent)


def merge(sources: list[str | Path], out: str | Path, overwrite: bool = False, attrs: dict | None = None,
          durable: bool = True, progress: bool = True, batch: int = 32, drop: tuple[str, ...] = ()) -> int:
    """Every episode of `sources` into a new store `out`, ordered by seed; stamps and metadata kept.

    One way to mix data sets (clean and disturbed demonstrations, shards of one collection): the
    sources must agree on every stream's dtype and shape, checked before anything is written.
    ``batch`` episodes go in each commit: per-episode commits rewrote every low-dimensional chunk,
    stamp array and episode index once per episode (about 1 s per episode, most of a merge).

    The episodes go into a temporary store beside `out` that replaces `out` only once complete
    (``_swap_in``): a merge that fails or is killed leaves an existing `out` as it was. `out` may not
    be (or contain, or lie inside) a source, and ``overwrite`` replaces only an episode store. Streams named in
    ``drop`` are left out (e.g. `task_state`, whose size differs between tasks, to mix several tasks)."""
    out = Path(out)
    sources = [Path(src) for src in sources]
    _check_output(out, sources, overwrite)
    stores = [EpisodeStore.open(src, "r") for src in sources]
    try:
        layouts = [(str(src), {k: v for k, v in _layout(st).items() if k not in drop})
                   for src, st in zip(sources, stores) if st.num_episodes]
        diff = [f"{src}: {sorted(set(lay.items()) ^ set(layouts[0][1].items()))}"
                for src, lay in layouts[1:] if lay != layouts[0][1]]
        if diff:
            raise ValueError(f"cannot merge stores whose streams differ from {layouts[0][0]}'s: {'; '.join(diff)}")
        entries = [(st.metadata(k), i, k) for i, st in enumerate(stores) for k in range(st.num_episodes)]
        for meta, i, k in entries:   # a hand-edited seed ("3", null) must not surface as a TypeError from sorted()
            seed = meta.get("seed", k)
            if isinstance(seed, bool) or not isinstance(seed, (int, float)):
                raise StoreError(f"{sources[i]}: episode {k}, key 'meta/episodes/{k:06d}': seed {seed!r} is not a number")
        order = sorted(entries, key=lambda e: (e[0].get("seed", e[2]), e[1], e[2]))   # metadata read once, kept for the write
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(out)
        tmp = _temp_name(out)
        try:
            dst = EpisodeStore.create(tmp, attrs=attrs, durable=durable)
            # leave=False and closed before any error propagates: the bar is erased, so a failed merge's
            # stderr is the CLI's one error line
            bar = tqdm(order, desc="merge", unit="ep", disable=not progress, leave=False)
            try:
                writer = None
                for n, (meta, i, k) in enumerate(bar, start=1):
                    writer = writer or dst.begin_episode()
                    for name, parts in stores[i].read_episode(k).items():
                        if name in drop:
                            continue
                        writer.append_many(name, parts["data"], parts["capture_stamp"], parts["receive_stamp"])
                    kept = {key: v for key, v in meta.items() if key not in ("episode", "streams")}
                    if n % batch == 0 or n == len(order):
                        writer.commit(**kept)
                        writer = None
                    else:
                        writer.end_episode(**kept)
            finally:
                bar.close()
                dst.close()
            _swap_in(tmp, out, durable)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)   # the half-written merge; `out` was never touched
            raise
    finally:
        for st in stores:
            st.close()
    return len(order)
