"""The YAML launcher: parsing and substitutions, command lines, errors, and real process graphs."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from robot_stack import launcher
from robot_stack.launcher import LaunchError, NodeSpec, load_launch, main, run

FIXTURES = Path(__file__).parent / "launch_fixtures"
NODE_SCRIPT = FIXTURES / "node.py"
REPO_ROOT = Path(launcher.__file__).resolve().parent.parent


def _script(path: Path) -> Path:
    """An executable copy of the stand-in node, run by this interpreter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n" + NODE_SCRIPT.read_text())
    path.chmod(0o755)
    return path


@pytest.fixture
def prefix(tmp_path, monkeypatch):
    """An ament install prefix holding package demo_pkg (talker, worker), like a colcon build."""
    root = tmp_path / "install"
    for exe in ("talker", "worker"):
        _script(root / "lib" / "demo_pkg" / exe)
    index = root / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (index / "demo_pkg").touch()
    (root / "share" / "demo_pkg" / "launch").mkdir(parents=True)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(root))
    return root


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def wait_for(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:                                        # a zombie has exited too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


def pids_in(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


# --------------------------------------------------------------------------- parsing and command lines

def test_node_command_line_is_the_one_launch_ros_builds(prefix, tmp_path):
    params = write(tmp_path, "params.yaml", "/**:\n  ros__parameters:\n    a: 1\n")
    path = write(tmp_path, "arm.yaml", """\
        launch:
          - arg: {name: ns, default: arm}
          - arg: {name: rate, default: "30"}
          - node:
              pkg: demo_pkg
              exec: talker
              name: driver
              namespace: $(var ns)
              args: "--mode fast '$(var ns) x'"
              param:
                - {name: use_sim_time, value: "True"}
                - {name: rate, value: $(var rate)}
                - {name: gain, value: 0.5}
                - {name: frame, value: base}
                - {name: joints, value: [1, 2.5]}
                - {name: cams, value: [front, wrist]}
                - {from: $(dirname)/params.yaml}
                - {name: limits, param: [{name: max_speed, value: 2}]}
              remap:
                - {from: image, to: /$(var ns)/camera/image}
                - {from: cmd, to: cmd_safe}
              env: [{name: ROBOT, value: $(var ns)}]
        """)
    [node] = load_launch(path, {"rate": "15"})
    exe = str(prefix / "lib" / "demo_pkg" / "talker")
    assert node.cmd == [
        exe, "--mode", "fast", "arm x",
        "--ros-args", "-r", "__node:=driver", "-r", "__ns:=/arm",
        "-p", "use_sim_time:=true", "-p", "rate:=15", "-p", "gain:=0.5", "-p", "frame:=base",
        "-p", "joints:=[1.0, 2.5]", "-p", "cams:=[front, wrist]", "--params-file", str(params),
        "-p", "limits.max_speed:=2",
        "-r", "image:=/arm/camera/image", "-r", "cmd:=cmd_safe"]
    assert (node.pkg, node.exec, node.name, node.namespace) == ("demo_pkg", "talker", "driver", "/arm")
    assert node.env == {"ROBOT": "arm"} and node.required and node.output == "log"


def test_minimal_node_gets_only_ros_args_marker(prefix, tmp_path):
    path = write(tmp_path, "min.yaml", "launch:\n  - node: {pkg: demo_pkg, exec: talker}\n")
    [node] = load_launch(path, {})
    assert node.cmd == [str(prefix / "lib" / "demo_pkg" / "talker"), "--ros-args"]
    assert node.name is None and node.namespace is None


def test_var_env_and_nested_substitutions(prefix, tmp_path, monkeypatch):
    monkeypatch.setenv("ROBOT_MODEL", "panda")
    monkeypatch.setenv("WHICH", "model")
    monkeypatch.delenv("UNSET_VAR", raising=False)
    path = write(tmp_path, "subst.yaml", """\
        launch:
          - arg: {name: ns, default: cam_$(env ROBOT_MODEL)}
          - let: {name: model, value: $(env ROBOT_MODEL)}
          - node:
              pkg: demo_pkg
              exec: talker
              args: "$(var ns)/camera $(env UNSET_VAR fallback) [$(optenv UNSET_VAR)] $(var $(env WHICH))"
        """)
    [node] = load_launch(path, {})
    assert node.cmd[1:5] == ["cam_panda/camera", "fallback", "[]", "panda"]


def test_env_without_default_and_undefined_var_are_errors(prefix, tmp_path, monkeypatch):
    monkeypatch.delenv("UNSET_VAR", raising=False)
    path = write(tmp_path, "env.yaml", "launch:\n  - let: {name: x, value: $(env UNSET_VAR)}\n")
    with pytest.raises(LaunchError, match="UNSET_VAR"):
        load_launch(path, {})
    path = write(tmp_path, "var.yaml", "launch:\n  - let: {name: x, value: $(var nope)}\n")
    with pytest.raises(LaunchError, match="'nope'"):
        load_launch(path, {})
    path = write(tmp_path, "eval.yaml", "launch:\n  - let: {name: x, value: $(eval 1+1)}\n")
    with pytest.raises(LaunchError, match="unsupported substitution"):
        load_launch(path, {})


def test_find_pkg_share_through_the_ament_index(prefix, tmp_path):
    path = write(tmp_path, "share.yaml", """\
        launch:
          - node: {pkg: demo_pkg, exec: talker, args: $(find-pkg-share demo_pkg)/config}
        """)
    [node] = load_launch(path, {})
    assert node.cmd[1] == f"{prefix}/share/demo_pkg/config"
    assert launcher.find_package_share("demo_pkg") == str(prefix / "share" / "demo_pkg")
    with pytest.raises(LaunchError, match="'not_a_pkg' not found in the ament index"):
        launcher.find_package_share("not_a_pkg")


def test_own_package_falls_back_to_the_repository_root(monkeypatch):
    monkeypatch.setenv("AMENT_PREFIX_PATH", "")
    assert launcher.source_tree_share("robot_stack") == str(REPO_ROOT)
    assert launcher.find_package_share("robot_stack") == str(REPO_ROOT)
    assert (REPO_ROOT / "launch").is_dir()
    assert launcher.source_tree_share("demo_pkg") is None


def test_include_passes_args_and_keeps_its_own_scope(prefix, tmp_path):
    write(tmp_path, "camera.yaml", """\
        launch:
          - arg: {name: camera}
          - arg: {name: fps, default: "30"}
          - let: {name: leaked, value: "yes"}
          - node: {pkg: demo_pkg, exec: talker, name: $(var camera), args: "$(var fps) $(var robot)"}
        """)
    path = write(tmp_path, "top.yaml", """\
        launch:
          - arg: {name: robot, default: panda}
          - include:
              file: $(dirname)/camera.yaml
              arg: [{name: camera, value: wrist_$(var robot)}]
          - include:
              file: $(dirname)/camera.yaml
              arg: [{name: camera, value: front}, {name: fps, value: "15"}]
          - node: {pkg: demo_pkg, exec: talker, name: after, args: $(optenv NOPE $(var leaked))}
        """)
    with pytest.raises(LaunchError, match="'leaked'"):          # the include's let stays inside it
        load_launch(path, {})
    path.write_text(path.read_text().replace("$(var leaked)", "none"))
    nodes = load_launch(path, {"robot": "ur5e", "fps": "60"})    # fps declared only in the include
    assert [(n.name, n.cmd[1:3]) for n in nodes] == [
        ("wrist_ur5e", ["60", "ur5e"]), ("front", ["15", "ur5e"]), ("after", ["none", "--ros-args"])]


def test_missing_include_names_the_file(prefix, tmp_path):
    path = write(tmp_path, "top.yaml", "launch:\n  - include: {file: $(dirname)/nope.yaml}\n")
    with pytest.raises(LaunchError, match="nope.yaml"):
        load_launch(path, {})


def test_group_push_ros_namespace_nests_and_ends_with_the_group(prefix, tmp_path):
    path = write(tmp_path, "ns.yaml", """\
        launch:
          - group:
              - push-ros-namespace: {namespace: left}
              - node: {pkg: demo_pkg, exec: talker, name: a}
              - node: {pkg: demo_pkg, exec: talker, name: b, namespace: cam}
              - node: {pkg: demo_pkg, exec: talker, name: c, namespace: /abs}
              - group:
                  children:
                    - push_ros_namespace: {namespace: inner}
                    - node: {pkg: demo_pkg, exec: talker, name: d}
              - node: {pkg: demo_pkg, exec: talker, name: e}
          - node: {pkg: demo_pkg, exec: talker, name: f}
        """)
    got = {n.name: n.namespace for n in load_launch(path, {})}
    assert got == {"a": "/left", "b": "/left/cam", "c": "/abs", "d": "/left/inner", "e": "/left", "f": None}
    [d] = [n for n in load_launch(path, {}) if n.name == "d"]
    assert d.cmd[-4:] == ["-r", "__node:=d", "-r", "__ns:=/left/inner"]


@pytest.mark.parametrize("value, started", [("true", True), ("TRUE", True), ("1", True), ("False", False),
                                            ("0", False)])
def test_if_and_unless_on_nodes_groups_and_includes(prefix, tmp_path, value, started):
    write(tmp_path, "inc.yaml", "launch:\n  - node: {pkg: demo_pkg, exec: talker, name: included}\n")
    path = write(tmp_path, "cond.yaml", """\
        launch:
          - arg: {name: enabled}
          - node: {pkg: demo_pkg, exec: talker, name: if_node, if: $(var enabled)}
          - node: {pkg: demo_pkg, exec: talker, name: unless_node, unless: $(var enabled)}
          - group: {if: $(var enabled), children: [node: {pkg: demo_pkg, exec: talker, name: grouped}]}
          - include: {file: $(dirname)/inc.yaml, if: $(var enabled)}
          - let: {name: x, value: "1", unless: $(var enabled)}
          - node: {pkg: demo_pkg, exec: talker, name: always, if: "true"}
        """)
    names = [n.name for n in load_launch(path, {"enabled": value})]
    expected = ["if_node", "grouped", "included"] if started else ["unless_node"]
    assert names == expected + ["always"]


def test_condition_that_is_not_a_boolean_is_an_error(prefix, tmp_path):
    path = write(tmp_path, "cond.yaml", "launch:\n  - node: {pkg: demo_pkg, exec: talker, if: maybe}\n")
    with pytest.raises(LaunchError, match="true, false, 1 or 0.*'maybe'"):
        load_launch(path, {})
    path = write(tmp_path, "on.yaml", "launch:\n  - arg: {name: on, default: x}\n")   # YAML reads `on` as true
    with pytest.raises(LaunchError, match="not a string"):
        load_launch(path, {})


def test_unknown_launch_argument_lists_the_valid_ones(prefix, tmp_path):
    path = write(tmp_path, "args.yaml", """\
        launch:
          - arg: {name: robot, default: panda}
          - arg: {name: use_sim, default: "true"}
        """)
    with pytest.raises(LaunchError, match="unknown launch argument.*robt.*valid arguments: robot, use_sim"):
        load_launch(path, {"robt": "ur5e"})


def test_missing_required_argument_and_bad_choice(prefix, tmp_path):
    path = write(tmp_path, "args.yaml", "launch:\n  - arg: {name: robot, choices: [panda, ur5e]}\n")
    with pytest.raises(LaunchError, match="'robot' is required"):
        load_launch(path, {})
    with pytest.raises(LaunchError, match="robot:=kuka is not one of panda, ur5e"):
        load_launch(path, {"robot": "kuka"})
    assert load_launch(path, {"robot": "ur5e"}) == []


def test_required_key_is_rejected_to_stay_valid_ros2_launch(prefix, tmp_path):
    path = write(tmp_path, "req.yaml", "launch:\n  - node: {pkg: demo_pkg, exec: talker, required: true}\n")
    with pytest.raises(LaunchError, match="unexpected key.*required.*respawn"):
        load_launch(path, {})
    path = write(tmp_path, "respawn.yaml", """\
        launch:
          - node: {pkg: demo_pkg, exec: talker, respawn: "True", respawn_delay: 0.5}
        """)
    [node] = load_launch(path, {})
    assert (node.required, node.respawn, node.respawn_delay) == (False, True, 0.5)


def test_executable_resolution_order_and_error(prefix, tmp_path, monkeypatch):
    on_path = _script(tmp_path / "bin" / "talker")
    _script(tmp_path / "bin" / "only_on_path")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert launcher.find_executable("demo_pkg", "talker") == str(prefix / "lib" / "demo_pkg" / "talker")
    assert launcher.find_executable("demo_pkg", "only_on_path") == str(tmp_path / "bin" / "only_on_path")
    assert launcher.find_executable("", "talker") == str(on_path)
    with pytest.raises(LaunchError, match="executable 'nope' of package 'demo_pkg' not found"):
        launcher.find_executable("demo_pkg", "nope")


REQUIRED_ARGS = {"franka.launch.yaml": {"robot_ip": "172.16.0.2"}, "ur.launch.yaml": {"robot_ip": "192.168.1.10"},
                 "collect.launch.yaml": {"store": "/tmp/demos"}, "policy.launch.yaml": {"checkpoints": "/tmp/ckpt"}}
EXTRA_NODES = {"collect.launch.yaml": ["recorder_node"], "policy.launch.yaml": ["policy_server"],
               "learn.launch.yaml": ["actor0", "learner_node"]}
NO_CAMERAS = {"learn.launch.yaml"}          # state observations by default


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "launch").glob("*.yaml")), ids=lambda p: p.name)
def test_the_package_launch_files_load_with_their_defaults(path, monkeypatch):
    monkeypatch.setenv("AMENT_PREFIX_PATH", "")
    args = REQUIRED_ARGS.get(path.name, {})
    nodes = load_launch(path, args)
    cameras = [] if path.name in NO_CAMERAS else ["front_camera", "wrist_camera"]
    expected = ["arm_node", *cameras, *EXTRA_NODES.get(path.name, [])]
    assert [n.name for n in nodes] == expected                   # the same arm + camera graph everywhere
    assert all(n.cmd[0] and "--ros-args" in n.cmd for n in nodes)
    for name, value in args.items():
        assert any(f"{name}:={value}" in n.cmd for n in nodes)
        with pytest.raises(LaunchError, match=f"'{name}' is required"):
            load_launch(path, {})


