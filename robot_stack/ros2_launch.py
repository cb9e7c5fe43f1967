"""`ros2 launch` without a ROS install: the real launch / launch_ros / launch_yaml packages, started through their
Python API as the `ros2 launch` verb does, for machines that have the rclpy wheels from PyPI and no ros2cli.

    python -m robot_stack.ros2_launch robot_stack sim.launch.yaml robot:=ur5e
    python -m robot_stack.ros2_launch path/to/file.launch.yaml name:=value ...

There is no launch_ros wheel on PyPI; scripts/setup.sh installs the upstream ones from ../shared/wheels/ros2-launch
where that folder exists. The package and its executables are found the ROS way, through the ament index
(AMENT_PREFIX_PATH): source `install/setup.bash` of a `colcon build` first. `robot-stack launch` (launcher.py) runs
the same files without any of this.

Two gaps of a wheel-only environment are bridged here, in this process only:
- launch's YAML/XML frontend finds its grammar through the ament index, and the wheels put it under this
  interpreter's prefix (`<venv>/share/launch/...`), which nothing adds to AMENT_PREFIX_PATH: it is appended.
- launch_ros imports `composition_interfaces.srv` at import time, an interface package with no wheel. Where it
  is missing, a stand-in that refuses to be used takes its place: our launch files start no composable nodes,
  and one that did would fail loudly when it sent the first request.
"""
from __future__ import annotations

import os
import sys
import types
from pathlib import Path


def _ament_prefixes() -> list[str]:
    return [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]


def add_interpreter_prefix(env=os.environ) -> None:
    """Append sys.prefix to AMENT_PREFIX_PATH where the launch wheels registered themselves there."""
    prefixes = _ament_prefixes()
    index = Path(sys.prefix, "share", "ament_index", "resource_index", "packages", "launch")
    if index.exists() and sys.prefix not in prefixes:
        env["AMENT_PREFIX_PATH"] = os.pathsep.join([*prefixes, sys.prefix])


def stub_composition_interfaces() -> None:
    """A stand-in for composition_interfaces.srv (see the module doc) when the real package is not installed."""
    try:
        import composition_interfaces.srv  # noqa: F401
        return
    except ImportError:
        pass

    def service(name: str) -> type:
        def refuse(*_args, **_kwargs):
            raise RuntimeError(f"composition_interfaces/srv/{name} is not installed: composable nodes need a ROS 2 "
                               "install (robot_stack's launch files use none)")
        return type(name, (), {"Request": refuse, "Response": refuse, "__init__": refuse})

    package = types.ModuleType("composition_interfaces")
    srv = types.ModuleType("composition_interfaces.srv")
    for name in ("LoadNode", "UnloadNode", "ListNodes"):
        setattr(srv, name, service(name))
    package.srv = srv
    package.__path__ = []           # a package, so `import composition_interfaces.srv` resolves from sys.modules
    sys.modules["composition_interfaces"] = package
    sys.modules["composition_interfaces.srv"] = srv


def find_launch_file(package: str, name: str) -> str:
    """`ros2 launch PKG FILE`: FILE anywhere under the package's share directory (launch/ first)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    try:
        share = Path(get_package_share_directory(package))
    except PackageNotFoundError:
        raise SystemExit(f"error: package '{package}' not found in the ament index (AMENT_PREFIX_PATH="
                         f"{os.environ.get('AMENT_PREFIX_PATH', '')!r}): source install/setup.bash of a colcon build")
    for candidate in (share / "launch" / name, *sorted(share.rglob(name))):
        if candidate.is_file():
            return str(candidate)
    raise SystemExit(f"error: file '{name}' was not found in the share directory of package '{package}' ({share})")


def parse(argv: list[str]) -> tuple[str, list[tuple[str, str]]]:
    positional = [a for a in argv if ":=" not in a]
    arguments = [tuple(a.split(":=", 1)) for a in argv if ":=" in a]
    if len(positional) == 1:
        path = positional[0]
    elif len(positional) == 2:
        path = find_launch_file(*positional)
    else:
        raise SystemExit("usage: python -m robot_stack.ros2_launch [PACKAGE] FILE [name:=value ...]")
    return path, arguments


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    add_interpreter_prefix()
    stub_composition_interfaces()
    path, arguments = parse(argv)

    import launch
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import AnyLaunchDescriptionSource

    # As the `ros2 launch` verb: one include of the file with its arguments; the service handles SIGINT (children
    # in the terminal's process group got the same Ctrl-C) and escalates to SIGTERM, then SIGKILL, after 5 s.
    service = launch.LaunchService(argv=argv)
    service.include_launch_description(launch.LaunchDescription([
        IncludeLaunchDescription(AnyLaunchDescriptionSource(path), launch_arguments=arguments),
    ]))
    return service.run()


if __name__ == "__main__":
    raise SystemExit(main())
