"""Process supervision: a graph goes down with the CLI that started it, however the CLI dies (issue 35, item 3).

The CLIs start their graph in a session of its own, so SIGKILL of a CLI's process group never reaches it; these
tests do exactly that and then look for any process of the graph. The stand-in graphs (tests/launch_fixtures/
node.py) cost a second or two each; the two real CLIs, `collect` (its graph and recorder) and `eval --backend
ros` (its graph and policy server), cost about ten and thirty seconds.
"""
import ast
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from robot_stack.launcher import ORPHAN_GRACE

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="walks /proc; prctl is Linux's")

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_SCRIPT = Path(__file__).parent / "launch_fixtures" / "node.py"
MARK = "ROBOT_STACK_SUPERVISION_TEST"
GONE_WITHIN = 5.0          # the bound; the launcher's own is ORPHAN_GRACE plus a poll

# The CLI's stand-in: starts a launcher through supervision.start_graph, as the CLIs do, writes the launcher's
# pid, then waits to be killed. `thread` mode starts it from a thread that ends once the nodes are up; `pipe`
# mode reads the launcher's stderr through a pipe, as `collect` does, which breaks when the parent dies.
PARENT = textwrap.dedent("""
    import os, subprocess, sys, threading, time
    from robot_stack.supervision import start_graph
    log, pid_file, mode, ready, count, *cmd = sys.argv[1:]
    graphs = []

    def lines(path):
        try:
            return len(open(path).read().split())
        except FileNotFoundError:
            return 0

    def begin():
        out = open(log, "w")
        graphs.append(start_graph(cmd, stdout=out, stderr=subprocess.PIPE if mode == "pipe" else out))
        open(pid_file + ".tmp", "w").write(str(graphs[0].pid))
        os.replace(pid_file + ".tmp", pid_file)
        while mode == "thread" and lines(ready) < int(count):
            time.sleep(0.02)

    if mode == "thread":
        worker = threading.Thread(target=begin)
        worker.start()
        worker.join()
        open(pid_file + ".thread_done", "w").close()
    else:
        begin()
    while True:
        time.sleep(1)
""")