# --------------------------------------------------------------------------- fuzzed inputs

@settings(max_examples=200, deadline=None)
@given(st.text())
def test_text_without_substitutions_is_unchanged(text):
    scope = launcher._Scope(Path("x.yaml"), {})
    assert launcher.substitute(text.replace("$(", "$ ("), scope) == text.replace("$(", "$ (")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="$()'\" varenvx_-", max_size=30))
def test_malformed_substitutions_raise_launch_errors_only(text):
    scope = launcher._Scope(Path("x.yaml"), {"x": "1"})
    try:
        launcher.substitute(text, scope)
    except LaunchError:
        pass


scalars = st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text())


@settings(max_examples=300, deadline=None)
@given(st.one_of(scalars, *(st.lists(s, min_size=1) for s in (st.integers(), st.floats(allow_nan=False), st.text()))))
def test_param_values_render_as_yaml_that_reads_back_the_same(value):
    assert yaml.safe_load(launcher.render_param_value(value)) == value


# --------------------------------------------------------------------------- command line errors

def test_cli_errors_are_one_line_with_exit_code_2(prefix, tmp_path, capsys):
    path = write(tmp_path, "args.yaml", "launch:\n  - arg: {name: robot}\n")
    cases = [([str(tmp_path / "missing.yaml")], "missing.yaml"),
             (["no_such_launch_file"], "no_such_launch_file"),
             ([str(path), "robt:=ur5e", "robot:=panda"], "valid arguments: robot"),
             ([str(path)], "'robot' is required"),
             ([str(path), "robot=panda"], "name:=value")]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("robot-stack launch: error: ") and err.count("\n") == 1, err
        assert needle in err and "Traceback" not in err


