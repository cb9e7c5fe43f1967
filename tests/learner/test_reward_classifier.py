"""Reward classifier: learns a visible success cue from a store in the shared training loop (cadence, resume),
round-trips its checkpoint in the policies' format, refuses bad input and bad configuration."""
import json

import numpy as np
import pytest
import torch

from robot_stack.data import EpisodeStore
from robot_stack.learner.reward_classifier import (RewardClassifier, RewardClassifierConfig, load_labelled_frames,
                                                   load_reward_classifier, random_shift, reward_config,
                                                   train_reward_classifier)
from robot_stack.policies.base import read_checkpoint
from robot_stack.policies.errors import CheckpointMismatch

torch.set_num_threads(1)
SIZE = 32
EPISODES, ROWS, POSITIVE_ROWS = 10, 12, 4


def frame(rng, success: bool, cam: str) -> np.ndarray:
    """Dim noise; on success a bright square sits somewhere in the upper half of the front camera
    (and a smaller one in the wrist camera)."""
    img = rng.integers(0, 60, (SIZE, SIZE, 3), dtype=np.uint8)
    if success:
        side = 10 if cam == "front" else 6
        y, x = rng.integers(2, SIZE // 2 - side + 8), rng.integers(2, SIZE - side - 2)
        img[y:y + side, x:x + side] = 250
    return img


def make_store(path, with_reward: bool = True) -> str:
    rng = np.random.default_rng(0)
    store = EpisodeStore.create(path)
    for k in range(EPISODES):
        writer = store.begin_episode(task="synthetic", seed=k)
        for t in range(ROWS):
            success = t >= ROWS - POSITIVE_ROWS
            stamp = 0.1 * t
            for cam in ("front", "wrist"):
                writer.append(f"{cam}_rgb", frame(rng, success, cam), stamp, stamp)
            if with_reward:
                writer.append("reward", np.array(float(success)), stamp, stamp)
        writer.commit(success=True)
    store.close()
    return str(path)


def small_config(**kw) -> RewardClassifierConfig:
    base = dict(image_size=SIZE, channels=(16, 32, 64), feature_dim=32, hidden_dim=64, lr=1e-3, shift_pad=2)
    return RewardClassifierConfig(**{**base, **kw})


# the same classifier as small_config(), as command-line overrides, with the run settings
SMALL = [f"image_size={SIZE}", "channels=[16,32,64]", "feature_dim=32", "hidden_dim=64", "lr=1e-3", "shift_pad=2",
         "batch_size=32", "steps=60", "val_fraction=0.3", "val_every=30", "progress=false"]
TINY = [f"image_size={SIZE}", "channels=[8,16]", "feature_dim=16", "hidden_dim=16", "cameras=[front]",
        "batch_size=16", "progress=false"]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("rc") / "synthetic.zarr")


