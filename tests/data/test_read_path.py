"""The fast read paths give the same rows as the plain ones: frames decoded in place, bulk reads over
many episodes (and their per-episode fallback on damage), the dataset's resident arrays and its LRU."""
import numpy as np
import pytest
import torch
from numcodecs import Zstd

from robot_stack.data import CorruptEpisodeError, EpisodeStore
from robot_stack.data.dataset import EpisodeDataset
from robot_stack.data.frames import _content_size
from tests.data.episodes import episode_data, write_episode


@pytest.mark.parametrize("size", [0, 10, 255, 256, 49152, 65791, 70000, 1 << 20])
def test_zstd_header_declares_the_decoded_size(size):
    # 1-, 2- (value - 256) and 4-byte size fields, as zstd picks them by size
    assert _content_size(Zstd(3).encode(np.full(size, 7, np.uint8))) == size


def test_header_without_a_size_is_unknown():
    assert _content_size(b"not zstd at all") == -1
    assert _content_size(b"\x28\xb5\x2f\xfd") == -1


@pytest.fixture
def store(tmp_path):
    with EpisodeStore.create(tmp_path / "store", durable=False) as s:
        for k in range(4):
            write_episode(s, k)
    return EpisodeStore.open(tmp_path / "store")


def test_frames_decode_into_a_given_buffer(store):
    want = episode_data(2)["front"][0]
    buf = np.full((len(want) + 2, *want.shape[1:]), 9, np.uint8)
    got = store.read_stream(2, "front", parts=("data",), out=buf[1:-1])["data"]
    assert got.base is buf and np.array_equal(buf[1:-1], want)
    assert (buf[0] == 9).all() and (buf[-1] == 9).all()     # nothing written outside the slot
    rows = store.read_stream(2, "joint_pos", slice(1, None, 3), parts=("data",))["data"]
    into = np.zeros_like(rows)
    assert store.read_stream(2, "joint_pos", slice(1, None, 3), parts=("data",), out=into)["data"] is into
    assert np.array_equal(into, episode_data(2)["joint_pos"][0][1::3])
    with pytest.raises(ValueError, match="out must be"):
        store.read_stream(2, "front", parts=("data",), out=buf)           # wrong number of rows
    with pytest.raises(ValueError, match="out must be"):
        store.read_stream(2, "joint_pos", slice(1, None, 3), parts=("data",), out=into.astype(np.float64))


def test_read_part_equals_per_episode_reads(store):
    for part in ("data", "capture_stamp", "receive_stamp"):
        for name in ("front", "joint_pos", "reward"):
            episodes = [3, 0, 2, 2]
            got = store.read_part(episodes, name, part)
            for k, rows in zip(episodes, got):
                assert np.array_equal(rows, store.read_stream(k, name, parts=(part,))[part]), (name, part, k)


@pytest.fixture
def small_chunks(tmp_path):
    """A low-dimensional stream whose chunks hold 16 rows, one episode per chunk."""
    with EpisodeStore.create(tmp_path / "chunks", durable=False) as s:
        for k in range(3):
            w = s.begin_episode()
            w.append_many("wide", np.full((16, 2000), k, np.float64), np.arange(16.0) + 100 * k)
            w.commit()
    store = EpisodeStore.open(tmp_path / "chunks")
    assert store.streams["wide"].chunk_rows == 16
    return store


def test_read_part_names_the_damaged_episode_and_reads_around_it(small_chunks):
    (small_chunks.path / "streams/wide/data/c/1/0").unlink()
    got = small_chunks.read_part([0, 2], "wide", "data")                   # one bulk read would span chunk 1
    assert [float(r[0, 0]) for r in got] == [0.0, 2.0]
    with pytest.raises(CorruptEpisodeError) as info:
        small_chunks.read_part([0, 1, 2], "wide", "data")
    assert info.value.episode == 1 and info.value.key == "streams/wide/data"


