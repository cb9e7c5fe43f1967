"""A writer killed with SIGKILL loses only the episode it was writing; every committed one reads back bit-exact."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robot_stack.data import EpisodeStore, verify
from tests.data.episodes import assert_episode_equal, write_episode

ROOT = Path(__file__).resolve().parents[2]


def _run_until(tmp_path, mode: str, ready, n_before: int = 3, timeout: float = 30.0):
    """Start the child, wait until ``ready(marker text)``, SIGKILL it; returns the marker text at the kill."""
    store, marker = tmp_path / "store", tmp_path / "marker"
    child = subprocess.Popen([sys.executable, "-m", "tests.data.crash_child", str(store), mode, str(marker),
                              str(n_before)], cwd=ROOT, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    text = ""
    try:
        while time.monotonic() < deadline:
            assert child.poll() is None, child.stderr.read().decode()
            text = marker.read_text() if marker.exists() else ""
            if ready(text):
                break
            time.sleep(0.005)
        else:
            pytest.fail(f"child never got ready (marker {text!r})")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    return store, text


def test_sigkill_mid_episode_loses_only_that_episode(tmp_path):
    store_path, text = _run_until(tmp_path, "mid_episode", lambda t: t.endswith("writing"))
    assert text == "3 writing"
    # the doomed episode's frames really were on disk past the committed rows
    assert (store_path / "streams/extra").exists()
    store = EpisodeStore.open(store_path, "a")
    assert store.num_episodes == 3
    assert "extra" not in store.streams and not (store_path / "streams/extra").exists()
    assert store.recovered and not list(store_path.rglob("*.partial"))
    for k in range(3):
        assert_episode_equal(store, k)
        assert store.metadata(k)["seed"] == k
    assert write_episode(store, 3) == 3   # the store keeps working after recovery
    store.close()
    reopened = EpisodeStore.open(store_path)
    for k in range(4):
        assert_episode_equal(reopened, k)
    assert verify(reopened) == []


def test_sigkill_inside_commit_before_the_record(tmp_path):
    store_path, text = _run_until(tmp_path, "mid_commit", lambda t: t.endswith("committing"))
    assert text == "3 committing"
    assert (store_path / "meta/episodes/000003").exists()   # everything but the record was written
    store = EpisodeStore.open(store_path, "a")
    assert store.num_episodes == 3 and not (store_path / "meta/episodes/000003").exists()
    assert all(store.episode_ends(n).shape == (3,) for n in store.streams)
    for k in range(3):
        assert_episode_equal(store, k)
    assert write_episode(store, 3) == 3
    assert_episode_equal(store, 3)
    assert verify(store) == []


def test_sigkill_anywhere_in_a_commit_loop(tmp_path):
    store_path, text = _run_until(tmp_path, "loop", lambda t: t.endswith("committed") and int(t.split()[0]) >= 4)
    announced = int(text.split()[0])
    # the reader sees a consistent store even before recovery
    reader = EpisodeStore.open(store_path, "r")
    assert reader.num_episodes >= announced
    for k in range(reader.num_episodes):
        assert_episode_equal(reader, k)
    store = EpisodeStore.open(store_path, "a")
    assert store.num_episodes == reader.num_episodes
    assert verify(store) == []
