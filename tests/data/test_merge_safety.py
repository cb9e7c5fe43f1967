"""`data merge ... --overwrite` never destroys what it should not (issue 35, item 5).

Before: `data merge X X --overwrite` deleted X before reading it (0 of 3 episodes left), an
unrelated directory given as OUT was removed whole, and a merge that failed half way had already
deleted the old OUT. Now OUT may not be an input, `--overwrite` replaces only an episode store, and
the merge writes a temporary store that is swapped in only when complete."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robot_stack.cli import main
from robot_stack.data import EpisodeStore, StoreError
from robot_stack.data import tools
from tests.data.episodes import assert_episode_equal, write_episode
from tests.data.replay_store import frame_chunk, write_replay_store

ROOT = Path(__file__).resolve().parents[2]


def _store(path: Path, seeds) -> Path:
    with EpisodeStore.create(path, durable=False) as s:
        for k in seeds:
            write_episode(s, k)
    return path


def _seeds(path: Path) -> list:
    with EpisodeStore.open(path) as s:
        return [s.metadata(k)["seed"] for k in range(s.num_episodes)]


def _leftovers(out: Path) -> list:
    return sorted(p.name for p in out.parent.glob(f".{out.name}.merge-*"))


def _snapshot(store: Path) -> dict:
    """Every file of a store and its bytes (the lock file aside: its owner record changes with each writer)."""
    return {p.relative_to(store): p.read_bytes() for p in store.rglob("*")
            if p.is_file() and not p.name.startswith(".writer.lock")}


def _one_line(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("robot-stack: error: "), captured.err
    return lines[0]


def test_merge_into_its_own_input_is_refused_and_the_input_kept(tmp_path, capsys):
    x = _store(tmp_path / "x", [0, 1, 2])
    link = tmp_path / "x-link"
    link.symlink_to(x, target_is_directory=True)
    for argv in (["data", "merge", str(x), str(x), "--overwrite"],
                 ["data", "merge", str(link), str(x), "--overwrite"],               # the same store by another name
                 ["data", "merge", str(tmp_path / "x" / ".." / "x"), str(x), "--overwrite"],
                 ["data", "merge", str(tmp_path), str(x), "--overwrite"],           # a directory holding an input
                 ["data", "merge", str(x / "inner"), str(x)]):                      # a path inside an input
        assert main(argv) == 2, argv
        assert "also an input" in _one_line(capsys)
        assert _seeds(x) == [0, 1, 2]
    with EpisodeStore.open(x) as s:
        for k in range(3):
            assert_episode_equal(s, k)
    assert not (x / "inner").exists() and _leftovers(x) == []


def test_overwrite_refuses_a_directory_that_is_not_an_episode_store(tmp_path, capsys):
    src = _store(tmp_path / "src", [0])
    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "todo.txt").write_text("keep me")
    (notes / "sub" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    a_file = tmp_path / "model.safetensors"
    a_file.write_bytes(b"weights")
    for target in (notes, notes / "sub", a_file):   # a plain directory, a zarr group that is no episode store, a file
        assert main(["data", "merge", str(target), str(src), "--overwrite"]) == 2
        assert "not an episode store" in _one_line(capsys)
        with pytest.raises(StoreError, match="not an episode store"):
            EpisodeStore.create(target, overwrite=True)
    assert (notes / "todo.txt").read_text() == "keep me" and (notes / "sub" / "zarr.json").exists()
    assert a_file.read_bytes() == b"weights"
    # without --overwrite, any existing output is refused, store or not
    old = _store(tmp_path / "old", [5])
    assert main(["data", "merge", str(old), str(src)]) == 2
    assert "already exists" in _one_line(capsys) and _seeds(old) == [5]


def test_overwrite_replaces_an_episode_store_and_leaves_no_temporary(tmp_path, capsys):
    src = _store(tmp_path / "src", [0, 1])
    out = _store(tmp_path / "out", [7, 8, 9])
    assert main(["data", "merge", str(out), str(src), "--overwrite"]) == 0
    assert _seeds(out) == [0, 1] and _leftovers(out) == []
    with EpisodeStore.open(out) as s:
        assert_episode_equal(s, 0) and assert_episode_equal(s, 1)
    empty = tmp_path / "empty"
    empty.mkdir()                                   # an empty directory is as good as no output
    assert main(["data", "merge", str(empty), str(src)]) == 0 and _seeds(empty) == [0, 1]


def test_failed_merge_leaves_the_old_output_intact(tmp_path, capsys):
    out = write_replay_store(tmp_path / "out", seeds=[10, 11])
    src = write_replay_store(tmp_path / "src", episodes=3)
    chunk = frame_chunk(src, 2, 1)                  # the last episode to be copied
    chunk.write_bytes(chunk.read_bytes()[:-7])
    before = _snapshot(out)
    assert main(["data", "merge", str(out), str(src), "--overwrite"]) == 2
    line = _one_line(capsys)
    assert str(src) in line and "episode 2" in line
    assert _snapshot(out) == before                 # every file of the old store, byte for byte
    assert _seeds(out) == [10, 11] and _leftovers(out) == []


def test_merge_into_a_store_being_recorded_is_refused(tmp_path, capsys):
    src = _store(tmp_path / "src", [0])
    out = _store(tmp_path / "out", [3])
    with EpisodeStore.open(out, "a"):               # a recorder holds it
        assert main(["data", "merge", str(out), str(src), "--overwrite"]) == 2
        assert "locked for writing" in _one_line(capsys)
    assert _seeds(out) == [3] and _leftovers(out) == []


SLOW_MERGE = """
import sys, time
from pathlib import Path
from robot_stack.data import tools
from robot_stack.data.writer import EpisodeWriter
real = EpisodeWriter.commit
def slow(self, *a, **k):   # each commit (batch=1: each episode) announced, then a pause to be killed in
    n = real(self, *a, **k)
    Path(sys.argv[3]).write_text(f"committed {n}")
    time.sleep(0.5)
    return n
