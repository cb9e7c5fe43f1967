"""Durable commits: a power loss right after ``commit`` returns must not lose the episode.

The SIGKILL test (test_crash.py) cannot see a missing fsync, since the page cache survives a killed
process; so these tests log every ``os.fsync`` (by the path of its descriptor) and ``os.replace``
in order, and check that the episode's files and their directories were synced before the commit
record replaced the root zarr.json, and that the record itself was synced before and after its rename.
"""
import os
from pathlib import Path

import pytest

from robot_stack.data import EpisodeStore
from tests.data.episodes import assert_episode_equal, write_episode


@pytest.fixture
def io_log(monkeypatch):
    """[("fsync", path) | ("replace", src, dst)] in call order (fsyncs come from several threads)."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst, **kw):
        real_replace(src, dst, **kw)
        events.append(("replace", os.path.abspath(src), os.path.abspath(dst)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def _episode_files(store, k: int) -> set[str]:
    """Every file the commit of episode k must have made durable: its frame chunks, the chunks holding its
    rows of the low-dimensional streams and stamps, its episode-end entries and its metadata."""
    root = store.path
    files = {root / f"meta/episodes/{k:06d}/zarr.json"}
    for name, spec in store.streams.items():
        start, end = store.episode_range(k, name)
        files.add(root / f"meta/episode_ends/{name}/c/0")
        files.add(root / f"streams/{name}/data/zarr.json")   # resized: the shape grew
        for part in ("capture_stamp", "receive_stamp"):
            files.add(root / f"streams/{name}/{part}/c/0")
        tail = "/".join("0" for _ in spec.shape)
        for row in range(start, end):
            files.add(root / f"streams/{name}/data/c/{row // spec.chunk_rows}/{tail}")
    return {str(f.resolve()) for f in files}


def test_commit_fsyncs_episode_files_and_directories_then_the_record(tmp_path, io_log):
    store = EpisodeStore.create(tmp_path / "store")
    write_episode(store, 0)
    io_log.clear()
    assert write_episode(store, 1) == 1
    root = str(store.path.resolve())
    record = os.path.join(root, "zarr.json")

    commits = [i for i, e in enumerate(io_log) if e[0] == "replace" and e[2] == record]
    assert len(commits) == 1, "the commit record is replaced exactly once per commit"
    at = commits[0]
    temp = io_log[at][1]
    synced_before = {e[1] for e in io_log[:at] if e[0] == "fsync"}

    files = _episode_files(store, 1)
    assert len(files) > 20 and all(os.path.isfile(f) for f in files)
    assert files - synced_before == set(), "episode files not fsynced before the commit record"
    dirs = {str(Path(f).parent) for f in files}
    for d in list(dirs):   # new chunk directories (c/<row>/0/0) are entries in their parents, up to the root
        while d != root:
            d = os.path.dirname(d)
            dirs.add(d)
    assert dirs - synced_before == set(), "directories not fsynced before the commit record"

    # the record: written to a temp file in the root, fsynced, renamed over zarr.json, root directory fsynced
    assert os.path.dirname(temp) == root and temp.endswith(".partial")
    assert ("fsync", temp) in io_log[:at]
    assert ("fsync", root) in io_log[at + 1:], "the rename of the record is not durable until the root is fsynced"
    assert not os.path.exists(temp)
    store.close()

    reopened = EpisodeStore.open(tmp_path / "store")
    assert reopened.num_episodes == 2
    assert_episode_equal(reopened, 1)


def test_files_written_before_a_discarded_episode_are_synced_at_the_next_commit(tmp_path, io_log):
    store = EpisodeStore.create(tmp_path / "store")
    write_episode(store, 0, commit=False).discard()   # its frame files are gone: nothing to sync, no error
    io_log.clear()
    write_episode(store, 0)
    synced = {e[1] for e in io_log if e[0] == "fsync"}
    assert _episode_files(store, 0) - synced == set()
    assert_episode_equal(store, 0)
    store.close()


def test_create_syncs_the_empty_store(tmp_path, io_log):
    store = EpisodeStore.create(tmp_path / "store")
    synced = {e[1] for e in io_log if e[0] == "fsync"}
    root = str(store.path.resolve())
    assert {root, os.path.dirname(root), os.path.join(root, "zarr.json"),
            os.path.join(root, "meta/episodes/zarr.json")} <= synced
    store.close()


def test_rewritten_chunks_holding_committed_rows_are_synced_before_their_rename(tmp_path, io_log):
    # the low-dimensional chunk c/0 holds episode 0's rows; episode 1 rewrites it before its own record exists,
    # so a power loss in between must find the old or the new file, never an empty one
    store = EpisodeStore.create(tmp_path / "store")
    write_episode(store, 0)
    io_log.clear()
    write_episode(store, 1)
    shared = str((store.path / "streams/joint_pos/data/c/0/0").resolve())
    renames = [i for i, e in enumerate(io_log) if e[0] == "replace" and e[2] == shared]
    assert renames, "episode 1 rewrote the chunk holding episode 0's joint positions"
    for i in renames:
        assert ("fsync", io_log[i][1]) in io_log[:i]
    store.close()
    assert_episode_equal(EpisodeStore.open(tmp_path / "store"), 0)


def test_durable_false_never_fsyncs(tmp_path, io_log):
    with EpisodeStore.create(tmp_path / "store", durable=False) as store:
        write_episode(store, 0)
    assert not [e for e in io_log if e[0] == "fsync"]
    assert_episode_equal(EpisodeStore.open(tmp_path / "store"), 0)
