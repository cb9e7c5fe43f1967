"""LeRobot datasets both ways (issue 34, item 3).

`data export --format lerobot` writes a LeRobotDataset v3.0; `data import --format lerobot` reads one back.
The `lerobot` package that reads v3.0 (0.4.x) cannot be installed beside this project's torch 2.13
(docs/design.md, "LeRobot"), so besides the round trip the export is checked against LeRobot's own format
rules as its code states them (lerobot/datasets/utils.py, dataset_metadata.py, dataset_writer.py,
video_utils.py of 0.4.4), with pyarrow and PyAV; where lerobot does import, LeRobotDataset loads the export."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from robot_stack.cli import main
from robot_stack.data import EpisodeStore

os.environ.setdefault("MUJOCO_GL", "egl")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
av = pytest.importorskip("av")

# what the video codec may change: yuv420p halves the chroma resolution, which on 32x32 renders with hard
# edges costs a few levels on average (measured about 4-6); a wrong frame or a channel swap costs 30+
MAX_MEAN_ABS = 10.0


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from robot_stack.sim.expert_data import generate
    path = tmp_path_factory.mktemp("lerobot") / "experts.zarr"
    generate("reach", "panda", 2, seed=1000, out=str(path), image_size=32, progress=False, durable=False)
    return path


@pytest.fixture(scope="module")
def dataset(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "reach_panda"
    before = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
    assert main(["data", "export", str(store), "--format", "lerobot", str(out)]) == 0
    # SVT-AV1 raises the thread that starts an encoder to SCHED_FIFO 99 (as root): the export puts it back, or every
    # thread and process this one starts later inherits it
    assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before
    return out


def _run(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if rc == 0 else None), out.err


def test_round_trip_store_lerobot_store(store, dataset, tmp_path, capsys):
    rc, result, err = _run(["data", "import", str(dataset), "--format", "lerobot", str(tmp_path / "back.zarr")], capsys)
    assert rc == 0, err
    assert result["fps"] == 10 and result["episodes"] == 2
    a, b = EpisodeStore.open(store), EpisodeStore.open(tmp_path / "back.zarr")
    assert b.num_episodes == 2
    for k in range(2):
        for name in ("ee_pose", "gripper", "joint_pos", "action_pose", "action_gripper", "task_state", "reward"):
            x, y = a.read_stream(k, name)["data"], b.read_stream(k, name)["data"]
            assert y.shape == x.shape and y.dtype == x.dtype, name
            np.testing.assert_allclose(y, x, rtol=1e-6, atol=1e-7, err_msg=name)     # float32 in LeRobot
        for name in ("front_rgb", "wrist_rgb"):
            x, y = a.read_stream(k, name)["data"], b.read_stream(k, name)["data"]
            assert y.shape == x.shape and y.dtype == np.uint8
            err_k = np.abs(x.astype(float) - y.astype(float)).mean(axis=(1, 2, 3))
            assert err_k.max() < MAX_MEAN_ABS, (name, err_k)
            # no shift in time: each frame is nearer its own original than any two or more frames away, and
            # the frames as a whole match better than shifted by one either way (neighbours can be near-identical)
            d = np.array([[np.abs(x[j].astype(float) - y[i].astype(float)).mean() for j in range(len(x))]
                          for i in range(len(y))])
            for i in range(len(x)):
                assert d[i, i] < min(d[i, j] for j in range(len(x)) if abs(j - i) >= 2), (name, i)
            assert np.diag(d).mean() < min(np.diag(d, 1).mean(), np.diag(d, -1).mean())
        stamps = b.read_stream(k, "ee_pose")["capture_stamp"]
        np.testing.assert_allclose(np.diff(stamps), 0.1, atol=1e-9)         # fps 10 kept
        np.testing.assert_allclose(stamps, a.read_stream(k, "ee_pose")["capture_stamp"], atol=1e-9)
        ma, mb = a.metadata(k), b.metadata(k)
        assert mb["instruction"] == ma["instruction"] and mb["tasks"] == [ma["instruction"]]
        for key in ("task", "seed", "success", "cameras", "robot"):
            assert mb[key] == ma[key], key


def test_export_follows_lerobot_v30_format(store, dataset):
    a = EpisodeStore.open(store)
    lengths = [a.metadata(k)["streams"]["tick"] for k in range(2)]
    info = json.loads((dataset / "meta/info.json").read_text())
    # DatasetInfo's fields (utils.py), v3.0 path templates, integer fps
    for key in ("codebase_version", "fps", "features", "total_episodes", "total_frames", "total_tasks", "chunks_size",
                "data_files_size_in_mb", "video_files_size_in_mb", "data_path", "video_path", "robot_type", "splits"):
        assert key in info, key
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10 and isinstance(info["fps"], int)
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert info["total_episodes"] == 2 and info["total_frames"] == sum(lengths) and info["splits"] == {"train": "0:2"}
    feats = info["features"]
    for key, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                       ("index", "int64"), ("task_index", "int64")):
        assert feats[key] == {"dtype": dtype, "shape": [1], "names": None}   # DEFAULT_FEATURES
    assert all("/" not in k for k in feats)                                  # _validate_feature_names
    assert feats["observation.state"]["shape"] == [15] and feats["action"]["shape"] == [8]
    assert feats["action"]["names"][:3] == ["action_pose.x", "action_pose.y", "action_pose.z"]
    front = feats["observation.images.front"]
    assert front["dtype"] == "video" and front["shape"] == [32, 32, 3] and front["names"] == ["height", "width", "channels"]

    # data parquet: exactly the non-video features, typed as get_hf_features_from_features maps them
    table = pq.read_table(dataset / "data/chunk-000/file-000.parquet")
    non_video = {k for k, f in feats.items() if f["dtype"] != "video"}
    assert set(table.column_names) == non_video
    for key in non_video:
        t = table.schema.field(key).type
        if feats[key]["shape"] == [1]:
            assert t == pa.from_numpy_dtype(np.dtype(feats[key]["dtype"])), key          # datasets.Value
        else:
            assert pa.types.is_fixed_size_list(t) and t.list_size == feats[key]["shape"][0], key  # Sequence(length)
            assert t.value_type == pa.from_numpy_dtype(np.dtype(feats[key]["dtype"]))
    hf = json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]
    assert hf["observation.state"] == {"feature": {"dtype": "float32", "_type": "Value"}, "length": 15, "_type": "Sequence"}
    assert table.column("index").to_pylist() == list(range(sum(lengths)))
    ts = np.asarray(table.column("timestamp").to_pylist())
    fi = np.asarray(table.column("frame_index").to_pylist())
    np.testing.assert_allclose(ts, fi / 10.0, atol=1e-6)
    actions = np.asarray(table.column("action").to_pylist())
    np.testing.assert_allclose(actions[:lengths[0], :7], a.read_stream(0, "action_pose")["data"], rtol=1e-6)

    # episodes table: what LeRobotDataset reads to find an episode's rows and video span
    eps = pq.read_table(dataset / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["episode_index"] for e in eps] == [0, 1] and [e["length"] for e in eps] == lengths
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in eps] == [(0, lengths[0]), (lengths[0], sum(lengths))]
    for e in eps:
        for key in ("data/chunk_index", "data/file_index", "meta/episodes/chunk_index", "meta/episodes/file_index",
                    "videos/observation.images.front/chunk_index", "videos/observation.images.front/file_index",
                    "stats/action/mean", "stats/observation.images.front/mean", "tasks"):
            assert key in e, key
        assert e["tasks"] == [a.metadata(e["episode_index"])["instruction"]]
    assert eps[0]["videos/observation.images.front/from_timestamp"] == 0.0
    assert eps[1]["videos/observation.images.front/from_timestamp"] == pytest.approx(lengths[0] / 10.0)
    assert eps[1]["videos/observation.images.front/to_timestamp"] == pytest.approx(sum(lengths) / 10.0)

    # tasks: DataFrame(index=task) as pandas writes it; task_index refers into it
    tasks = pq.read_table(dataset / "meta/tasks.parquet")
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    names = dict(zip(tasks.column("task_index").to_pylist(), tasks.column("task").to_pylist()))
    assert names[table.column("task_index")[0].as_py()] == a.metadata(0)["instruction"]

    # stats: every feature, LeRobot's keys; image stats per channel (3, 1, 1) in [0, 1]
    stats = json.loads((dataset / "meta/stats.json").read_text())
    assert set(stats) == set(feats)
    for key in ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"):
        assert key in stats["action"], key
    assert np.asarray(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)
    assert 0.0 <= np.min(stats["observation.images.front"]["min"]) <= np.max(stats["observation.images.front"]["max"]) <= 1.0
    assert stats["action"]["count"] == [sum(lengths)]

    # videos: what get_video_info probes, and frames where LeRobotDataset looks for them
    # (from_timestamp + timestamp, within its tolerance_s of 1e-4 s)
    for cam in ("front", "wrist"):
        path = dataset / f"videos/observation.images.{cam}/chunk-000/file-000.mp4"
        with av.open(str(path)) as f:
            s = f.streams.video[0]
            probed = {"video.height": s.height, "video.width": s.width, "video.codec": s.codec_context.name,
                      "video.pix_fmt": s.pix_fmt, "video.fps": int(s.base_rate)}
            decoded = [(float(fr.pts * s.time_base), fr.to_ndarray(format="rgb24")) for fr in f.decode(s)]
        ft = feats[f"observation.images.{cam}"]["info"]
        assert ft["video.codec"] == "av1" and ft["video.pix_fmt"] == "yuv420p" and ft["video.fps"] == 10
        assert probed["video.height"] == ft["video.height"] == 32 and probed["video.fps"] == 10
        assert len(decoded) == sum(lengths)
        vts = np.array([t for t, _ in decoded])
        for e in eps:
            want = e[f"videos/observation.images.{cam}/from_timestamp"] + np.arange(e["length"]) / 10.0
            idx = np.abs(vts[None, :] - want[:, None]).argmin(axis=1)
            assert np.abs(vts[idx] - want).max() < 1e-4
            orig = a.read_stream(e["episode_index"], f"{cam}_rgb")["data"].astype(float)
            got = np.stack([decoded[i][1] for i in idx]).astype(float)
            assert np.abs(got - orig).mean() < MAX_MEAN_ABS


def test_lerobot_dataset_loads_the_export(store, dataset):
    """Runs where the lerobot package (0.4.x+, v3.0) imports; it cannot be installed beside torch 2.13 here."""
    lerobot_dataset = pytest.importorskip("lerobot.datasets.lerobot_dataset")
    ds = lerobot_dataset.LeRobotDataset("local/reach_panda", root=dataset, video_backend="pyav")
    a = EpisodeStore.open(store)
    assert ds.fps == 10 and ds.num_episodes == 2 and len(ds) == sum(a.metadata(k)["streams"]["tick"] for k in range(2))
    item = ds[3]
    np.testing.assert_allclose(item["action"].numpy()[:7], a.read_stream(0, "action_pose")["data"][3], rtol=1e-6)
    img = (item["observation.images.front"].numpy().transpose(1, 2, 0) * 255.0)
    assert np.abs(img - a.read_stream(0, "front_rgb")["data"][3]).mean() < MAX_MEAN_ABS
    assert item["task"] == a.metadata(0)["instruction"]


def test_h264_export_and_bad_datasets(store, dataset, tmp_path, capsys):
    out = tmp_path / "h264"
    rc, result, err = _run(["data", "export", str(store), "--format", "lerobot", str(out), "--vcodec", "libx264",
                            "--episodes", "1"], capsys)
    assert rc == 0, err
    info = json.loads((out / "meta/info.json").read_text())
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "h264" and info["total_episodes"] == 1
    rc, result, err = _run(["data", "import", str(out), "--format", "lerobot", str(tmp_path / "h.zarr")], capsys)
    assert rc == 0, err
    assert EpisodeStore.open(tmp_path / "h.zarr").metadata(0)["seed"] == 1001

    rc, _, err = _run(["data", "export", str(store), "--format", "lerobot", str(dataset)], capsys)
    assert rc == 2 and "already exists" in err
    old = tmp_path / "old"
    (old / "meta").mkdir(parents=True)
    (old / "meta/info.json").write_text(json.dumps({"codebase_version": "v2.1", "fps": 10, "features": {}}))
    rc, _, err = _run(["data", "import", str(old), "--format", "lerobot", str(tmp_path / "o.zarr")], capsys)
    assert rc == 2 and str(old / "meta/info.json") in err and "v2.1" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.zarr").exists()
    rc, _, err = _run(["data", "import", str(tmp_path / "nothing"), "--format", "lerobot", str(tmp_path / "n.zarr")],
                      capsys)
    assert rc == 2 and "not a LeRobot dataset" in err
    broken = tmp_path / "broken"
    import shutil
    shutil.copytree(dataset, broken)
    (broken / "data/chunk-000/file-000.parquet").write_bytes(b"PAR1 not really")
    rc, _, err = _run(["data", "import", str(broken), "--format", "lerobot", str(tmp_path / "b.zarr")], capsys)
    assert rc == 2 and "file-000.parquet" in err and len(err.strip().splitlines()) == 1


def test_video_reader_goes_forward_and_back(store, dataset):
    """Import reads each camera's file forward, holding one episode's frames; an earlier time reopens the file."""
    from robot_stack.data.lerobot_io import VideoReader

    a = EpisodeStore.open(store)
    n0, n1 = (len(a.read_stream(k, "front_rgb")["data"]) for k in range(2))
    reader = VideoReader(dataset / "videos/observation.images.front/chunk-000/file-000.mp4")
    try:
        late = reader.frames_at(n0 / 10.0 + np.arange(n1) / 10.0, 1e-4)
        assert len(reader.buffer) <= n1 + 1
        early = reader.frames_at(np.arange(n0) / 10.0, 1e-4)
        for got, k in ((early, 0), (late, 1)):
            assert np.abs(got.astype(float) - a.read_stream(k, "front_rgb")["data"]).mean() < MAX_MEAN_ABS
        with pytest.raises(ValueError, match="file-000.mp4: no frame within"):
            reader.frames_at(np.array([0.05]), 1e-4)
    finally:
        reader.close()