@pytest.fixture
def image_store(tmp_path):
    """Per-frame 64x96 images at 5 Hz (pixels = 10*episode + frame) and a 10 Hz action clock."""
    p = tmp_path / "images"
    with EpisodeStore.create(p, durable=False) as s:
        for k, n in enumerate((6, 3, 8)):
            w = s.begin_episode()
            t = 100.0 * k + np.arange(n) / 10
            w.append_many("action", (100 * k + np.arange(n, dtype=np.float32))[:, None], t)
            t_cam = t[::2] + 0.01
            w.append_many("cam", np.stack([np.full((64, 96, 3), 10 * k + i, np.uint8) for i in range(len(t_cam))]), t_cam)
            w.commit()
    assert EpisodeStore.open(p).streams["cam"].per_frame
    return p


@pytest.mark.parametrize("cache_bytes, resident", [(2 << 30, {"action", "cam"}), (100_000, {"action"}), (1, set())])
def test_dataset_rows_do_not_depend_on_the_cache_mode(image_store, cache_bytes, resident):
    ds = EpisodeDataset(image_store, obs_keys=("cam",), action_keys=("action",), obs_horizon=2, action_horizon=3,
                        episodes=[2, 0, 1], cache_bytes=cache_bytes)
    assert ds._resident == resident
    batch = ds.get_batch(np.arange(len(ds))[::-1])
    for j, index in enumerate(range(len(ds))[::-1]):
        i, t = ds.window(index)
        k = ds.episodes[i]
        last = ds.last_tick(i)
        obs_ticks = [max(t - 1, 0), t]
        assert batch["obs"]["cam"][j, :, 0, 0, 0].tolist() == [10 * k + max(0, (u - 1) // 2) for u in obs_ticks], (k, t)
        want_actions = [100 * k + min(t + s, last) for s in range(3)]
        assert batch["action"]["action"][j, :, 0].tolist() == want_actions
        assert int(batch["episode"][j]) == k and int(batch["tick"][j]) == t
    assert torch.equal(ds[4]["obs"]["cam"], batch["obs"]["cam"][len(ds) - 1 - 4])
    assert ds.rows_at("cam", 0, [0, 7, 2])[:, 0, 0, 0].tolist() == [20, 23, 20]
    with pytest.raises(IndexError):
        ds.rows_at("cam", 1, [6])        # episode 0 (position 1) has ticks 0..5: never read another episode's rows
    if "cam" not in resident:
        assert 0 < ds._cached <= max(ds._lru_bytes, max(a.nbytes for a in ds._cache.values()))


def test_long_episodes_read_on_several_threads_stay_exact_and_strict(tmp_path):
    from robot_stack.data import frames
    n = frames.READ_THREADS * frames.MIN_FRAMES_PER_THREAD + 5          # enough frames to split across threads
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (n, 64, 96, 3), dtype=np.uint8)
    with EpisodeStore.create(tmp_path / "long", durable=False) as s:
        for k in range(2):
            w = s.begin_episode()
            w.append_many("front", video[::-1] if k else video, np.arange(n) / 30)
            w.commit()
    store = EpisodeStore.open(tmp_path / "long")
    assert np.array_equal(store.read_stream(0, "front")["data"], video)
    assert np.array_equal(store.read_stream(1, "front", slice(3, None, 2))["data"], video[::-1][3::2])
    start, _ = store.episode_range(1, "front")
    chunk = tmp_path / f"long/streams/front/data/c/{start + n - 3}/0/0/0"     # in the last thread's share
    raw = bytearray(chunk.read_bytes())
    raw[40] ^= 1
    chunk.write_bytes(bytes(raw))
    with pytest.raises(CorruptEpisodeError, match="checksum") as info:
        store.read_stream(1, "front")
    assert (info.value.episode, info.value.key) == (1, "streams/front/data")
    assert np.array_equal(store.read_stream(0, "front")["data"], video)
