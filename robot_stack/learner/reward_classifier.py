"""Binary reward classifier for the online learner (HIL-SERL style): camera frames -> P(task succeeded).

    robot-stack train-reward data=outputs/data/lift_demos.zarr out=outputs/reward/lift steps=1000
    clf = load_reward_classifier("outputs/reward/lift/checkpoint")
    clf.predict({"front": rgb, "wrist": rgb})    # probability; clf.is_success(obs) thresholds it

or in Python ``train_reward_classifier(reward_config(["data=STORE", "out=DIR", "steps=1000"]))``.

Model: one small conv encoder trained from scratch (shared by the cameras unless ``share_encoder=False``),
per-camera features concatenated, an MLP with LayerNorm, one logit. Labels come from an episode
store: a row is positive iff its ``reward`` stream value is 1.0 (stores written by
``robot-stack sim collect``); a store without that stream labels the last ``positive_last_k``
rows of each successful episode positive. Train and validation frames are split by episode.

Training is the policies' loop (robot_stack.training: AdamW, EMA weights, resume, loss curve) with its run
keys in conf/reward_classifier.yaml; the checkpoint is the policies' format (``model.safetensors`` and
``config.json`` with ``"policy": "reward_classifier"``, the validation metrics in its manifest): no pickle.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from robot_stack.policies.augment import random_shift
from robot_stack.policies.base import FORMAT_VERSION, config_from_dict, read_checkpoint
from robot_stack.policies.errors import CheckpointMismatch
from robot_stack.training import (EMA, fit, git_commit, load_state, load_weights, minibatches, training_device,
                                  write_checkpoint)

NAME = "reward_classifier"


@dataclass
class RewardClassifierConfig:
    """What the classifier is (saved in its checkpoint); run settings (steps, batch_size, ...) are the yaml's."""

    cameras: tuple[str, ...] = ("front", "wrist")   # image streams are f"{camera}_rgb" in the store
    image_size: int = 128                     # frames are image_size x image_size x 3 uint8
    channels: tuple[int, ...] = (32, 64, 128, 256)   # one stride-2 3x3 conv (+GroupNorm, ReLU) per entry
    feature_dim: int = 128                    # per-camera feature after the encoder
    hidden_dim: int = 256                     # MLP head width
    share_encoder: bool = True                # one encoder for every camera (else one per camera)
    threshold: float = 0.5                    # is_success: probability >= threshold
    label_stream: str = "reward"              # row positive iff this stream's value is 1.0
    positive_last_k: int = 5                  # fallback without label_stream: last k rows of successful episodes
    # training
    lr: float = 3e-4
    weight_decay: float = 1e-4
    ema_decay: float = 0.0                    # 0: the checkpoint holds the last weights, not an average
    positive_weight: float | None = None      # BCE weight of positives; None = auto (negatives / positives)
    shift_pad: int = 4                        # random-shift augmentation (DrQ): +-pad pixels, edge replicated

    def __post_init__(self):
        self.cameras, self.channels = tuple(self.cameras), tuple(self.channels)
        checks = [
            (len(self.cameras) > 0 and all(isinstance(c, str) for c in self.cameras)
             and len(set(self.cameras)) == len(self.cameras), "cameras must be distinct names"),
            (self.image_size >= 8, "image_size must be >= 8"),
            (len(self.channels) > 0 and all(type(c) is int and c > 0 for c in self.channels),
             "channels must be positive integers"),
            (self.feature_dim > 0 and self.hidden_dim > 0, "feature_dim and hidden_dim must be positive"),
            (0.0 < self.threshold < 1.0, "threshold must be in (0, 1)"),
            (self.positive_last_k >= 1, "positive_last_k must be >= 1"),
            (self.lr > 0 and self.weight_decay >= 0, "lr must be > 0 and weight_decay >= 0"),
            (0.0 <= self.ema_decay < 1.0, "ema_decay must be in [0, 1)"),
            (self.positive_weight is None or self.positive_weight > 0, "positive_weight must be > 0 or null (auto)"),
            (self.shift_pad >= 0, "shift_pad must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


# ---- model ------------------------------------------------------------------------------------------
def _groups(c: int) -> int:
    return math.gcd(c, 8)


class _Encoder(nn.Module):
    """uint8-free conv stack: (B, 3, S, S) float in [-0.5, 0.5] -> (B, feature_dim)."""

    def __init__(self, config: RewardClassifierConfig):
        super().__init__()
        layers, c_in, s = [], 3, config.image_size
        for c in config.channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(_groups(c), c), nn.ReLU(inplace=True)]
            c_in, s = c, (s + 1) // 2
        self.conv = nn.Sequential(*layers)
        pool = min(4, s)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.proj = nn.Sequential(nn.Flatten(), nn.Linear(c_in * pool * pool, config.feature_dim),
                                  nn.LayerNorm(config.feature_dim), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(self.conv(x)))


class RewardClassifier(nn.Module):
    """Camera frames -> one success logit. Deterministic (no dropout, no batch norm): train/eval modes agree."""

    def __init__(self, config: RewardClassifierConfig | None = None):
        super().__init__()
        self.config = config or RewardClassifierConfig()
        cams = self.config.cameras
        if self.config.share_encoder:
            self.encoder = _Encoder(self.config)
        else:
            self.encoders = nn.ModuleDict({c: _Encoder(self.config) for c in cams})
        d = self.config.feature_dim * len(cams)
        self.head = nn.Sequential(nn.Linear(d, self.config.hidden_dim), nn.LayerNorm(self.config.hidden_dim),
                                  nn.ReLU(inplace=True), nn.Linear(self.config.hidden_dim, self.config.hidden_dim),
                                  nn.LayerNorm(self.config.hidden_dim), nn.ReLU(inplace=True),
                                  nn.Linear(self.config.hidden_dim, 1))
        self.manifest: dict = {}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _expected(self) -> tuple:
        return (self.config.image_size, self.config.image_size, 3)

    def _check_batch(self, images: Mapping[str, torch.Tensor]) -> int:
        if not isinstance(images, Mapping):
            raise ValueError(f"images must be a dict camera -> uint8 tensor (B, H, W, 3), got {type(images).__name__}")
        size, batch = self.config.image_size, None
        for cam in self.config.cameras:
            if cam not in images:
                raise ValueError(f"camera {cam!r} is missing: the reward classifier needs cameras "
                                 f"{list(self.config.cameras)}, got {sorted(images)}")
            x = images[cam]
            if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4 or \
                    tuple(x.shape[1:]) != self._expected():
                got = f"{tuple(x.shape)} {x.dtype}" if hasattr(x, "shape") else type(x).__name__
                raise ValueError(f"camera {cam!r}: expected a uint8 tensor of shape (B, {size}, {size}, 3), got {got}")
            if batch is not None and x.shape[0] != batch:
                raise ValueError(f"camera {cam!r}: batch of {x.shape[0]} frames, other cameras have {batch}")
            batch = x.shape[0]
        return batch

    def forward(self, images: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``{camera: uint8 (B, S, S, 3)}`` -> logits (B,)."""
        batch = self._check_batch(images)
        cams = self.config.cameras
        dev = self.device

        def prep(x):
            return x.to(dev).permute(0, 3, 1, 2).float().div_(255.0).sub_(0.5)

        if self.config.share_encoder:
            feats = self.encoder(torch.cat([prep(images[c]) for c in cams], 0))
            feats = torch.cat(feats.split(batch, 0), 1)
        else:
            feats = torch.cat([self.encoders[c](prep(images[c])) for c in cams], 1)
        return self.head(feats).squeeze(-1)

    def _frame(self, obs: Mapping[str, Any], cam: str) -> torch.Tensor:
        if not isinstance(obs, Mapping):
            raise ValueError(f"obs must be a dict camera -> HxWx3 uint8 image, got {type(obs).__name__}")
        image = obs.get(cam)
        if image is None:
            image = obs.get(f"{cam}_rgb")
        if image is None:
            raise ValueError(f"camera {cam!r} is missing from the observation: the reward classifier needs "
                             f"cameras {list(self.config.cameras)} (keys 'name' or 'name_rgb'), got {sorted(obs)}")
        if isinstance(image, torch.Tensor):
            image = image.detach().cpu().numpy()
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.shape != self._expected():
            s = self.config.image_size
            raise ValueError(f"camera {cam!r}: expected a {s}x{s}x3 uint8 image (shape {self._expected()}), "
                             f"got shape {image.shape} {image.dtype}")
        return torch.from_numpy(np.ascontiguousarray(image))[None]

    @torch.no_grad()
    def predict(self, obs: Mapping[str, Any]) -> float:
        """One observation ``{camera (or camera_rgb): HxWx3 uint8}`` -> success probability."""
        frames = {c: self._frame(obs, c) for c in self.config.cameras}
        return float(torch.sigmoid(self.forward(frames))[0])

    def is_success(self, obs: Mapping[str, Any]) -> bool:
        return self.predict(obs) >= self.config.threshold

    @property
    def metrics(self) -> dict:
        """The validation metrics of the run that wrote this checkpoint ({} for an untrained model)."""
        return self.manifest.get("metrics", {})

    def save(self, path: str | Path, manifest: dict | None = None) -> Path:
        """A checkpoint directory in the policies' format (model.safetensors + config.json)."""
        if manifest is not None:
            self.manifest = dict(manifest)
        return write_checkpoint(path, self, {"format": FORMAT_VERSION, "policy": NAME, "config": asdict(self.config),
                                             "stats": {}, "manifest": self.manifest})


def reward_fn(model: RewardClassifier):
    """`obs -> (reward, success)` for the actor's env: 1.0 and the end of the episode when the
    classifier's probability reaches its threshold (HIL-SERL's sparse learned reward)."""
    def fn(obs: Mapping[str, Any]) -> tuple[float, bool]:
        success = model.is_success(obs)
        return float(success), success
    return fn


def load_reward_classifier(path: str | Path, device: str = "cpu") -> RewardClassifier:
    """A checkpoint directory -> the classifier, in eval mode; CheckpointMismatch names what is wrong."""
    path = Path(path)
    doc = read_checkpoint(path)
    if doc.get("policy") != NAME:
        raise CheckpointMismatch(f"{path}: holds a {doc.get('policy')!r} policy, not a reward classifier")
    model = RewardClassifier(config_from_dict(RewardClassifierConfig, doc.get("config"), str(path / "config.json")))
    load_weights(model, path / "model.safetensors", CheckpointMismatch)
    model.manifest = doc.get("manifest") or {}
    return model.to(device).eval()


# ---- data -------------------------------------------------------------------------------------------
@dataclass
class LabelledFrames:
    images: dict          # camera -> (N, S, S, 3) uint8
    labels: np.ndarray    # (N,) float32, 1.0 = success
    episodes: np.ndarray  # (N,) int, the episode of each row

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def positives(self) -> int:
        return int(self.labels.sum())

    @property
    def negatives(self) -> int:
        return len(self) - self.positives


def label_source(store, config: RewardClassifierConfig) -> str:
    if config.label_stream in store.streams:
        return f"stream {config.label_stream!r} == 1.0"
    return f"last {config.positive_last_k} rows of episodes with success=True"


def check_store(store, config: RewardClassifierConfig) -> None:
    """Every camera stream exists with the configured image shape; a clear ValueError if not."""
    s = config.image_size
    for cam in config.cameras:
        name = f"{cam}_rgb"
        spec = store.streams.get(name)
        if spec is None:
            raise ValueError(f"{store.path}: no image stream {name!r} for camera {cam!r} "
                             f"(streams: {sorted(store.streams)})")
        if tuple(spec.shape) != (s, s, 3) or np.dtype(spec.dtype) != np.uint8:
            raise ValueError(f"{store.path}: stream {name!r} holds {tuple(spec.shape)} {np.dtype(spec.dtype)} "
                             f"frames, the classifier is configured for ({s}, {s}, 3) uint8 "
                             f"(set image_size={spec.shape[0]} if the frames are square)")


def _aligned(n: int, ref_stamps: np.ndarray, stamps: np.ndarray) -> np.ndarray | slice:
    """Rows of a stream for each reference row: row-for-row when lengths agree, else latest-before by stamp."""
    from robot_stack.data import align_to_clock

    if len(stamps) == n:
        return slice(None)
    if len(stamps) == 0:
        raise ValueError("stream has no rows in this episode")
    return align_to_clock(ref_stamps, stamps)


def load_labelled_frames(store, episodes, config: RewardClassifierConfig) -> LabelledFrames:
    """Frames of ``episodes`` with their success labels (see the module docstring for the rule)."""
    s = config.image_size
    cams = config.cameras
    images = {c: [] for c in cams}
    labels, owner = [], []
    use_stream = config.label_stream in store.streams
    for k in episodes:
        ref = store.read_stream(k, f"{cams[0]}_rgb", parts=("data", "capture_stamp"))
        n, ref_stamps = ref["data"].shape[0], ref["capture_stamp"]
        if n == 0:
            continue
        images[cams[0]].append(ref["data"])
        for cam in cams[1:]:
            other = store.read_stream(k, f"{cam}_rgb", parts=("data", "capture_stamp"))
            try:
                images[cam].append(other["data"][_aligned(n, ref_stamps, other["capture_stamp"])])
            except ValueError as exc:
                raise ValueError(f"{store.path}: episode {k}, camera {cam!r}: {exc}") from None
        if use_stream:
            r = store.read_stream(k, config.label_stream, parts=("data", "capture_stamp"))
            values = np.asarray(r["data"], dtype=np.float64).reshape(len(r["data"]), -1)[:, 0]
            try:
                values = values[_aligned(n, ref_stamps, r["capture_stamp"])]
            except ValueError as exc:
                raise ValueError(f"{store.path}: episode {k}, stream {config.label_stream!r}: {exc}") from None
            y = (values == 1.0).astype(np.float32)
        else:
            y = np.zeros(n, np.float32)
            if store.metadata(k).get("success") is True:
                y[-config.positive_last_k:] = 1.0
        labels.append(y)
        owner.append(np.full(n, k, np.int64))
    if not labels:
        return LabelledFrames({c: np.zeros((0, s, s, 3), np.uint8) for c in cams}, np.zeros(0, np.float32),
                              np.zeros(0, np.int64))
    return LabelledFrames({c: np.concatenate(v) for c, v in images.items()}, np.concatenate(labels),
                          np.concatenate(owner))


# ---- training ---------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model: RewardClassifier, frames: LabelledFrames, pos_weight: float, batch_size: int = 128) -> dict:
    """Loss, accuracy, precision and recall at the model's threshold over ``frames`` (None where undefined)."""
    n = len(frames)
    out = {"loss": None, "accuracy": None, "precision": None, "recall": None,
           "positives": frames.positives, "negatives": frames.negatives, "tp": 0, "fp": 0, "tn": 0, "fn": 0}
    if n == 0:
        return out
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([pos_weight], device=model.device), reduction="sum")
    total, probs = 0.0, []
    for i in range(0, n, batch_size):
        batch = {c: torch.from_numpy(frames.images[c][i:i + batch_size]) for c in model.config.cameras}
        y = torch.from_numpy(frames.labels[i:i + batch_size]).to(model.device)
        logits = model(batch)
        total += float(loss_fn(logits, y))
        probs.append(torch.sigmoid(logits).cpu().numpy())
    p = np.concatenate(probs)
    pred, y = p >= model.config.threshold, frames.labels >= 0.5
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    tn, fn = int((~pred & ~y).sum()), int((~pred & y).sum())
    out.update(loss=total / n, accuracy=(tp + tn) / n, precision=tp / (tp + fp) if tp + fp else None,
               recall=tp / (tp + fn) if tp + fn else None, tp=tp, fp=fp, tn=tn, fn=fn)
    return out


# ---- command line and training ----------------------------------------------------------------------
def reward_config(overrides: list[str] | tuple[str, ...] = ()):
    """conf/reward_classifier.yaml with KEY=VALUE overrides; a RewardClassifierConfig field lands under
    `classifier`, validated here (unknown keys, wrong types, bad values) before any data loads."""
    from robot_stack.config import load_config

    names = {f.name for f in fields(RewardClassifierConfig)}
    cfg = load_config(NAME, [f"++classifier.{item}" if item.partition("=")[0] in names else item
                             for item in overrides])
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ValueError(f"train-reward needs {' and '.join(f'{k}=...' for k in missing)} "
                         f"(classifier keys: {', '.join(sorted(names))})")
    config = config_from_dict(RewardClassifierConfig, OmegaConf.to_container(cfg.classifier, resolve=True),
                              "reward classifier")
    doc = OmegaConf.to_container(cfg, resolve=False)
    doc["classifier"] = asdict(config)
    return OmegaConf.create(doc)


def train_reward_classifier(cfg, argv: list[str] | None = None) -> dict:
    """Train on the store `cfg.data` (a `reward_config`); the checkpoint is `cfg.out`/checkpoint.

    Returns the metrics (also in the checkpoint's manifest): validation accuracy/precision/recall at the
    threshold, positive/negative frame counts of both splits, losses, wall time."""
    from robot_stack.data import EpisodeStore, split_episodes

    t0 = time.perf_counter()
    config = config_from_dict(RewardClassifierConfig, OmegaConf.to_container(cfg.classifier, resolve=True),
                              "reward classifier")
    torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(cfg.seed)
    with EpisodeStore.open(cfg.data) as store:
        if store.num_episodes == 0:
            raise ValueError(f"{store.path}: the store has no episodes")
        check_store(store, config)
        labels_from = label_source(store, config)
        train_eps, val_eps = split_episodes(store.num_episodes, cfg.val_fraction, cfg.seed)
        train = load_labelled_frames(store, train_eps, config)
        val = load_labelled_frames(store, val_eps, config)
    if train.positives == 0 or train.negatives == 0:
        raise ValueError(f"{cfg.data}: the training episodes hold {train.positives} positive and "
                         f"{train.negatives} negative frames (labels: {labels_from}); both kinds are needed")
    pos_weight = float(config.positive_weight or train.negatives / train.positives)
    load_s = time.perf_counter() - t0

    device = training_device(cfg.device)
    model = RewardClassifier(config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    ema = EMA(model, config.ema_decay)
    out = Path(cfg.out)
    first, history = load_state(out, model, ema, opt) if cfg.resume else (0, [])
    manifest = {"command": "robot-stack train-reward " + " ".join(argv or []), "data": str(cfg.data),
                "labels": labels_from, "train_episodes": train_eps, "val_episodes": val_eps, "commit": git_commit(),
                "config": OmegaConf.to_container(cfg, resolve=True)}
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([pos_weight], device=device))
    x, y = {c: torch.from_numpy(train.images[c]) for c in config.cameras}, torch.from_numpy(train.labels)
    rng = np.random.default_rng(cfg.seed + first)
    gen = torch.Generator().manual_seed(cfg.seed + first)
    batches = minibatches(len(train), cfg.batch_size, rng)

    def loss():
        idx = torch.from_numpy(next(batches))
        images = {c: random_shift(x[c][idx], config.shift_pad, gen) for c in config.cameras}
        return loss_fn(model(images), y[idx].to(device)), {}

    def validate(m):
        v = evaluate(m, val, pos_weight, 2 * cfg.batch_size)
        return {f"val_{k}": v[k] for k in ("loss", "accuracy", "precision", "recall")}

    t_train = time.perf_counter()
    step, history = fit(cfg, model, ema, opt, loss, lr=lambda _: config.lr, start=(first, history),
                        validate=validate if len(val) else None,
                        save=lambda path, s: ema.model.save(path, {**manifest, "step": s}),
                        title=f"reward classifier on {Path(cfg.data).name}", desc=f"train {NAME}")
    train_s = time.perf_counter() - t_train
    v = evaluate(ema.model, val, pos_weight, 2 * cfg.batch_size)
    metrics = {
        "val_accuracy": v["accuracy"], "val_precision": v["precision"], "val_recall": v["recall"],
        "val_loss": v["loss"], "val_positives": v["positives"], "val_negatives": v["negatives"],
        "val_confusion": {k: v[k] for k in ("tp", "fp", "tn", "fn")},
        "train_positives": train.positives, "train_negatives": train.negatives,
        "train_loss_final": history[-1]["loss"] if history else None,
        "positive_weight": pos_weight, "threshold": config.threshold, "steps": step,
        "train_episodes": len(train_eps), "val_episodes": len(val_eps),
        "load_s": round(load_s, 2), "train_s": round(train_s, 2),
        "s_per_step": round(train_s / max(1, step - first), 4), "wall_s": round(time.perf_counter() - t0, 2),
    }
    if not len(val):
        metrics["note"] = "no validation episodes (val_fraction=0 or a single episode): validation metrics are null"
    # the last checkpoint again, now with the final validation metrics the learner's user reads
    ema.model.save(out / "checkpoint", {**manifest, "step": step, "metrics": metrics})
    return {**metrics, "checkpoint": str(out / "checkpoint"), "loss_curve": str(out / "loss.png")}


def main(overrides: list[str]) -> int:
    """``robot-stack train-reward data=STORE out=DIR [KEY=VALUE ...]``: train, print the metrics as JSON."""
    print(json.dumps(train_reward_classifier(reward_config(overrides), argv=list(overrides))))
    return 0