def test_launch_file_by_name_from_the_package_launch_folder(prefix, tmp_path, capsys, monkeypatch):
    share = prefix / "share"
    (share / "ament_index" / "resource_index" / "packages" / "robot_stack").touch()
    (share / "robot_stack" / "launch").mkdir(parents=True)
    (share / "robot_stack" / "launch" / "demo.yaml").write_text(
        "launch:\n  - node: {pkg: demo_pkg, exec: talker, name: t, env: [{name: A, value: b c}]}\n")
    assert launcher.resolve_launch_file("demo") == share / "robot_stack" / "launch" / "demo.yaml"
    assert main(["demo.yaml", "--dry-run"]) == 0
    assert capsys.readouterr().out == f"[t] A='b c' {prefix}/lib/demo_pkg/talker --ros-args -r __node:=t\n"
    assert main(["absent"]) == 2
    assert "available: demo.yaml" in capsys.readouterr().err


# --------------------------------------------------------------------------- real process graphs

class Launcher:
    """`python -m robot_stack.launcher` as a user runs it, its output collected as it arrives."""

    def __init__(self, args, env):
        self.proc = subprocess.Popen([sys.executable, "-m", "robot_stack.launcher", *map(str, args)], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out, self.err = [], []
        self.readers = [threading.Thread(target=self._drain, args=(s, sink), daemon=True)
                        for s, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for r in self.readers:
            r.start()

    @staticmethod
    def _drain(stream, sink):
        for line in stream:
            sink.append(line.rstrip("\n"))

    def wait(self, timeout=20.0):
        code = self.proc.wait(timeout)
        for r in self.readers:
            r.join(5)
        return code

    def kill(self, node_pids_file: Path):
        """Leave nothing behind even when the launcher under test misbehaves."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in pids_in(node_pids_file):
            if not pid_gone(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def graph_env(prefix, tmp_path):
    """Environment for a launcher subprocess: the ament prefix, plus `path_node` found only on PATH."""
    _script(tmp_path / "bin" / "path_node")
    return {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}


def test_sigterm_to_the_launcher_stops_every_node(graph_env, tmp_path):
    pids = tmp_path / "pids"
    launch = Launcher([FIXTURES / "graph.yaml", f"pids:={pids}"], graph_env)
    try:
        wait_for(lambda: len(pids_in(pids)) == 2 and any("GREETING=" in line for line in launch.out),
                 "both nodes to be up")
        launch.proc.send_signal(signal.SIGTERM)
        assert launch.wait() == 128 + signal.SIGTERM
        node_pids = pids_in(pids)
        wait_for(lambda: all(pid_gone(p) for p in node_pids), "the nodes to be gone", timeout=5)
    finally:
        launch.kill(pids)
    talker_argv = next(json.loads(line.split(" ", 2)[2]) for line in launch.out if line.startswith("[talker] argv "))
    assert talker_argv == ["--append", str(pids), "--ros-args", "-r", "__node:=talker", "-r", "__ns:=/robot",
                           "-p", "rate:=10", "-r", "chatter:=/robot/chat"]
    assert "[listener] GREETING=hello from robot" in launch.out
    assert "[talker] stderr works" in launch.err and "[listener] stderr works" in launch.err
    assert "[talker] got SIGINT" in launch.out and "[listener] got SIGINT" in launch.out   # SIGINT first


def test_required_node_exit_brings_the_graph_down(graph_env, tmp_path):
    pids = tmp_path / "pids"
    launch = Launcher([FIXTURES / "required_exit.yaml", f"pids:={pids}"], graph_env)
    try:
        assert launch.wait() == 3
        node_pids = pids_in(pids)
        assert len(node_pids) == 3
        wait_for(lambda: all(pid_gone(p) for p in node_pids), "the other nodes to be gone", timeout=5)
    finally:
        launch.kill(pids)
    assert any("required node 'worker' exited with code 3" in line for line in launch.err), launch.err
    assert "[talker] got SIGINT" in launch.out and "[listener] got SIGINT" in launch.out


def _spec(name, *args, **kw):
    return NodeSpec(pkg="", exec="node.py", name=name, namespace=None,
                    cmd=[sys.executable, str(NODE_SCRIPT), *map(str, args)], **kw)


def test_nodes_that_ignore_sigint_and_sigterm_are_killed(tmp_path, capsys):
    ready = tmp_path / "ready"
    nodes = [_spec("stubborn", "--stubborn", "--append", ready),
             _spec("worker", "--wait-for", f"{ready}:1", "--exit-code", 0)]
    assert run(nodes, sigint_timeout=0.3, sigterm_timeout=0.3) == 1     # exit code 0 still ends the graph
    [stubborn] = pids_in(ready)
    wait_for(lambda: pid_gone(stubborn), "the stubborn node to be killed", timeout=5)
    out, err = capsys.readouterr()
    assert "[stubborn] got SIGINT" in out and "[stubborn] got SIGTERM" in out
    assert "stubborn still running; sending SIGKILL" in err
    assert "required node 'worker' exited with code 0" in err


def test_respawning_node_is_restarted_and_not_required(tmp_path, capsys):
    starts = tmp_path / "starts"
    nodes = [_spec("flaky", "--append", starts, "--exit-code", 1, required=False, respawn=True),
             _spec("watcher", "--wait-for", f"{starts}:3", "--exit-code", 5)]
    assert run(nodes, sigint_timeout=2, sigterm_timeout=2) == 5
    assert len(set(pids_in(starts))) >= 3
    err = capsys.readouterr().err
    assert "node 'flaky' exited with code 1; respawning" in err
    assert "required node 'watcher' exited with code 5" in err


def test_unstartable_node_is_a_launch_error(tmp_path):
    not_executable = tmp_path / "plain.txt"
    not_executable.write_text("")
    spec = NodeSpec(pkg="", exec="plain", name="plain", namespace=None, cmd=[str(not_executable)])
    with pytest.raises(LaunchError, match="could not start node 'plain'"):
        run([spec])
