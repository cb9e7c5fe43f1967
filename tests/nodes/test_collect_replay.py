"""Collect a scripted episode through the graph into a store, then replay it in the twin."""
import numpy as np

from robot_stack.collect import run_collect
from robot_stack.data import EpisodeStore
from robot_stack.sim.replay import replay_episode


def test_collected_episode_replays_to_the_same_outcome(tmp_path, monkeypatch):
    store = tmp_path / "demos"
    assert run_collect("lift", "ur5e", "scripted", 1, str(store), seed=3) == 0
    with EpisodeStore.open(store) as s:
        assert s.num_episodes == 1
        meta = s.metadata(0)
        assert meta["seed"] == 3 and meta["task"] == "lift" and meta["operator"] == "scripted"
        assert meta["success"] is True and meta["instruction"]
        ep = s.read_episode(0, ["front_rgb", "joint_pos", "tick", "align.front_rgb", "action_taken"])
    assert len(ep["front_rgb"]["data"]) > 20 and len(ep["action_taken"]["data"]) > 5
    # Joint states at their own rate (100 Hz), not the camera's (30 Hz) or the tick's: the spacing of their stamps.
    # Best effort under load loses some (a count here would measure the machine), and the store says how many.
    state_spacing = np.median(np.diff(ep["joint_pos"]["capture_stamp"]))
    frame_spacing = np.median(np.diff(ep["front_rgb"]["capture_stamp"]))
    assert state_spacing < frame_spacing / 2.5, (state_spacing, frame_spacing)
    counts = meta["stream_counts"]["joint_pos"]
    assert counts["written"] == len(ep["joint_pos"]["data"])
    assert counts["published"] == counts["written"] + counts["dropped"] + counts["lost_in_transport"]
    assert len(ep["align.front_rgb"]["data"]) == len(ep["tick"]["data"])
    report = replay_episode(str(store), 0, "actions", video=str(tmp_path / "replay.mp4"))
    assert report["replayed_success"] is True and report["same_outcome"] is True
    assert report["final_object_error_m"] < 0.01                  # final object poses within 1 cm
    assert report["tcp_error_mean_m"] < 0.01, (report, meta["stream_counts"])
    assert (tmp_path / "replay.mp4").stat().st_size > 1000
    joints = replay_episode(str(store), 0, "joints")
    assert joints["joint_error_mean_rad"] < 0.1


def test_a_scripted_episode_leaves_the_calling_threads_scheduling_as_it_was(tmp_path):
    """The scripted commander streams at a command source's real-time priority for the episode only: the thread
    is the CLI's (or a test's) main thread, and what it starts afterwards would inherit the policy."""
    import os
    before = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
    assert run_collect("reach", "panda", "scripted", 1, str(tmp_path / "demos"), seed=4) == 0
    assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before