EpisodeWriter.commit = slow
tools.merge([sys.argv[2]], sys.argv[1], overwrite=True, progress=False, batch=1)
"""


def test_killed_merge_leaves_the_old_output_and_the_next_merge_cleans_up(tmp_path):
    src = _store(tmp_path / "src", [0, 1, 2, 3])
    out = _store(tmp_path / "out", [20, 21])
    before = _snapshot(out)
    marker = tmp_path / "marker"
    child = subprocess.Popen([sys.executable, "-c", SLOW_MERGE, str(out), str(src), str(marker)], cwd=ROOT,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None and time.monotonic() < deadline, "the merge never committed an episode"
            time.sleep(0.02)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    assert _snapshot(out) == before and _seeds(out) == [20, 21]   # the old store, byte for byte
    temps = _leftovers(out)
    assert len(temps) == 1                          # the killed merge's half-written store
    with EpisodeStore.open(out.parent / temps[0]) as half:
        assert 0 < half.num_episodes < 4
    assert tools.merge([src], out, overwrite=True, progress=False) == 4
    assert _seeds(out) == [0, 1, 2, 3] and _leftovers(out) == []   # its lock was free: removed


def test_merge_can_leave_out_a_stream_that_differs_between_tasks(tmp_path):
    """Tasks whose task_state differs in size mix into one store once that stream is dropped (multi-task data)."""
    from robot_stack.data import EpisodeStore
    from robot_stack.data.tools import merge
    from robot_stack.sim.expert_data import generate

    a, b = tmp_path / "reach.zarr", tmp_path / "lift.zarr"
    generate("reach", "panda", 1, seed=1000, out=str(a), image_size=32, progress=False, durable=False)
    generate("lift", "panda", 1, seed=1000, out=str(b), image_size=32, progress=False, durable=False)
    with pytest.raises(ValueError, match="task_state"):
        merge([a, b], tmp_path / "both.zarr", progress=False)
    assert merge([a, b], tmp_path / "both.zarr", progress=False, drop=("task_state",)) == 2
    both = EpisodeStore.open(tmp_path / "both.zarr")
    assert "task_state" not in both.streams and {both.metadata(k)["task"] for k in range(2)} == {"reach", "lift"}
