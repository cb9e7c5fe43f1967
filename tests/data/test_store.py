"""Round trip, streams at different rates, the episode index, metadata, writer misuse."""
import json

import numpy as np
import pytest

from robot_stack.data import (FORMAT_VERSION, EpisodeNotFoundError, EpisodeStore, StoreError, StoreLockedError,
                              StreamShapeError)
from tests.data.episodes import assert_episode_equal, episode_data, write_episode


@pytest.fixture
def store(tmp_path):
    s = EpisodeStore.create(tmp_path / "store")
    yield s
    s.close()


def test_round_trip_is_bit_exact_across_reopen(store, tmp_path):
    for k in range(4):
        assert write_episode(store, k) == k
    store.close()
    r = EpisodeStore.open(tmp_path / "store")
    assert r.num_episodes == 4 and r.format_version == FORMAT_VERSION
    assert set(r.streams) == {"front", "joint_pos", "reward"}
    assert r.streams["front"].chunk_rows == 1          # images: one frame per chunk
    assert r.streams["joint_pos"].chunk_rows > 1
    for k in range(4):
        assert_episode_equal(r, k)
    # images were read by the direct chunk reader; zarr itself reads the same bytes
    assert r._fast_frames("front")
    start, end = r.episode_range(3, "front")
    assert np.array_equal(r._array("front")[start:end], r.read_stream(3, "front")["data"])
    assert np.array_equal(r.read_stream(3, "front", slice(1, None, 2))["data"], episode_data(3)["front"][0][1::2])
    meta = r.metadata(2)
    assert meta["seed"] == 2 and meta["success"] is True and meta["robot"] == "panda"
    assert meta["streams"] == {n: len(v[0]) for n, v in episode_data(2).items()}
    json.dumps(meta)
    assert r.read_episode(-1)["front"]["data"].shape[0] == len(episode_data(3)["front"][0])


def test_streams_keep_their_own_clocks_and_episode_ends(store):
    for k in range(3):
        write_episode(store, k)
    for name in ("front", "joint_pos"):
        lengths = [len(episode_data(k)[name][0]) for k in range(3)]
        assert store.episode_ends(name).tolist() == np.cumsum(lengths).tolist()
    e = store.read_episode(1)
    assert len(e["joint_pos"]["data"]) == int(len(e["front"]["data"]) * 2.5)
    assert np.allclose(np.diff(e["front"]["capture_stamp"]), 1 / 30)
    assert np.allclose(np.diff(e["joint_pos"]["capture_stamp"]), 1 / 75)
    assert np.allclose(e["front"]["receive_stamp"] - e["front"]["capture_stamp"], 0.004)


def test_stream_declared_in_a_later_episode_is_empty_in_earlier_ones(store):
    write_episode(store, 0)
    w = store.begin_episode(task="t")
    w.append("wrench", np.arange(6.0), 1.0)
    w.append("wrench", np.arange(6.0) + 1, 2.0, 2.5)
    assert w.commit() == 1
    assert store.read_stream(0, "wrench")["data"].shape == (0, 6)
    got = store.read_stream(1, "wrench")
    assert got["data"].tolist() == [list(range(6)), list(range(1, 7))]
    assert got["receive_stamp"].tolist() == [1.0, 2.5]
    assert store.read_stream(1, "front")["data"].shape == (0, 64, 96, 3)
    assert store.metadata(1)["streams"] == {"wrench": 2}


def test_discard_and_context_exit_leave_no_trace(store, tmp_path):
    write_episode(store, 0)
    w = write_episode(store, 1, commit=False)
    w.append("extra", np.zeros(2), 0.0)
    w.discard()
    with pytest.raises(RuntimeError):
        with store.begin_episode() as w2:
            w2.append("front", episode_data(5)["front"][0][0], 0.0)
            raise RuntimeError("operator hit stop")
    assert store.num_episodes == 1 and "extra" not in store.streams
    assert write_episode(store, 1) == 1
    store.close()
    r = EpisodeStore.open(tmp_path / "store")
    assert r.num_episodes == 2 and r.recovered == {}
    assert_episode_equal(r, 0)
    assert_episode_equal(r, 1)


def test_wrong_shape_or_dtype_is_rejected_naming_the_stream(store):
    write_episode(store, 0)
    w = store.begin_episode()
    with pytest.raises(StreamShapeError, match=r"episode 1, stream 'front'.*\(32, 96, 3\).*\(64, 96, 3\)"):
        w.append("front", np.zeros((32, 96, 3), np.uint8), 0.0)
    with pytest.raises(StreamShapeError, match="'front'.*float64"):
        w.append("front", np.zeros((64, 96, 3)), 0.0)
    with pytest.raises(StreamShapeError, match="'joint_pos'.*finite"):
        w.append("joint_pos", np.zeros(7, np.float32), float("nan"))
    with pytest.raises(StreamShapeError, match="rows"):
        w.append_many("joint_pos", np.zeros((3, 7), np.float32), [0.0, 1.0])
    w.append("joint_pos", np.zeros(7, np.float32), 0.0)   # the writer is still usable
    assert w.commit() == 1


