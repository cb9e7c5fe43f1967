"""The store's writer lock: a live writer still refuses others; a lock whose owner is dead is taken over
(issue 35, item 3: the store lock).

The flock alone is released by the kernel when its process dies, but not while a descriptor of it
lives on in another process: a child started with it (pass_fds) or a fork() (multiprocessing) kept
the store locked after the writer was gone, so every later writer got StoreLockedError."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robot_stack.data import EpisodeStore, StoreLockedError
from tests.data.episodes import assert_episode_equal, write_episode

ROOT = Path(__file__).resolve().parents[2]
LOCK_FILE = ".writer.lock"   # data/store.py's name for it


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "store"
    with EpisodeStore.create(p, durable=False) as s:
        write_episode(s, 0)
    return p


def _start(code: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


HOLDER = """
import sys, time
from robot_stack.data import EpisodeStore
store = EpisodeStore.open(sys.argv[1], "a")
print("locked", flush=True)
time.sleep(120)
"""


def test_a_live_writer_still_refuses_and_is_named(path):
    child = _start(HOLDER, path)
    try:
        assert child.stdout.readline().strip() == "locked"
        for _ in range(2):
            with pytest.raises(StoreLockedError, match=rf"locked for writing by pid {child.pid}\b") as info:
                EpisodeStore.open(path, "a")
            assert info.value.holder["pid"] == child.pid
        with pytest.raises(StoreLockedError):
            EpisodeStore.create(path, overwrite=True)   # nor deleted under it
    finally:
        child.kill()
        child.wait()
    with EpisodeStore.open(path, "a") as store:        # the kernel released it with the process
        assert store.took_over is None
        write_episode(store, 1)
    assert_episode_equal(EpisodeStore.open(path), 1)


INHERIT = """
import os, signal, subprocess, sys
from robot_stack.data import EpisodeStore
store = EpisodeStore.open(sys.argv[1], "a")
# a helper started with the lock's descriptor (pass_fds): it keeps the flock after we die
helper = subprocess.Popen(["sleep", "120"], pass_fds=[store._lock_fd])
print(helper.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_lock_of_a_dead_writer_is_taken_over_though_a_child_still_holds_the_flock(path):
    child = _start(INHERIT, path)
    helper = int(child.stdout.readline())
    try:
        child.wait(30)
        assert child.returncode == -signal.SIGKILL
        with EpisodeStore.open(path, "a") as store:
            assert store.took_over["pid"] == child.pid   # whose lock it was
            assert store.recovered == {}
            write_episode(store, 1)
            # taken over, not shared: a third writer is refused, naming the new owner (this process)
            with pytest.raises(StoreLockedError, match=rf"pid {os.getpid()}\b"):
                EpisodeStore.open(path, "a")
        assert Path(f"/proc/{helper}").exists()       # the helper still runs: the takeover did not wait for it
        with EpisodeStore.open(path) as store:
            assert store.num_episodes == 2
            assert_episode_equal(store, 0)
            assert_episode_equal(store, 1)
        assert not list(path.glob(LOCK_FILE + ".new-*"))
    finally:
        _kill(helper)


FORK = r"""
import os, sys, time
from robot_stack.data import EpisodeStore, StoreError
store = EpisodeStore.open(sys.argv[1], "a")
pid = os.fork()
if pid == 0:          # the child (say, a multiprocessing worker) must neither keep the lock nor write
    try:
        store.begin_episode()
        os.write(1, b"child could write\n")   # one write each: the two processes share the pipe
    except StoreError:
        os.write(1, b"child refused\n")
    time.sleep(120)
    os._exit(0)
os.write(1, f"{pid}\n".encode())
os._exit(0)           # the writer ends without closing its store
"""


def test_a_forked_child_does_not_keep_the_store_locked(path):
    child = _start(FORK, path)
    lines = [child.stdout.readline().strip() for _ in range(2)]
    grandchild = int(next(line for line in lines if line.isdigit()))
    try:
        assert "child refused" in lines
        child.wait(30)
        with EpisodeStore.open(path, "a") as store:   # the flock went with the writer
            assert store.took_over is None
            write_episode(store, 1)
    finally:
        _kill(grandchild)


def _hold_flock_with_record(path: Path, record: dict) -> int:
    """A descriptor holding the flock of the store's lock file with `record` as its owner record."""
    import fcntl
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    return fd


def test_a_reused_pid_does_not_keep_the_lock(path):
    """The record's pid runs again (here: this very process) but started at another time: the owner is dead."""
    from robot_stack.data.store import _owner_record
    record = {**_owner_record(), "start_time": _owner_record()["start_time"] - 1}
    fd = _hold_flock_with_record(path, record)
    try:
        with EpisodeStore.open(path, "a") as store:
            assert store.took_over == record
    finally:
        os.close(fd)


@pytest.mark.parametrize("change,why", [({"host": "other-host"}, "on other-host"),
                                        ({"pid_ns": 1}, "pid"),
                                        (None, "no owner record")])
def test_an_owner_it_cannot_judge_is_treated_as_alive(path, change, why):
    """Another machine on a shared file system, another pid namespace, a lock from an older version: refuse."""
    from robot_stack.data.store import _owner_record
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = {**_owner_record(), "pid": int(dead.stdout), **(change or {})} if change else {}
    fd = _hold_flock_with_record(path, record)
    try:
        with pytest.raises(StoreLockedError, match=why):
            EpisodeStore.open(path, "a")
    finally:
        os.close(fd)


def test_owner_alive_decisions():
    from robot_stack.data.store import _owner_record, owner_alive
    me = _owner_record()
    assert owner_alive(me) is True
    assert owner_alive({**me, "start_time": me["start_time"] + 1}) is False       # pid reused
    assert owner_alive({**me, "boot_id": "0" * 36}) is False                      # before a reboot
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert owner_alive({**me, "pid": int(gone.stdout)}) is False
    assert owner_alive({**me, "host": "elsewhere"}) is None
    assert owner_alive({"pid": "12"}) is None and owner_alive(None) is None and owner_alive({**me, "pid": True}) is None


RACER = """
import sys, time
from robot_stack.data import EpisodeStore, StoreLockedError
go = float(sys.argv[2])
while time.time() < go:
    pass
try:
    store = EpisodeStore.open(sys.argv[1], "a")
    print("won", flush=True)
    time.sleep(3)
except StoreLockedError:
    print("refused", flush=True)
"""


def test_racing_takeovers_leave_exactly_one_writer(path):
    child = _start(INHERIT, path)                    # a dead owner whose flock a helper still holds
    helper = int(child.stdout.readline())
    child.wait(30)
    try:
        go = time.time() + 2.0                       # all start together, after their imports
        racers = [_start(RACER, path, go) for _ in range(4)]
        results = [r.communicate(timeout=60)[0].strip() for r in racers]
        assert sorted(results) == ["refused"] * 3 + ["won"], results
    finally:
        _kill(helper)
