"""The Policy interface: conditioning checks, observation checks, checkpoints and their failures."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from robot_stack.policies import (BadObservation, CheckpointMismatch, MissingConditioning, UnknownPolicy, load_policy,
                                  policy_class)
from robot_stack.types import Observation, Task
from tests.policies.toy import ToyPolicy, toy_stats


def obs(size=32, stamp=10.0):
    return Observation(stamp=stamp, images={"front": np.full((size, size, 3), 100, np.uint8)},
                       ee_pose=np.array([0.4, 0.0, 0.2, 1.0, 0.0, 0.0, 0.0]), gripper=0.08)


def toy():
    return ToyPolicy(ToyPolicy.Config(), toy_stats())


def test_task_provides_only_complete_conditioning():
    img = np.zeros((4, 4, 3), np.uint8)
    assert Task().provides() == {"none"}
    assert Task(goal_image=img).provides() == {"none", "goal_image"}
    assert "switch" not in Task(instruction="a").provides()
    assert "switch" in Task(instruction="b", previous_instruction="a", contact_state="in_contact").provides()
    assert "wrist_pose" not in Task(wrist_pose=np.zeros(7)).provides()
    assert "wrist_pose" in Task(wrist_pose=np.zeros(7), goal_image=img).provides()


def test_reset_refuses_missing_conditioning_and_act_needs_a_task():
    p = toy()
    with pytest.raises(MissingConditioning, match="needs one of"):
        p.reset(Task(sketch=np.zeros((32, 32, 3), np.uint8)))
    with pytest.raises(MissingConditioning, match="no task"):
        p.act(obs())


def test_act_returns_times_from_the_capture_stamp_and_checks_images():
    p = toy()
    p.reset(Task(instruction="put the red block in the bowl"))
    chunk = p.act(obs(stamp=5.0))
    assert len(chunk) == 3
    np.testing.assert_allclose(chunk.times, [5.1, 5.2, 5.3])
    with pytest.raises(BadObservation, match="32x32x3"):
        p.act(obs(size=48))
    with pytest.raises(BadObservation, match="camera 'front'"):
        p.act(Observation(stamp=1.0, images={"wrist": np.zeros((32, 32, 3), np.uint8)}, ee_pose=np.zeros(7), gripper=0.0))
    with pytest.raises(BadObservation, match="goal_image"):
        p.reset(Task(goal_image=np.zeros((32, 32), np.uint8)))


def test_history_is_spaced_at_the_policy_rate_whatever_the_decision_rate():
    """3 frames 0.1 s apart, as training windows are, whether the caller decides every step or observes between."""
    p = ToyPolicy(ToyPolicy.Config(obs_horizon=3), toy_stats())
    seen = []
    predict = p.predict
    p.predict = lambda history, task: (seen.append([o.stamp for o in history]), predict(history, task))[1]
    p.reset(Task(instruction="push"))
    p.act(obs(stamp=1.0))
    assert seen[-1] == [1.0, 1.0, 1.0]                                  # the episode start pads
    p.observe(obs(stamp=1.1))
    p.act(obs(stamp=1.2))
    assert seen[-1] == pytest.approx([1.0, 1.1, 1.2])
    for t in (1.3, 1.333, 1.366, 1.4, 1.433, 1.466):                   # a 30 Hz camera: the frame nearest each instant
        p.observe(obs(stamp=t))
    p.act(obs(stamp=1.5))
    assert seen[-1] == pytest.approx([1.3, 1.4, 1.5])
    p.act(obs(stamp=1.7))                                               # deciding every 2 steps, fed nothing between
    assert seen[-1] == pytest.approx([1.5, 1.5, 1.7])                   # the newest frame not after each instant
    p.act(obs(stamp=1.65))                                              # a frame from before the newest replaces it
    assert seen[-1] == pytest.approx([1.5, 1.5, 1.65])                  # (1.466 was pruned once 1.7 came)
    assert len(p._history) <= 4                                         # pruned to what a window needs
    with pytest.raises(BadObservation, match="32x32x3"):
        p.observe(obs(size=48))
    p.reset(Task(instruction="push"))
    p.act(obs(stamp=9.0))
    assert seen[-1] == [9.0, 9.0, 9.0]                                  # reset starts a new history


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    p = toy()
    p.save(tmp_path / "ck")
    q = load_policy(tmp_path / "ck")
    assert isinstance(q, ToyPolicy) and q.stats == p.stats
    for pol in (p, q):
        pol.reset(Task(instruction="x"))
    np.testing.assert_allclose(p.act(obs()).positions, q.act(obs()).positions)


def test_checkpoint_failures_are_clear(tmp_path):
    with pytest.raises(UnknownPolicy, match="registered"):
        policy_class("no_such_policy")
    with pytest.raises(CheckpointMismatch, match="config.json and model.safetensors"):
        load_policy(tmp_path)
    path = toy().save(tmp_path / "ck")
    doc = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointMismatch, match="not valid JSON"):
        load_policy(path)
    for change, message in (({"format": 99}, "format"), ({"config": {"bogus": 1}}, "unknown config keys"),
                            ({"config": {"hidden": 8}}, "do not match"), ({"policy": "nope", "module": None}, "unknown policy"),
                            ({"policy": "nope", "module": "no.such.module"}, "cannot import")):
        (path / "config.json").write_text(json.dumps({**doc, **change}))
        with pytest.raises((CheckpointMismatch, UnknownPolicy), match=message):
            load_policy(path)


SHIPPED = sorted(p for p in (Path(__file__).parents[2] / "checkpoints").iterdir() if p.is_dir())


@pytest.mark.parametrize("ckpt", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_checkpoint_loads_and_says_how_it_was_made(ckpt):
    """The README's main job and bench load these; each names its command, data and commit, and the manifest
    file describes it."""
    policy = load_policy(ckpt)
    manifest = json.loads((ckpt / "config.json").read_text())["manifest"]
    assert manifest["command"].startswith("robot-stack train") and manifest["data"] and len(manifest["commit"]) == 40
    assert policy.name == manifest["policy"] and ckpt.name.startswith(policy.name)
    assert f"`{ckpt.name}`" in (ckpt.parent / "MANIFEST.md").read_text()
