"""The `robot-stack` command as a user runs it."""
import json
import subprocess
import sys

import imageio.v3 as iio


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "robot_stack.cli", *args], capture_output=True, text=True,
                          timeout=600, **kw)


def test_sim_demo_writes_json_and_videos(tmp_path):
    result = run("sim", "demo", "--task", "reach,lift", "--robot", "panda", "--episodes", "2", "--seed", "5",
                 "--video", str(tmp_path / "v"), "--json", str(tmp_path / "r.json"), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "reach" in result.stdout and "lift" in result.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert [(r["task"], r["episodes"]) for r in data["results"]] == [("reach", 2), ("lift", 2)]
    assert all(r["successes"] == 2 for r in data["results"])
    videos = sorted((tmp_path / "v").glob("*.mp4"))
    assert len(videos) == 4
    frames = iio.imread(videos[0])
    assert frames.shape[1:] == (240, 640, 3)          # front | wrist, side by side
    assert frames.shape[0] > 3


def test_unknown_names_exit_2_listing_the_valid_ones():
    result = run("sim", "demo", "--task", "juggle", "--episodes", "1")
    assert result.returncode == 2
    assert "valid tasks: reach, push, pick_place, stack, lift, drawer_open, drawer_close" in result.stderr
    assert "Traceback" not in result.stderr
    result = run("sim", "demo", "--robot", "kuka", "--episodes", "1")
    assert result.returncode == 2 and "panda, ur5e" in result.stderr
