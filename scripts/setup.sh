#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine: system libraries for off-screen MuJoCo rendering
# (when root and missing), a virtual environment in .venv, and the package with test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

need_apt=()
ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1' || need_apt+=(libegl1)
[ -e /usr/lib/x86_64-linux-gnu/dri/swrast_dri.so ] || [ -e /usr/lib/aarch64-linux-gnu/dri/swrast_dri.so ] \
  || ls /usr/lib/*/dri/*swrast* >/dev/null 2>&1 || need_apt+=(libgl1-mesa-dri)
ldconfig -p 2>/dev/null | grep -q 'libOSMesa.so' || need_apt+=(libosmesa6)
# headless Chromium: the test of `robot-stack sketch draw` drives its drawing page in a real browser
command -v chromium >/dev/null || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install ${need_apt[*]} (apt-get) for off-screen rendering and the browser test" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# A sourced ROS 2 (ROS_DISTRO set, rclpy importable) takes precedence over the PyPI wheels.
extras="test"
if [ -n "${ROS_DISTRO:-}" ] && .venv/bin/python -c "import rclpy" 2>/dev/null; then
  echo "setup: using the sourced ROS 2 $ROS_DISTRO"
else
  extras="test,ros"
fi
.venv/bin/python -m pip install -q -c constraints.txt -e ".[$extras]"
# The real ROS 2 launch system, for `python -m robot_stack.ros2_launch` and tests/test_ros2_launch.py: no
# launch_ros wheel is on PyPI; the upstream ones sit beside the clone (their README names their dependencies).
wheels=../shared/wheels/ros2-launch
if [ -z "${ROS_DISTRO:-}" ] && ls "$wheels"/*.whl >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q --no-deps "$wheels"/*.whl
  .venv/bin/python -m pip install -q osrf-pycommon lark-parser
fi
echo "setup: ready (.venv)"
