"""`robot-stack bench data`: image codec table, recorder write path, training read throughput, durable commit cost.

Figures only, no assertions. The write test replays rendered twin frames in real time from a
producer thread (2 x 640x480 RGB at 30 Hz + 100 Hz state) into a bounded queue that a writer
thread drains into an EpisodeStore, as the recorder node does; a frame that finds the queue
full is dropped and counted.
"""
from __future__ import annotations

import json
import os
import queue
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

CAMERAS = ("front", "wrist")
STATE = {"joint_pos": 7, "joint_vel": 7, "ee_pose": 7, "gripper": 1, "wrench": 6}


def render_frames(size: tuple[int, int], n: int = 12, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """``n`` frames per camera of the twin's pick-and-place scene along a scripted run (realistic content)."""
    from robot_stack.sim import make_env
    env = make_env("pick_place", "panda", cameras=CAMERAS, image_size=128)
    frames = {c: [] for c in CAMERAS}
    rng = np.random.default_rng(seed)
    for k in range(n):
        obs, _ = env.reset(seed=seed + k)
        for _ in range(int(rng.integers(0, 20))):
            obs, *_ = env.step([*(obs["ee_pose"][:3] + rng.normal(0, 0.02, 3)), *obs["ee_pose"][3:], k % 2])
        for c in CAMERAS:
            frames[c].append(env.render_camera(c, size))
    env.close()
    return frames


def codec_table(frames: dict[str, list[np.ndarray]], repeat: int = 5) -> list[dict]:
    """Compression ratio, encode and decode time per frame of lossless candidates (numcodecs, as zarr uses them)."""
    from numcodecs import Blosc, Zstd
    candidates = {"blosc-lz4": Blosc("lz4", 5, Blosc.NOSHUFFLE), "blosc-lz4hc": Blosc("lz4hc", 5, Blosc.NOSHUFFLE),
                  "blosc-zstd1": Blosc("zstd", 1, Blosc.NOSHUFFLE), "blosc-zstd3-bitshuffle": Blosc("zstd", 3, Blosc.BITSHUFFLE),
                  "zstd1": Zstd(1), "zstd3 (chosen)": Zstd(3), "zstd9": Zstd(9)}
    flat = [np.ascontiguousarray(f) for fs in frames.values() for f in fs]
    raw = sum(f.nbytes for f in flat)
    rows = []
    for name, codec in candidates.items():
        t0 = time.perf_counter()
        encoded = [codec.encode(f) for _ in range(repeat) for f in flat]
        t_enc = (time.perf_counter() - t0) / len(encoded)
        t0 = time.perf_counter()
        for e in encoded:
            codec.decode(e)
        t_dec = (time.perf_counter() - t0) / len(encoded)
        size = sum(len(e) for e in encoded[:len(flat)])
        rows.append({"codec": name, "ratio": round(raw / size, 1), "kib_per_frame": round(size / len(flat) / 1024, 1),
                     "encode_ms": round(1e3 * t_enc, 3), "decode_ms": round(1e3 * t_dec, 3)})
    return rows


def write_throughput(seconds: float, path: Path, frames: dict, episode_seconds: float = 10.0) -> dict:
    """Real-time producer -> bounded queue -> writer thread -> store; episodes committed every ``episode_seconds``."""
    from robot_stack.data import EpisodeStore
    store = EpisodeStore.create(path, overwrite=True)
    q: queue.Queue = queue.Queue(maxsize=1120)   # 2 s of samples (560/s): the recorder's budget for a stall
    dropped, produced, stop = [0], [0], threading.Event()
    producer_cpu = [0.0]

    def produce():
        t0 = time.perf_counter()
        next_cam, next_state, i = t0, t0, 0
        while not stop.is_set():
            now = time.perf_counter()
            if now - t0 >= seconds:
                break
            items = []
            if now >= next_cam:
                items += [(c, frames[c][i % len(frames[c])], now) for c in CAMERAS]
                next_cam += 1 / 30
                i += 1
            if now >= next_state:
                items += [(k, np.full(n, i, np.float64), now) for k, n in STATE.items()]
                next_state += 1 / 100
            for item in items:
                produced[0] += 1
                try:
                    q.put_nowait(item)
                except queue.Full:
                    dropped[0] += 1
            time.sleep(max(0.0, min(next_cam, next_state) - time.perf_counter()))
        q.put(None)
        producer_cpu[0] = time.thread_time()

    commit_ms, append_ms, max_depth = [], [], [0]

    def write():
        writer = store.begin_episode(task="bench", operator="bench")
        started = time.perf_counter()
        while True:
            max_depth[0] = max(max_depth[0], q.qsize())
            item = q.get()
            if item is None:
                break
            name, value, stamp = item
            t = time.perf_counter()
            writer.append(name, value, stamp, t)
            append_ms.append(1e3 * (time.perf_counter() - t))
            if time.perf_counter() - started >= episode_seconds:
                t = time.perf_counter()
                writer.commit(success=True)
                commit_ms.append(1e3 * (time.perf_counter() - t))
                writer, started = store.begin_episode(task="bench", operator="bench"), time.perf_counter()
        writer.commit(success=True)

    usage0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    threads = [threading.Thread(target=produce), threading.Thread(target=write)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall0
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    info = store.info()
    store.close()
    raw = sum(frames[c][0].nbytes for c in CAMERAS) * 30 * 60 + sum(STATE.values()) * 8 * 100 * 60
    minutes = seconds / 60
    return {"seconds": seconds, "frames_produced": produced[0], "dropped": dropped[0], "max_queue_depth": max_depth[0],
            "append_ms_p99": round(float(np.percentile(append_ms, 99)), 2), "append_ms_max": round(max(append_ms), 1),
            "episodes": info["num_episodes"], "commit_ms_max": round(max(commit_ms or [0]), 1),
            "writer_cpu_cores": round((cpu - producer_cpu[0]) / wall, 3), "process_cpu_cores": round(cpu / wall, 3),
            "store_mib_per_min": round(info["bytes_on_disk"] / minutes / 2**20, 1),
            "raw_mib_per_min": round(raw / 2**20, 1),
            "ratio": round(raw * minutes / max(info["bytes_on_disk"], 1), 1)}


def build_training_store(path: Path, frames: dict, episodes: int = 40, ticks: int = 100) -> Path:
    """Episodes of 2 x 128x128 cameras, 7-D state and actions on a 10 Hz clock, from rendered frames."""
    from robot_stack.data import EpisodeStore
    rng = np.random.default_rng(0)
    with EpisodeStore.create(path, overwrite=True, durable=False) as store:   # scratch store, not timed
        for k in range(episodes):
            w = store.begin_episode(task="bench", seed=k)
            t = 10.0 * k + np.arange(ticks) / 10
            for c in CAMERAS:
                idx = rng.integers(0, len(frames[c]), ticks)
                w.append_many(c, np.stack([frames[c][i] for i in idx]), t)
            w.append_many("joint_pos", rng.normal(size=(ticks, 7)).astype(np.float32), t)
            w.append_many("action", rng.normal(size=(ticks, 8)).astype(np.float32), t)
            w.commit(success=True)
    return path


def drop_page_cache(path: Path) -> None:
    """Evict the store's files from the OS page cache (fsync, then POSIX_FADV_DONTNEED on each file), so
    the next read comes from the disk, as the first epoch after a reboot or over a store larger than RAM."""
    for p in path.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def read_throughput(path: Path, workers: int = 2, batch_size: int = 64, epochs: int = 2) -> dict:
    """Samples/s of EpisodeDataset (obs horizon 2, action horizon 16): per sample, batched, with and without workers.

    Epoch 0 of each loader decodes every frame (a fresh dataset, empty cache): the honest figure
    for a first epoch; ``..._disk_cold`` also reads the chunk files from the disk, not the page
    cache. On a 2-core machine the batched in-process loader wins: workers each decode the whole
    store for their own cache, and add the copy of every batch through shared memory.
    """
    import torch
    from robot_stack.data.dataset import EpisodeDataset
    def dataset():
        return EpisodeDataset(path, obs_keys=(*CAMERAS, "joint_pos"), action_keys=("action",), obs_horizon=2,
                              action_horizon=16, normalize={"joint_pos": "meanstd", "action": "minmax"})
    t0 = time.perf_counter()
    ds = dataset()
    out = {"samples": len(ds), "index_build_s": round(time.perf_counter() - t0, 3)}
    order = np.random.default_rng(0).permutation(len(ds))
    for label in ("in_process_cold", "in_process_warm"):   # per-sample __getitem__, no collation
        t0 = time.perf_counter()
        for i in order:
            ds[int(i)]
        out[label] = round(len(ds) / (time.perf_counter() - t0))
    # each loader gets a fresh dataset, so epoch 0 includes decoding (cold cache) and the last epoch is warm
    loaders = {"batched_in_process": dataset().loader(batch_size, num_workers=0),
               f"batched_{workers}_workers": dataset().loader(batch_size, num_workers=workers),
               f"per_sample_collate_{workers}_workers": torch.utils.data.DataLoader(
                   dataset(), batch_size=batch_size, shuffle=True, num_workers=workers, persistent_workers=True)}
    for label, loader in loaders.items():
        for epoch in range(epochs):   # epoch 0 fills each worker's cache, the last one is warm
            t0 = time.perf_counter()
            n = sum(len(b["action_is_pad"]) for b in loader)
            out[f"{label}_epoch{epoch}"] = round(n / (time.perf_counter() - t0))
    drop_page_cache(path)
    t0 = time.perf_counter()
    loader = dataset().loader(batch_size, num_workers=0)
    out["index_build_s_disk_cold"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    n = sum(len(b["action_is_pad"]) for b in loader)
    out["batched_in_process_epoch0_disk_cold"] = round(n / (time.perf_counter() - t0))
    return out


def commit_cost(path: Path, frames: dict, steps: int = 300, episodes: int = 3) -> dict:
    """Commit time of a ``steps``-step episode (2 x 128x128 cameras, state and action at 10 Hz), durable
    (fsync of every file and directory, then of the record) against ``durable=False``: medians, ms."""
    from robot_stack.data import EpisodeStore
    out = {"steps": steps}
    for durable in (True, False):
        times = []
        with EpisodeStore.create(path, overwrite=True, durable=durable) as store:
            for _ in range(episodes):
                w = store.begin_episode(task="bench")
                t = np.arange(steps) / 10
                for c in CAMERAS:
                    w.append_many(c, np.stack([frames[c][i % len(frames[c])] for i in range(steps)]), t)
                w.append_many("joint_pos", np.zeros((steps, 7), np.float32), t)
                w.append_many("action", np.zeros((steps, 8), np.float32), t)
                t0 = time.perf_counter()
                w.commit(success=True)
                times.append(1e3 * (time.perf_counter() - t0))
        out["durable_commit_ms" if durable else "plain_commit_ms"] = round(float(np.median(times)), 1)
    out["fsync_ms_per_episode"] = round(out["durable_commit_ms"] - out["plain_commit_ms"], 1)
    return out


def main(seconds: float = 60.0, json_path=None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench_data_"))
    try:
        big = render_frames((480, 640))
        small = render_frames((128, 128))
        results = {"codecs_640x480": codec_table(big), "codecs_128x128": codec_table(small)}
        for size in ("640x480", "128x128"):
            print(f"codec on rendered {size} frames   ratio  KiB/frame  encode ms  decode ms")
            for r in results[f"codecs_{size}"]:
                print(f"  {r['codec']:<24} {r['ratio']:>6} {r['kib_per_frame']:>9} {r['encode_ms']:>10} {r['decode_ms']:>10}")
        w = results["write"] = write_throughput(seconds, work / "write.zarr", big)
        print(f"write {seconds:.0f} s of 2x640x480 RGB @30 Hz + 100 Hz state: dropped {w['dropped']} of "
              f"{w['frames_produced']}, max queue {w['max_queue_depth']} samples, append p99 {w['append_ms_p99']} ms max {w['append_ms_max']} ms, writer CPU {w['writer_cpu_cores']} cores "
              f"(process {w['process_cpu_cores']}), commit max {w['commit_ms_max']} ms, {w['episodes']} episodes")
        print(f"store {w['store_mib_per_min']} MiB/min vs raw {w['raw_mib_per_min']} MiB/min ({w['ratio']}x)")
        r = results["read"] = read_throughput(build_training_store(work / "train.zarr", small))
        print("read samples/s (2 cams 128x128, obs horizon 2, action horizon 16): " +
              ", ".join(f"{k} {v}" for k, v in r.items()))
        print(f"first (decoding) epoch, batched in process: {r['batched_in_process_epoch0']} samples/s "
              f"({r['batched_in_process_epoch0_disk_cold']} with the files out of the page cache); "
              f"warm {r['batched_in_process_epoch1']}")
        c = results["commit"] = commit_cost(work / "commit.zarr", small)
        print(f"commit of a {c['steps']}-step 2x128x128 episode: durable {c['durable_commit_ms']} ms, "
              f"durable=False {c['plain_commit_ms']} ms (fsync {c['fsync_ms_per_episode']} ms per episode)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