def test_misuse_errors(store, tmp_path):
    with pytest.raises(StoreError, match="already exists"):
        EpisodeStore.create(tmp_path / "store")
    with pytest.raises(StoreLockedError):
        EpisodeStore.open(tmp_path / "store", "a")
    with pytest.raises(StoreLockedError):
        EpisodeStore.create(tmp_path / "store", overwrite=True)
    w = store.begin_episode()
    with pytest.raises(StoreError, match="still open"):
        store.begin_episode()
    w.commit()
    with pytest.raises(StoreError, match="already committed"):
        w.append("x", 1.0, 0.0)
    with pytest.raises(EpisodeNotFoundError, match="no episode 5"):
        store.read_episode(5)
    with pytest.raises(StoreError, match="read-only"):
        EpisodeStore.open(tmp_path / "store").begin_episode()
    with pytest.raises(TypeError):
        store.begin_episode(goal=object())


def test_all_zero_rows_are_stored_not_mistaken_for_missing_chunks(store, tmp_path):
    """zarr skips all-fill-value chunks by default; here an absent chunk must mean damage, so zeros are written."""
    for k in range(2):
        w = store.begin_episode()
        w.append_many("front", np.zeros((3, 64, 96, 3), np.uint8), [0.0, 1.0, 2.0])   # a black camera
        w.append("gripper", np.zeros(1), 0.0)
        w.append("late", np.zeros(2), 0.0) if k == 1 else None   # its episode_ends start with a zero
        w.commit()
    store.close()
    r = EpisodeStore.open(tmp_path / "store")
    assert r.read_stream(1, "front")["data"].shape == (3, 64, 96, 3)
    assert r.read_stream(0, "gripper")["data"].tolist() == [[0.0]]
    assert r.episode_ends("late").tolist() == [0, 1]
    assert len(list((tmp_path / "store/streams/front/data/c").iterdir())) == 6


def test_depth_frames_round_trip_through_the_fast_reader(store, tmp_path):
    depth = np.random.default_rng(0).integers(0, 65535, (5, 96, 96), dtype=np.uint16)
    w = store.begin_episode()
    w.append_many("depth", depth, np.arange(5) / 30)
    w.commit()
    store.close()
    r = EpisodeStore.open(tmp_path / "store")
    assert r.streams["depth"].per_frame and r._fast_frames("depth")
    got = r.read_stream(0, "depth")["data"]
    assert got.dtype == np.uint16 and np.array_equal(got, depth)
    assert np.array_equal(r._array("depth")[0:5], depth)


def test_one_commit_for_several_episodes_publishes_each_with_its_own_rows_and_metadata(store, tmp_path):
    write_episode(store, 0)
    w = store.begin_episode(task="pick_place")
    for k in (1, 2, 3):
        for name, (rows, cap, rec) in episode_data(k).items():
            w.append_many(name, rows, cap, rec)
        if k == 2:
            w.append("wrench", np.arange(6.0), 5.0)   # a stream first declared mid-batch
        assert w.num_rows["front"] == len(episode_data(k)["front"][0])
        if k < 3:
            assert w.end_episode(success=k == 1, seed=k) == k
            assert store.num_episodes == 1          # ended episodes are invisible until the commit
    assert w.commit(seed=3) == 3
    store.close()
    r = EpisodeStore.open(tmp_path / "store")
    assert r.num_episodes == 4 and r.recovered == {}
    for k in range(4):
        assert_episode_equal(r, k)
        assert r.metadata(k)["seed"] == k and r.metadata(k)["episode"] == k
    assert [r.metadata(k).get("success") for k in (1, 2, 3)] == [True, False, None]
    assert r.metadata(1)["task"] == "pick_place" and "task" not in r.metadata(2)
    assert r.metadata(2)["streams"] == {**{n: len(v[0]) for n, v in episode_data(2).items()}, "wrench": 1}
    assert r.episode_ends("wrench").tolist() == [0, 0, 1, 1]


def test_discarding_a_multi_episode_commit_drops_every_episode_in_it(store, tmp_path):
    write_episode(store, 0)
    w = store.begin_episode()
    for k in (1, 2):
        for name, (rows, cap, rec) in episode_data(k).items():
            w.append_many(name, rows, cap, rec)
        w.append("extra", np.zeros(2), 0.0)
        w.end_episode(seed=k)
    w.discard()
    assert store.num_episodes == 1 and "extra" not in store.streams
    assert write_episode(store, 1) == 1
    store.close()
    r = EpisodeStore.open(tmp_path / "store", "a")
    assert r.num_episodes == 2 and r.recovered == {}
    assert_episode_equal(r, 0)
    assert_episode_equal(r, 1)
    r.close()