def alive(pid: int) -> bool:
    """Running, not a zombie (a dead launcher's parent, init, may be slow to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def marked(marker: str) -> dict[int, str]:
    """pid -> command line of every live process whose environment carries MARK=marker."""
    needle = f"{MARK}={marker}".encode()
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            environ = Path(entry.path, "environ").read_bytes()
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in environ.split(b"\0") and alive(int(entry.name)):
            found[int(entry.name)] = cmdline
    return found


def wait_for(condition, what: str, timeout: float) -> float:
    """Seconds until `condition()` held; AssertionError after `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def pids_in(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def kill_leftovers(pids) -> None:
    """A failing test must not leave a graph running into the other tests."""
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def stand_in_graph(tmp_path: Path, *node_args: str) -> Path:
    """A launch file of stand-in nodes, `node_args[k]` being node k's own options."""
    exe = tmp_path / "node"
    exe.write_text(f"#!{sys.executable}\n" + NODE_SCRIPT.read_text())
    exe.chmod(0o755)
    nodes = "".join(f"  - node: {{exec: {exe}, name: n{k}, args: '{args}'}}\n" for k, args in enumerate(node_args))
    path = tmp_path / "graph.yaml"
    path.write_text("launch:\n" + nodes)
    return path


class Parent:
    """The PARENT script in a session of its own, like a CLI in a terminal."""

    def __init__(self, tmp_path: Path, launch_file: Path, mode: str = "main", ready: Path | None = None,
                 count: int = 0):
        self.log, self.pid_file = tmp_path / "launcher.log", tmp_path / "launcher.pid"
        cmd = [sys.executable, "-m", "robot_stack.launcher", str(launch_file)]
        self.proc = subprocess.Popen([sys.executable, "-c", PARENT, str(self.log), str(self.pid_file), mode,
                                      str(ready or tmp_path / "none"), str(count), *cmd], start_new_session=True)

    def launcher_pid(self) -> int:
        wait_for(self.pid_file.exists, "the parent to start the launcher", timeout=20)
        return int(self.pid_file.read_text())

    def kill_group(self) -> float:
        """SIGKILL the parent's process group, as a user or the OOM killer would; returns when it happened."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return time.monotonic()


@pytest.mark.parametrize("case", ["running", "while-stopping", "stderr-to-parent"])
def test_sigkilled_parent_takes_the_graph_down(tmp_path, case):
    """A polite node (stops on SIGTERM) and a stubborn one (only SIGKILL stops it), asked in order first.
    while-stopping: the CLI had begun its orderly stop (SIGINT to the launcher, whose SIGINT and SIGTERM waits
    are 5 s each) when it died. stderr-to-parent: the launcher's stderr was a pipe to the CLI, broken now, and
    the launcher must still stop its nodes in order rather than die on its first message."""
    pids = tmp_path / "pids"
    parent = Parent(tmp_path, stand_in_graph(tmp_path, f"--append {pids}", f"--stubborn --append {pids}"),
                    mode="pipe" if case == "stderr-to-parent" else "main")
    graph = []
    try:
        launcher = parent.launcher_pid()
        wait_for(lambda: len(pids_in(pids)) == 2, "both nodes to be up", timeout=30)
        graph = [launcher, *pids_in(pids)]
        if case == "while-stopping":
            os.kill(launcher, signal.SIGINT)
            wait_for(lambda: "[n1] got SIGINT" in parent.log.read_text(), "the orderly stop to begin", timeout=10)
        killed = parent.kill_group()
        took = wait_for(lambda: not any(map(alive, graph)), "the graph to be gone", timeout=GONE_WITHIN)
    finally:
        parent.proc.kill()
        kill_leftovers(graph)
    log = parent.log.read_text()      # the launcher's stdout: the nodes' output, and its own messages but in `pipe`
    polite = "SIGINT" if case == "while-stopping" else "SIGTERM"               # n0 stops at the first one
    assert f"[n0] got {polite}" in log and "[n1] got SIGTERM" in log, log       # in order first
    if case != "stderr-to-parent":
        assert "the process that started this graph is gone" in log, log
        assert "n1 still running; sending SIGKILL" in log, log                   # then forced
    assert took <= ORPHAN_GRACE + 1.5, f"took {took:.2f} s after the kill at {killed:.1f}"


def test_nodes_die_with_a_sigkilled_launcher(tmp_path):
    """Nobody is left to stop them in order: the kernel's parent-death signal does, stubborn or not."""
    pids = tmp_path / "pids"
    launch_file = stand_in_graph(tmp_path, f"--append {pids}", f"--stubborn --append {pids}")
    launcher = subprocess.Popen([sys.executable, "-m", "robot_stack.launcher", str(launch_file)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nodes = []
    try:
        wait_for(lambda: len(pids_in(pids)) == 2, "both nodes to be up", timeout=30)
        nodes = pids_in(pids)
        launcher.kill()
        launcher.wait()
        took = wait_for(lambda: not any(map(alive, nodes)), "the nodes to be gone", timeout=GONE_WITHIN)
    finally:
        launcher.kill()
        kill_leftovers(nodes)
    assert took < 1.0, f"took {took:.2f} s"


def test_the_starting_thread_ending_is_not_the_parent_dying(tmp_path):
    """The kernel sends the parent-death signal when the parent's starting *thread* ends. A CLI that started its
    graph from a worker thread keeps the graph while it lives, and still takes it down when it dies."""
    pids = tmp_path / "pids"
    parent = Parent(tmp_path, stand_in_graph(tmp_path, f"--append {pids}"), mode="thread", ready=pids, count=1)
    graph = []
    try:
        launcher = parent.launcher_pid()
        wait_for(lambda: Path(f"{parent.pid_file}.thread_done").exists(), "the starting thread to end", timeout=30)
        graph = [launcher, *pids_in(pids)]
        # The launcher reacts to the signal within one 50 ms poll; give it ten times that to do the wrong thing.
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            assert all(map(alive, graph)), parent.log.read_text()
            time.sleep(0.02)
        parent.kill_group()
        wait_for(lambda: not any(map(alive, graph)), "the graph to be gone", timeout=GONE_WITHIN)
    finally:
        parent.proc.kill()
        kill_leftovers(graph)
    assert "the process that started this graph is gone" in parent.log.read_text()


def test_workers_die_with_their_parent_alone(tmp_path):
    """`sim collect --workers` and `eval --workers` children share their parent's process group, but a parent
    killed alone (its pid, not its group) must not leave them running either. The worker here is the cheapest
    long-running sub-command, a launcher with a stand-in node."""
    pids, marker = tmp_path / "pids", uuid.uuid4().hex
    launch_file = stand_in_graph(tmp_path, f"--append {pids}")
    code = ("import sys; from robot_stack.workers import run_cli_workers; "
            "run_cli_workers([['launch', sys.argv[1]]], 'stand-in', 1, lambda finished: 0)")
    parent = subprocess.Popen([sys.executable, "-c", code, str(launch_file)], env={**os.environ, MARK: marker},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(pids_in(pids)) == 1, "the worker's node to be up", timeout=30)
        assert len(marked(marker)) == 3                  # the parent, the worker (a launcher) and its node
        parent.kill()
        parent.wait()
        wait_for(lambda: not marked(marker), "the worker and its node to be gone", timeout=GONE_WITHIN)
    finally:
        parent.kill()
        kill_leftovers(marked(marker))


def test_every_detached_child_is_tied_to_its_parent():
    """A child in a session of its own is out of reach of its parent's process group: each such start in the
    package goes through supervision.start_graph or arms a parent-death signal (`preexec_fn=die_with_parent`),
    so a CLI added later cannot bring the orphans back."""
    untied = []
    for path in sorted((REPO_ROOT / "robot_stack").rglob("*.py")):
        if path.name == "supervision.py":
            continue
        for call in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(call, ast.Call):
                continue
            keywords = {k.arg: k.value for k in call.keywords}
            detached = isinstance(keywords.get("start_new_session"), ast.Constant) and \
                keywords["start_new_session"].value is True
            if detached and "preexec_fn" not in keywords:
                untied.append(f"{path.relative_to(REPO_ROOT)}:{call.lineno}")
    assert not untied, f"children started in a new session with nothing tying them to their parent: {untied}"


# --------------------------------------------------------------------------- the real CLIs

def _cli_env(marker: str) -> dict[str, str]:
    env = {**os.environ, MARK: marker, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    env.setdefault("ROS_DOMAIN_ID", str(random.randint(110, 200)))    # conftest may have given one already
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return env


def _node_names(procs: dict[int, str]) -> set[str]:
    return {word.split(":=", 1)[1] for cmd in procs.values() for word in cmd.split() if word.startswith("__node:=")}


@pytest.mark.parametrize("cli", ["collect", "eval"])
def test_sigkilled_cli_leaves_no_process_of_its_graph(tmp_path, cli):
    """The issue's probe: `robot-stack collect` (scripted) and `robot-stack eval --backend ros` (the shipped
    checkpoint) with their graphs up and an episode under way, SIGKILL of the CLI's process group, and 5 s later
    no process carrying the run's environment marker: not the launcher, the arm, the cameras, the recorder or
    the policy server."""
    marker = uuid.uuid4().hex
    # `under_way`: the CLI's progress bar, drawn once the graph is up and the first episode begins.
    if cli == "collect":
        argv = ["collect", "--task", "reach", "--episodes", "50", "--out", str(tmp_path / "store")]
        nodes, under_way = {"arm_node", "front_camera", "wrist_camera", "recorder_node"}, "collect reach panda:"
    else:
        argv = ["eval", "--checkpoint", str(REPO_ROOT / "checkpoints" / "beso_pick_place"), "--episodes", "50",
                "--backend", "ros"]
        nodes, under_way = {"arm_node", "front_camera", "wrist_camera", "policy_server"}, "pick_place (ros):"
    log = tmp_path / "cli.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "robot_stack.cli", *argv], env=_cli_env(marker),
                                stdout=out, stderr=out, start_new_session=True)
    try:
        wait_for(lambda: under_way in log.read_text() or proc.poll() is not None, f"{cli} to be under way",
                 timeout=180)
        graph = marked(marker)
        assert proc.poll() is None and nodes <= _node_names(graph), log.read_text()[-3000:]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        wait_for(lambda: not marked(marker), "no process of the graph", timeout=GONE_WITHIN)
    finally:
        proc.kill()
        kill_leftovers(marked(marker))
