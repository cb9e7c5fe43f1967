"""Reward classifier: learns a visible success cue from a store, round-trips its checkpoint, refuses bad input."""
import json

import numpy as np
import pytest
import torch

from robot_stack.data import EpisodeStore
from robot_stack.learner.reward_classifier import (RewardClassifier, RewardClassifierConfig, RewardClassifierError,
                                                   load_labelled_frames, load_reward_classifier, random_shift,
                                                   train_reward_classifier)

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
    base = dict(image_size=SIZE, channels=(16, 32, 64), feature_dim=32, hidden_dim=64, batch_size=32, steps=60,
                lr=1e-3, shift_pad=2, val_fraction=0.3, seed=0)
    return RewardClassifierConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("rc") / "synthetic.zarr")


@pytest.fixture(scope="module")
def trained(store_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("rc_ckpt") / "clf"
    metrics = train_reward_classifier(store_path, out, small_config(), progress=False)
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


def test_trains_to_high_validation_accuracy(trained):
    out, m = trained
    assert m["val_accuracy"] >= 0.95, m
    assert m["val_precision"] >= 0.9 and m["val_recall"] >= 0.9, m
    assert m["val_positives"] == 3 * POSITIVE_ROWS and m["val_negatives"] == 3 * (ROWS - POSITIVE_ROWS)
    assert m["train_positives"] == 7 * POSITIVE_ROWS
    assert m["positive_weight"] == pytest.approx((ROWS - POSITIVE_ROWS) / POSITIVE_ROWS)
    assert (out / "model.safetensors").is_file() and (out / "loss_curve.png").stat().st_size > 1000
    doc = json.loads((out / "config.json").read_text())
    assert doc["format"] == "robot_stack.reward_classifier/1"
    assert doc["config"]["cameras"] == ["front", "wrist"] and doc["metrics"]["val_accuracy"] == m["val_accuracy"]
    assert doc["manifest"]["labels"] == "stream 'reward' == 1.0" and len(doc["manifest"]["val_episodes"]) == 3


def test_save_load_round_trip_gives_identical_predictions(trained, store_path, tmp_path):
    out, _ = trained
    clf = load_reward_classifier(out)
    val_episode = json.loads((out / "config.json").read_text())["manifest"]["val_episodes"][0]
    pos, neg = obs_from_store(store_path, val_episode, ROWS - 1), obs_from_store(store_path, val_episode, 0)
    assert clf.is_success(pos) and not clf.is_success(neg)
    assert clf.predict({f"{c}_rgb": v for c, v in pos.items()}) == clf.predict(pos)   # store stream names work too
    clf.save(tmp_path / "again")
    again = load_reward_classifier(tmp_path / "again" / "config.json")
    assert again.predict(pos) == clf.predict(pos) and again.predict(neg) == clf.predict(neg)
    assert again.metrics == clf.metrics and again.config == clf.config
    batch = {c: torch.from_numpy(np.stack([pos[c], neg[c]])) for c in ("front", "wrist")}
    assert torch.equal(again(batch), clf(batch))


def test_bad_checkpoints_give_clear_errors(trained, tmp_path):
    import shutil

    out, _ = trained
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    (bad / "config.json").write_text('{"format": "robot_stack.reward_classifier/1", "config": {')
    with pytest.raises(RewardClassifierError, match="config.json: corrupt, not valid JSON"):
        load_reward_classifier(bad)
    # weights of a different architecture: shape mismatch names the tensor
    shutil.copy(out / "config.json", bad / "config.json")
    RewardClassifier(small_config(feature_dim=16)).save(tmp_path / "other")
    shutil.copy(tmp_path / "other" / "model.safetensors", bad / "model.safetensors")
    with pytest.raises(RewardClassifierError, match=r"wrong shapes \['encoder\.proj"):
        load_reward_classifier(bad)
    (bad / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(RewardClassifierError, match="model.safetensors: corrupt"):
        load_reward_classifier(bad)
    (bad / "model.safetensors").unlink()
    with pytest.raises(RewardClassifierError, match="missing model.safetensors"):
        load_reward_classifier(bad)
    with pytest.raises(RewardClassifierError, match="no such reward classifier checkpoint"):
        load_reward_classifier(tmp_path / "nowhere")
    doc = json.loads((out / "config.json").read_text())
    doc["config"]["colour"] = 1
    shutil.copy(out / "model.safetensors", bad / "model.safetensors")
    (bad / "config.json").write_text(json.dumps(doc))
    with pytest.raises(RewardClassifierError, match=r"unknown keys \['colour'\]"):
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


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="threshold"):
        RewardClassifierConfig(threshold=1.5)
    with pytest.raises(ValueError, match="unknown keys"):
        RewardClassifierConfig.from_dict({"stepz": 3})
    assert RewardClassifierConfig(cameras=["front"], steps="7").cameras == ("front",)


def test_store_without_the_camera_or_with_other_image_size_is_refused(store_path, tmp_path):
    with pytest.raises(ValueError, match="no image stream 'side_rgb' for camera 'side'"):
        train_reward_classifier(store_path, tmp_path / "x", small_config(cameras=("front", "side")), progress=False)
    with pytest.raises(ValueError, match="set image_size=32"):
        train_reward_classifier(store_path, tmp_path / "x", small_config(image_size=64), progress=False)


def test_cli_dispatches_train_reward_classifier(store_path, tmp_path, capsys):
    from robot_stack.cli import main

    out = tmp_path / "cli_clf"
    rc = main(["train", "reward_classifier", f"data={store_path}", f"out={out}", "steps=3", f"image_size={SIZE}",
               "channels=[8,16]", "feature_dim=16", "hidden_dim=16", "cameras=[front]", "progress=false"])
    assert rc == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["steps"] == 3 and metrics["checkpoint"] == str(out)
    clf = load_reward_classifier(out)
    assert clf.config.cameras == ("front",) and clf.config.channels == (8, 16)
    assert clf.manifest["command"].startswith("robot-stack train reward_classifier data=")
    rc = main(["train", "reward_classifier", f"data={store_path}", f"out={out}", "stepz=3"])
    assert rc == 2 and "unknown keys ['stepz']" in capsys.readouterr().err
    rc = main(["train", "reward_classifier", f"out={out}"])
    assert rc == 2 and "needs data=STORE and out=DIR" in capsys.readouterr().err