@pytest.fixture(scope="module")
def trained(store_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("rc_run")
    metrics = train_reward_classifier(reward_config([f"data={store_path}", f"out={out}", *SMALL]))
    return out, metrics


def obs_from_store(store_path, episode: int, row: int) -> dict:
    store = EpisodeStore.open(store_path)
    try:
        return {cam: store.read_stream(episode, f"{cam}_rgb", slice(row, row + 1), parts=("data",))["data"][0]
                for cam in ("front", "wrist")}
    finally:
        store.close()


def test_labels_come_from_the_reward_stream_or_the_last_rows_of_successful_episodes(store_path, tmp_path):
    store = EpisodeStore.open(store_path)
    frames = load_labelled_frames(store, [0, 1], small_config())
    store.close()
    assert len(frames) == 2 * ROWS and frames.positives == 2 * POSITIVE_ROWS
    assert np.array_equal(frames.labels[:ROWS], np.r_[np.zeros(ROWS - POSITIVE_ROWS), np.ones(POSITIVE_ROWS)])
    assert frames.images["front"].shape == (2 * ROWS, SIZE, SIZE, 3)
    no_reward = EpisodeStore.open(make_store(tmp_path / "nr.zarr", with_reward=False))
    frames = load_labelled_frames(no_reward, [0], small_config(positive_last_k=3))
    no_reward.close()
    assert frames.labels.tolist() == [0.0] * (ROWS - 3) + [1.0] * 3


def test_random_shift_moves_frames_by_at_most_pad():
    n = 32                                   # P(no frame moves) = 25**-32: seeded, so deterministic anyway
    x = torch.zeros(n, 16, 16, 3, dtype=torch.uint8)
    x[:, 8, 8] = 255
    y = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == torch.uint8
    moved = 0
    for b in range(n):
        r, c = np.argwhere(y[b, :, :, 0].numpy() == 255)[0]
        assert abs(r - 8) <= 2 and abs(c - 8) <= 2
        moved += (r, c) != (8, 8)
    assert moved > 0                         # not the identity


def test_trains_to_high_validation_accuracy_with_the_policies_run_layout(trained):
    out, m = trained
    assert m["val_accuracy"] >= 0.95, m
    assert m["val_precision"] >= 0.9 and m["val_recall"] >= 0.9, m
    assert m["val_positives"] == 3 * POSITIVE_ROWS and m["val_negatives"] == 3 * (ROWS - POSITIVE_ROWS)
    assert m["train_positives"] == 7 * POSITIVE_ROWS and m["steps"] == 60
    assert m["positive_weight"] == pytest.approx((ROWS - POSITIVE_ROWS) / POSITIVE_ROWS)
    assert m["checkpoint"] == str(out / "checkpoint") and (out / "loss.png").stat().st_size > 1000
    assert (out / "train_state.safetensors").is_file() and (out / "checkpoint" / "model.safetensors").is_file()
    # the shared loop's cadence: a point every log_every=10 steps, validation metrics every val_every=30
    history = json.loads((out / "history.json").read_text())
    assert [h["step"] for h in history] == [10, 20, 30, 40, 50, 60]
    assert [h["step"] for h in history if "val_accuracy" in h] == [30, 60] and history[0]["lr"] == 1e-3
    doc = read_checkpoint(out / "checkpoint")          # the policies' checkpoint format, read by their reader
    assert doc["policy"] == "reward_classifier" and doc["config"]["cameras"] == ["front", "wrist"]
    assert doc["manifest"]["metrics"]["val_accuracy"] == m["val_accuracy"] and doc["manifest"]["step"] == 60
    assert doc["manifest"]["labels"] == "stream 'reward' == 1.0" and len(doc["manifest"]["val_episodes"]) == 3
    assert doc["manifest"]["config"]["classifier"]["lr"] == 1e-3


def test_save_load_round_trip_gives_identical_predictions(trained, store_path, tmp_path):
    out, _ = trained
    clf = load_reward_classifier(out / "checkpoint")
    val_episode = clf.manifest["val_episodes"][0]
    pos, neg = obs_from_store(store_path, val_episode, ROWS - 1), obs_from_store(store_path, val_episode, 0)
    assert clf.is_success(pos) and not clf.is_success(neg)
    assert clf.predict({f"{c}_rgb": v for c, v in pos.items()}) == clf.predict(pos)   # store stream names work too
    clf.save(tmp_path / "again")
    again = load_reward_classifier(tmp_path / "again")
    assert again.predict(pos) == clf.predict(pos) and again.predict(neg) == clf.predict(neg)
    assert again.metrics == clf.metrics and again.metrics["val_accuracy"] >= 0.95 and again.config == clf.config
    batch = {c: torch.from_numpy(np.stack([pos[c], neg[c]])) for c in ("front", "wrist")}
    assert torch.equal(again(batch), clf(batch))


def test_bad_checkpoints_give_clear_errors(trained, tmp_path):
    import shutil

    out = trained[0] / "checkpoint"
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    (bad / "config.json").write_text('{"format": 1, "policy": "reward_classifier", "config": {')
    with pytest.raises(CheckpointMismatch, match="config.json: not valid JSON"):
        load_reward_classifier(bad)
    # weights of a different architecture: shape mismatch names the tensor
    shutil.copy(out / "config.json", bad / "config.json")
    RewardClassifier(small_config(feature_dim=16)).save(tmp_path / "other")
    shutil.copy(tmp_path / "other" / "model.safetensors", bad / "model.safetensors")
    with pytest.raises(CheckpointMismatch, match=r"wrong shapes \['encoder\.proj"):
        load_reward_classifier(bad)
    (bad / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointMismatch, match="model.safetensors: unreadable weights"):
        load_reward_classifier(bad)
    (bad / "model.safetensors").unlink()
    with pytest.raises(CheckpointMismatch, match="a checkpoint is a directory with config.json and model.safetensors"):
        load_reward_classifier(bad)
    doc = json.loads((out / "config.json").read_text())
    shutil.copy(out / "model.safetensors", bad / "model.safetensors")
    (bad / "config.json").write_text(json.dumps({**doc, "config": {**doc["config"], "colour": 1}}))
    with pytest.raises(CheckpointMismatch, match=r"unknown config keys \['colour'\]"):
        load_reward_classifier(bad)
    (bad / "config.json").write_text(json.dumps({**doc, "policy": "beso"}))      # a policy is not a classifier
    with pytest.raises(CheckpointMismatch, match="'beso' policy, not a reward classifier"):
        load_reward_classifier(bad)


def test_predict_refuses_missing_camera_and_wrong_images():
    clf = RewardClassifier(small_config())
    good = np.zeros((SIZE, SIZE, 3), np.uint8)
    with pytest.raises(ValueError, match="camera 'wrist' is missing"):
        clf.predict({"front": good})
    with pytest.raises(ValueError, match=r"camera 'front': expected a 32x32x3 uint8 image .*got shape \(64, 64, 3\)"):
        clf.predict({"front": np.zeros((64, 64, 3), np.uint8), "wrist": good})
    with pytest.raises(ValueError, match=r"camera 'wrist': expected .*float32"):
        clf.predict({"front": good, "wrist": good.astype(np.float32)})
    with pytest.raises(ValueError, match=r"camera 'front': expected a uint8 tensor of shape \(B, 32, 32, 3\)"):
        clf({"front": torch.zeros(2, SIZE, SIZE), "wrist": torch.zeros(2, SIZE, SIZE, 3, dtype=torch.uint8)})
    assert 0.0 <= clf.predict({"front": good, "wrist": good}) <= 1.0


def test_config_is_validated_before_any_data_loads():
    with pytest.raises(ValueError, match="threshold"):
        RewardClassifierConfig(threshold=1.5)
    with pytest.raises(CheckpointMismatch, match=r"reward classifier: threshold must be in \(0, 1\)"):
        reward_config(["data=nowhere.zarr", "out=x", "threshold=1.5"])
    with pytest.raises(CheckpointMismatch, match="image_size = 'big' is not a int"):
        reward_config(["data=nowhere.zarr", "out=x", "image_size=big"])
    with pytest.raises(CheckpointMismatch, match="channels must be positive integers"):
        reward_config(["data=nowhere.zarr", "out=x", "channels=[8,x]"])
    with pytest.raises(ValueError, match="stepz"):
        reward_config(["data=nowhere.zarr", "out=x", "stepz=3"])
    with pytest.raises(ValueError, match=r"train-reward needs data=\.\.\. and out=\.\.\."):
        reward_config([])
    cfg = reward_config(["data=nowhere.zarr", "out=x", "cameras=[front]", "steps=7", "positive_weight=2"])
    assert cfg.steps == 7 and list(cfg.classifier.cameras) == ["front"] and cfg.classifier.positive_weight == 2
    assert cfg.classifier.shift_pad == RewardClassifierConfig().shift_pad          # defaults from the dataclass


def test_store_without_the_camera_or_with_other_image_size_is_refused(store_path, tmp_path):
    run = [f"data={store_path}", f"out={tmp_path / 'x'}", *SMALL]
    with pytest.raises(ValueError, match="no image stream 'side_rgb' for camera 'side'"):
        train_reward_classifier(reward_config([*run, "cameras=[front,side]"]))
    with pytest.raises(ValueError, match="set image_size=32"):
        train_reward_classifier(reward_config([*run, "image_size=64"]))


def test_a_run_resumes_where_it_stopped(store_path, tmp_path):
    run = [f"data={store_path}", f"out={tmp_path / 'run'}", *TINY, "log_every=5", "val_every=5"]
    first = train_reward_classifier(reward_config([*run, "steps=10"]))
    state = json.loads((tmp_path / "run" / "train_state.json").read_text())
    assert first["steps"] == 10 and state["step"] == 10
    again = train_reward_classifier(reward_config([*run, "steps=20"]))
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert again["steps"] == 20 and [h["step"] for h in history] == [5, 10, 15, 20]    # continued, nothing repeated
    assert load_reward_classifier(tmp_path / "run" / "checkpoint").manifest["step"] == 20


def test_cli_dispatches_train_reward(store_path, tmp_path, capsys):
    from robot_stack.cli import main

    out = tmp_path / "cli_clf"
    rc = main(["train-reward", f"data={store_path}", f"out={out}", "steps=3", *TINY])
    assert rc == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["steps"] == 3 and metrics["checkpoint"] == str(out / "checkpoint")
    clf = load_reward_classifier(out / "checkpoint")
    assert clf.config.cameras == ("front",) and clf.config.channels == (8, 16)
    assert clf.manifest["command"].startswith("robot-stack train-reward data=")
    rc = main(["train-reward", f"data={store_path}", f"out={out}", "stepz=3"])
    assert rc == 2 and "stepz" in capsys.readouterr().err
    rc = main(["train-reward", f"out={out}"])
    assert rc == 2 and "train-reward needs data=..." in capsys.readouterr().err
