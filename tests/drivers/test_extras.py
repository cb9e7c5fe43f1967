"""Hardware extras (issue 34, item 6): `pip install 'robot_stack[franka]'` etc. bring the vendor libraries,
and a driver whose library is missing says which extra to install.

Each driver runs in a fresh interpreter whose imports of its vendor modules fail as they do where the
library is not installed (a meta-path finder raising ModuleNotFoundError), whether or not this machine has
it. The extras are read from setup.py itself, so the command the error names is one that installs the module."""
from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import setuptools

ROOT = Path(__file__).resolve().parents[2]

BLOCKER = """
import sys
BLOCKED = set(sys.argv[1].split(","))
class Missing:                       # the vendor library is not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Missing())
from robot_stack.drivers.base import DriverError
try:
"""

# extra -> (modules the driver imports, the PyPI distribution that provides them, code that connects)
CASES = {
    "franka": (["pylibfranka"], "pylibfranka",
               "from robot_stack.drivers.franka.driver import FrankaDriver\n"
               "from robot_stack.drivers.franka.config import FrankaConfig\n"
               "FrankaDriver(FrankaConfig(ip='172.16.0.2')).connect()"),
    # ur_rtde's wheel installs top-level modules, no `ur_rtde` package (checked in ur_rtde-1.6.5's wheel)
    "ur": (["rtde_control", "rtde_receive", "rtde_io", "dashboard_client"], "ur_rtde",
           "from robot_stack.drivers.ur.driver import URDriver\n"
           "from robot_stack.drivers.ur.config import URConfig\n"
           "URDriver(URConfig(ip='192.168.1.10')).connect()"),
    "realsense": (["pyrealsense2"], "pyrealsense2",
                  "from robot_stack.drivers.realsense.driver import RealSenseCamera\n"
                  "from robot_stack.drivers.realsense.config import RealSenseConfig\n"
                  "RealSenseCamera(RealSenseConfig(serial='123')).connect()"),
    "teleop-spacemouse": (["pyspacemouse"], "pyspacemouse",
                          "from robot_stack.drivers.teleop import make_device\nmake_device('spacemouse').connect()"),
    "teleop-gamepad": (["pygame"], "pygame",
                       "from robot_stack.drivers.teleop import make_device\nmake_device('gamepad').connect()"),
}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def setup_kwargs() -> dict:
    """What setup.py passes to setup(), from running it with setup() captured (cwd: it names paths from there)."""
    captured = {}
    mp = pytest.MonkeyPatch()
    mp.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
    mp.chdir(ROOT)
    try:
        runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    finally:
        mp.undo()
    return captured


@pytest.fixture(scope="module")
def extras(setup_kwargs) -> dict[str, list[str]]:
    return setup_kwargs["extras_require"]


def _connect_without(modules: list[str], code: str) -> str:
    script = BLOCKER + "".join(f"    {line}\n" for line in code.splitlines()) + \
        "except DriverError as exc:\n    print(exc)\nelse:\n    print('CONNECTED')\n"
    proc = subprocess.run([sys.executable, "-c", script, ",".join(modules)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_missing_vendor_library_names_the_extra_that_installs_it(case, extras):
    modules, distribution, code = CASES[case]
    extra = case.split("-")[0]
    message = _connect_without(modules, code)
    assert f"pip install 'robot_stack[{extra}]'" in message, message
    assert "No module named" in message, "the import error itself is kept for whoever debugs a broken install"
    requirements = [_normalize(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for r in extras[extra]]
    assert _normalize(distribution) in requirements, f"[{extra}] must bring {distribution}: {extras[extra]}"
    assert _normalize(distribution) in [_normalize(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0])
                                        for r in extras["hardware"]]


def test_the_spacemouse_extra_keeps_the_module_level_api_the_driver_calls(extras):
    """pyspacemouse 2 dropped `open(device=, DeviceNumber=)` / module `read()` for device objects."""
    [spec] = [r for r in extras["teleop"] if _normalize(r).startswith("pyspacemouse")]
    assert "<2" in spec.replace(" ", "")
    source = (ROOT / "drivers/teleop/spacemouse.py").read_text()
    assert "DeviceNumber=" in source and "self._lib.read()" in source


def test_the_viewer_extra_is_in_the_test_extra(extras):
    assert [_normalize(re.split(r"[<>=]", r)[0]) for r in extras["viewer"]] == ["rerun-sdk"]
    assert extras["viewer"][0] in extras["test"], "the viewer's tests run in CI"


@pytest.mark.parametrize("package", ["diffusers", "pycolmap"])
def test_a_large_dependency_is_required_exactly_when_the_code_imports_it(setup_kwargs, package):
    """docs/design.md, "Dependencies that earn their place": none sits unused, none is missing from a fresh setup."""
    required = any(_normalize(r).startswith(package) for r in setup_kwargs["install_requires"])
    importers = [f for folder in ("robot_stack", "policies", "drivers", "data") for f in (ROOT / folder).rglob("*.py")
                 if re.search(rf"^\s*(import|from)\s+{package}\b", f.read_text(), re.M)]
    assert required == bool(importers), f"{package}: required {required}, imported by {importers}"
