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
    assert Task(start_image=img).provides() == {"none"}                  # a start image alone is not a goal
    assert Task(instruction="").provides() == {"none"}                   # nor is empty text
    assert Task(instruction="a", goal_image=img).provides() == {"none", "goal_image", "instruction"}
    with pytest.raises(TypeError, match="no field 'doodle'"):            # fields come from registered kinds only
        Task(doodle=img)


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
                            ({"config": {"hidden": 8}}, "do not match"), ({"policy": "nope"}, "unknown policy"),
                            ({"config": {"image_size": "many"}}, "image_size = 'many' is not a int"),
                            ({"config": {"execute_steps": 0}}, "execute_steps must be at least 1"),
                            ({"extra": 1}, "unknown keys"), ({"stats": [1]}, "stats must be a mapping")):
        (path / "config.json").write_text(json.dumps({**doc, **change}))
        with pytest.raises((CheckpointMismatch, UnknownPolicy), match=message) as raised:
            load_policy(path)
        if isinstance(raised.value, CheckpointMismatch):
            assert str(raised.value).startswith(str(path)), raised.value       # the error names the checkpoint


def test_a_checkpoint_never_imports_code(tmp_path):
    """The method is looked up among installed ones; a `module` key (written by older builds) is never imported."""
    import sys
    path = toy().save(tmp_path / "ck")
    doc = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**doc, "policy": "evil", "module": "tests.policies.evil_module"}))
    with pytest.raises(UnknownPolicy, match="unknown policy 'evil'"):
        load_policy(path)
    assert "tests.policies.evil_module" not in sys.modules


def test_truncated_weights_are_a_clear_error(tmp_path):
    path = toy().save(tmp_path / "ck")
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointMismatch, match="unreadable weights"):
        load_policy(path)


def test_deployment_settings_travel_in_the_checkpoint_and_can_be_changed(tmp_path):
    from robot_stack.policies.base import set_deploy
    path = toy().save(tmp_path / "ck")
    assert load_policy(path).deploy == {"execute_steps": 1, "chunk_blend": 0.0}
    assert set_deploy(path, {"execute_steps": 2, "chunk_blend": 0.3}) == {"execute_steps": 2, "chunk_blend": 0.3}
    assert load_policy(path).deploy == {"execute_steps": 2, "chunk_blend": 0.3}
    with pytest.raises(CheckpointMismatch, match="cannot be changed after training"):
        set_deploy(path, {"hidden": 8})                          # an architecture key would break the weights
    with pytest.raises(CheckpointMismatch, match="chunk_blend must be in"):
        set_deploy(path, {"chunk_blend": 1.5})
    assert load_policy(path).deploy["chunk_blend"] == 0.3        # a refused change leaves the file as it was


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
