"""Damaged stores: a clear error naming episode and key, verify() lists it, the other episodes still read."""
import json
import shutil

import pytest
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from robot_stack.data import CorruptEpisodeError, EpisodeStore, FormatVersionError, verify
from robot_stack.data.store import ROOT_KEY
from tests.data.episodes import assert_episode_equal, write_episode


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "store"
    with EpisodeStore.create(p) as s:
        for k in range(3):
            write_episode(s, k)
    return p


def _frame_chunk(path, k: int, i: int = 0):
    start, _ = EpisodeStore.open(path).episode_range(k, "front")
    return path / f"streams/front/data/c/{start + i}/0/0/0"


def _assert_only_episode_1_broken(path, key: str, reason: str):
    store = EpisodeStore.open(path)
    with pytest.raises(CorruptEpisodeError, match=reason) as info:
        store.read_episode(1)
    assert info.value.episode == 1 and info.value.key == key
    assert str(info.value).startswith(f"{path}: episode 1, key {key!r}")
    assert_episode_equal(store, 0)
    assert_episode_equal(store, 2)
    problems = verify(path)
    assert [(p.episode, p.key) for p in problems] == [(1, key)], problems


def test_truncated_chunk(path):
    chunk = _frame_chunk(path, 1, 2)
    chunk.write_bytes(chunk.read_bytes()[:-20])
    _assert_only_episode_1_broken(path, "streams/front/data", "checksum")


def test_flipped_byte_fails_the_checksum(path):
    chunk = _frame_chunk(path, 1)
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    chunk.write_bytes(bytes(raw))
    _assert_only_episode_1_broken(path, "streams/front/data", "checksum")


def test_missing_chunk_is_an_error_not_zeros(path):
    _frame_chunk(path, 1, 1).unlink()
    _assert_only_episode_1_broken(path, "streams/front/data", "missing")


def test_image_of_the_wrong_shape_in_a_stream(path, tmp_path):
    # a well-formed chunk holding a 32x96 frame where the stream stores 64x96 frames
    other = zarr.create_array(tmp_path / "other", shape=(1, 32, 96, 3), chunks=(1, 32, 96, 3), dtype="uint8",
                              compressors=(ZstdCodec(level=3), Crc32cCodec()))
    other[0] = 7
    shutil.copy(tmp_path / "other/c/0/0/0/0", _frame_chunk(path, 1))
    _assert_only_episode_1_broken(path, "streams/front/data", "reshape")


def test_missing_episode_metadata(path):
    shutil.rmtree(path / "meta/episodes/000001")
    store = EpisodeStore.open(path)
    with pytest.raises(CorruptEpisodeError, match="missing") as info:
        store.metadata(1)
    assert (info.value.episode, info.value.key) == (1, "meta/episodes/000001")
    assert store.metadata(2)["seed"] == 2
    assert [(p.episode, p.key) for p in verify(path)] == [(1, "meta/episodes/000001")]


def test_newer_format_version_is_refused(path):
    meta_file = path / "zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["attributes"][ROOT_KEY]["format_version"] = 99
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(FormatVersionError, match=r"format_version 99 is newer"):
        EpisodeStore.open(path)
    for _ in range(2):   # a refused open releases the writer lock
        with pytest.raises(FormatVersionError):
            EpisodeStore.open(path, "a")
    problems = verify(path)
    assert len(problems) == 1 and "format_version 99" in problems[0].message


def test_not_a_store(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "not an episode store" in verify(tmp_path / "empty")[0].message
    assert "no such" in verify(tmp_path / "nope")[0].message
