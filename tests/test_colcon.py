"""The package built as ament_python by the real colcon (colcon-common-extensions from PyPI), with and without
--symlink-install, into a throwaway workspace: what `ros2 run` and `ros2 launch` look up in the install space
(the executables under lib/robot_stack, the launch files under share/robot_stack/launch, the ament index
marker), and the package importing from that space with the folders setup.py maps into it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import robot_stack

REPO = Path(robot_stack.__file__).resolve().parent.parent
COLCON = shutil.which("colcon", path=sysconfig.get_path("scripts")) or shutil.which("colcon")
EXECUTABLES = {"arm_node", "camera_node", "recorder_node", "teleop_node", "policy_server", "actor_node",
               "learner_node", "robot-stack"}

pytestmark = [
    pytest.mark.skipif(COLCON is None, reason="colcon is not installed (pip install colcon-common-extensions)"),
    pytest.mark.skipif(not (REPO / "package.xml").exists(), reason="needs the source tree, not an installed package"),
]

# Run from the sourced install space (local_setup.bash, as a user's shell would): where robot_stack and the
# mapped subpackages import from, and the executable `ros2 run robot_stack robot-stack` would start.
# find_spec resolves a subpackage as import does without running it (robot_stack.policies would import torch).
PROBE = """
import json, importlib.util as u
from ament_index_python.packages import get_package_prefix, get_package_share_directory
where = {n: u.find_spec("robot_stack" + ("." + n if n else "")).origin for n in ("", "policies", "drivers", "data")}
where["robot_stack"] = where.pop("")
print(json.dumps(dict(where, prefix=get_package_prefix("robot_stack"), share=get_package_share_directory("robot_stack"))))
"""


def colcon_env(ws: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["COLCON_HOME"] = str(ws / ".colcon")            # no user defaults or mixins
    env.pop("AMENT_PREFIX_PATH", None)
    env.pop("COLCON_PREFIX_PATH", None)
    return env


def start_build(ws: Path, symlink: bool) -> subprocess.Popen:
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "robot_stack").symlink_to(REPO)        # a workspace holds a link to the checkout, as users do
    cmd = [COLCON, "build", "--event-handlers", "console_cohesion+", "summary-"]
    if symlink:
        cmd.append("--symlink-install")
    return subprocess.Popen(cmd, cwd=ws, env=colcon_env(ws), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory):
    """Both builds at once (each is mostly waiting on setup.py subprocesses)."""
    root = tmp_path_factory.mktemp("colcon")
    builds = {mode: (root / mode, start_build(root / mode, symlink=mode == "symlink")) for mode in ("symlink", "plain")}
    for mode, (ws, proc) in builds.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"colcon build ({mode}) failed:\n{out}"
    return {mode: ws for mode, (ws, _) in builds.items()}


def sourced(ws: Path, command: str) -> subprocess.CompletedProcess:
    env = colcon_env(ws)
    env.pop("PYTHONPATH", None)
    return subprocess.run(["bash", "-c", f". install/local_setup.bash && {command}"], cwd=ws, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("mode", ["symlink", "plain"])
def test_install_space_has_what_ros2_run_and_launch_look_up(workspaces, mode):
    prefix = workspaces[mode] / "install" / "robot_stack"
    lib = prefix / "lib" / "robot_stack"
    assert EXECUTABLES <= {p.name for p in lib.iterdir() if os.access(p, os.X_OK)}
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / "robot_stack"
    assert marker.is_file()
    assert (prefix / "share" / "robot_stack" / "package.xml").is_file()
    launch = prefix / "share" / "robot_stack" / "launch"
    sources = sorted((REPO / "launch").glob("*.launch.yaml"))
    assert sorted(p.name for p in launch.iterdir()) == [p.name for p in sources]
    for source in sources:
        installed = launch / source.name
        assert installed.read_text() == source.read_text()
        # --symlink-install: edits to the checkout's launch files show through without a rebuild
        assert (installed.resolve() == source.resolve()) == (mode == "symlink")


@pytest.mark.parametrize("mode", ["symlink", "plain"])
def test_package_imports_and_an_executable_starts_from_the_install_space(workspaces, mode):
    ws = workspaces[mode]
    # One shell for both: sourcing and interpreter start-up are most of the time on a loaded machine.
    probe = sourced(ws, f"{sys.executable} -c '{PROBE}' && install/robot_stack/lib/robot_stack/robot-stack --help")
    assert probe.returncode == 0, probe.stderr
    where = json.loads(probe.stdout.strip().splitlines()[0])
    assert where["prefix"] == str(ws / "install" / "robot_stack")
    assert where["share"] == str(ws / "install" / "robot_stack" / "share" / "robot_stack")
    if mode == "symlink":
        # develop mode: the build space links back to the checkout, mapped folders included
        assert where["robot_stack"].startswith(str(ws / "build" / "robot_stack"))
        for name in ("policies", "drivers", "data"):
            assert Path(where[name]).resolve() == REPO / name / "__init__.py"
    else:
        site = ws / "install" / "robot_stack" / "lib"
        for name in ("robot_stack", "policies", "drivers", "data"):
            assert where[name].startswith(str(site)), where
            assert not Path(where[name]).is_symlink()
    # the console script resolves its entry point from the install space's metadata and runs
    assert "usage: robot-stack" in probe.stdout and "launch" in probe.stdout
