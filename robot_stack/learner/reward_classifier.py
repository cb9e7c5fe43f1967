"""Binary reward classifier for the online learner (HIL-SERL style): camera frames -> P(task succeeded).

    clf = train_reward_classifier("outputs/data/lift_demos.zarr", "outputs/reward/lift",
                                  RewardClassifierConfig(steps=1000))          # -> validation metrics
    clf = load_reward_classifier("outputs/reward/lift")
    clf.predict({"front": rgb, "wrist": rgb})    # probability; clf.is_success(obs) thresholds it

or from the shell: ``robot-stack train reward_classifier data=STORE out=DIR [steps=N] [cameras=[front]] ...``.

Model: one small conv encoder trained from scratch (shared by the cameras unless ``share_encoder=False``),
per-camera features concatenated, an MLP with LayerNorm, one logit. Labels come from an episode
store: a row is positive iff its ``reward`` stream value is 1.0 (stores written by
``robot-stack sim collect``); a store without that stream labels the last ``positive_last_k``
rows of each successful episode positive. Train and validation frames are split by episode.
Checkpoints are a directory with ``model.safetensors`` and ``config.json`` (no pickle anywhere).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from robot_stack.policies.augment import random_shift
from robot_stack.policies.train import git_commit

FORMAT = "robot_stack.reward_classifier/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
LOSS_CURVE_FILE = "loss_curve.png"


class RewardClassifierError(ValueError):
    """A checkpoint or data set the classifier cannot use; the message names the file and what was wrong."""


@dataclass
class RewardClassifierConfig:
    cameras: tuple = ("front", "wrist")       # image streams are f"{camera}_rgb" in the store
    image_size: int = 128                     # frames are image_size x image_size x 3 uint8
    channels: tuple = (32, 64, 128, 256)      # one stride-2 3x3 conv (+GroupNorm, ReLU) per entry
    feature_dim: int = 128                    # per-camera feature after the encoder
    hidden_dim: int = 256                     # MLP head width
    share_encoder: bool = True                # one encoder for every camera (else one per camera)
    lr: float = 3e-4
    weight_decay: float = 1e-4
    batch_size: int = 64
    steps: int = 1000
    threshold: float = 0.5                    # is_success: probability >= threshold
    shift_pad: int = 4                        # random-shift augmentation (DrQ): +-pad pixels, edge replicated
    val_fraction: float = 0.2                 # episodes held out for validation
    seed: int = 0
    positive_weight: float | None = None      # BCE weight of positives; None = auto (negatives / positives)
    label_stream: str = "reward"              # row positive iff this stream's value is 1.0
    positive_last_k: int = 5                  # fallback without label_stream: last k rows of successful episodes
    eval_every: int = 0                       # validation-loss points on the curve; 0 = about 10 per run
    threads: int = 1                          # torch CPU threads
    device: str = "cpu"

    def __post_init__(self):
        if isinstance(self.cameras, str):
            self.cameras = tuple(c.strip() for c in self.cameras.split(",") if c.strip())
        self.cameras = tuple(str(c) for c in self.cameras)
        if isinstance(self.channels, (int, str)):
            self.channels = (self.channels,) if isinstance(self.channels, int) else \
                tuple(c for c in self.channels.split(",") if c.strip())
        try:
            self.channels = tuple(int(c) for c in self.channels)
            for f in fields(self):
                value = getattr(self, f.name)
                if f.name == "positive_weight" and value is None:
                    continue
                if f.type in ("int", "float") or f.name == "positive_weight":
                    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                        raise ValueError(f"{f.name}={value!r} is not a number")
                    cast = float(value) if f.type != "int" else int(value)
                    if f.type == "int" and cast != float(value):
                        raise ValueError(f"{f.name}={value!r} is not an integer")
                    setattr(self, f.name, cast)
                elif f.type == "bool" and not isinstance(value, bool):
                    raise ValueError(f"{f.name}={value!r} is not true/false")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"reward classifier config: {exc}") from None
        checks = [
            (len(self.cameras) > 0 and len(set(self.cameras)) == len(self.cameras), "cameras must be distinct names"),
            (self.image_size >= 8, "image_size must be >= 8"),
            (len(self.channels) > 0 and all(c > 0 for c in self.channels), "channels must be positive"),
            (self.feature_dim > 0 and self.hidden_dim > 0, "feature_dim and hidden_dim must be positive"),
            (self.lr > 0 and self.weight_decay >= 0, "lr must be > 0 and weight_decay >= 0"),
            (self.batch_size >= 1 and self.steps >= 1, "batch_size and steps must be >= 1"),
            (0.0 < self.threshold < 1.0, "threshold must be in (0, 1)"),
            (self.shift_pad >= 0, "shift_pad must be >= 0"),
            (0.0 <= self.val_fraction < 1.0, "val_fraction must be in [0, 1)"),
            (self.positive_weight is None or self.positive_weight > 0, "positive_weight must be > 0 or null (auto)"),
            (self.positive_last_k >= 1, "positive_last_k must be >= 1"),
            (self.eval_every >= 0 and self.threads >= 1, "eval_every must be >= 0 and threads >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"reward classifier config: {message}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RewardClassifierConfig":
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"reward classifier config: unknown keys {unknown}; known keys: {', '.join(known)}")
        return cls(**dict(d))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cameras"], d["channels"] = list(self.cameras), list(self.channels)
        return d


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
        self.metrics: dict = {}
        self.manifest: dict = {}

    @property
    def threshold(self) -> float:
        return self.config.threshold

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

    # ---- checkpoints -----------------------------------------------------------------------------
    def save(self, path: str | Path, metrics: dict | None = None, manifest: dict | None = None) -> Path:
        """Write ``model.safetensors`` and ``config.json`` into the directory ``path`` (each atomically)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if metrics is not None:
            self.metrics = dict(metrics)
        if manifest is not None:
            self.manifest = dict(manifest)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        tmp = path / (WEIGHTS_FILE + ".tmp")
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
        os.replace(tmp, path / WEIGHTS_FILE)
        doc = {"format": FORMAT, "config": self.config.to_dict(), "metrics": self.metrics, "manifest": self.manifest}
        tmp = path / (CONFIG_FILE + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=_json_default))
        os.replace(tmp, path / CONFIG_FILE)
        return path


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, tuple, set)):
        return list(np.asarray(list(value) if isinstance(value, set) else value).tolist())
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def reward_fn(model: RewardClassifier):
    """`obs -> (reward, success)` for the actor's env: 1.0 and the end of the episode when the
    classifier's probability reaches its threshold (HIL-SERL's sparse learned reward)."""
    def fn(obs: Mapping[str, Any]) -> tuple[float, bool]:
        success = model.is_success(obs)
        return float(success), success
    return fn


def load_reward_classifier(path: str | Path, device: str = "cpu") -> RewardClassifier:
    """A checkpoint directory (or its config.json / model.safetensors) -> the classifier, in eval mode."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_file() and path.name in (CONFIG_FILE, WEIGHTS_FILE):
        path = path.parent
    if not path.is_dir():
        raise RewardClassifierError(f"{path}: no such reward classifier checkpoint (a directory with "
                                    f"{CONFIG_FILE} and {WEIGHTS_FILE})")
    cfg_file, weights = path / CONFIG_FILE, path / WEIGHTS_FILE
    missing = [f.name for f in (cfg_file, weights) if not f.is_file()]
    if missing:
        raise RewardClassifierError(f"{path}: checkpoint is missing {' and '.join(missing)} "
                                    f"(a checkpoint is a directory with {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        doc = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RewardClassifierError(f"{cfg_file}: corrupt, not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise RewardClassifierError(f"{cfg_file}: not a reward classifier checkpoint (format {found!r}, "
                                    f"expected {FORMAT!r})")
    if not isinstance(doc.get("config"), dict):
        raise RewardClassifierError(f"{cfg_file}: 'config' is missing or not an object")
    try:
        config = RewardClassifierConfig.from_dict(doc["config"])
    except (ValueError, TypeError) as exc:
        raise RewardClassifierError(f"{cfg_file}: {exc}") from None
    model = RewardClassifier(config)
    try:
        state = load_file(str(weights))
    except Exception as exc:     # safetensors raises its own error type for truncated/garbled files
        raise RewardClassifierError(f"{weights}: corrupt, not a readable safetensors file ({exc})") from None
    own = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} (config needs {tuple(own[k].shape)})"
             for k, v in state.items() if k in own and own[k].shape != v.shape]
    absent, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if wrong or absent or unexpected:
        raise RewardClassifierError(f"{path}: weights do not match config.json: wrong shapes {wrong[:3]}, "
                                    f"missing {absent[:3]}, unexpected {unexpected[:3]}")
    model.load_state_dict(state)
    model.metrics = doc.get("metrics") or {}
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


def _plot_loss(path: Path, train_loss: list, val_points: list, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = np.arange(1, len(train_loss) + 1)
    ax.plot(steps, train_loss, color="tab:blue", alpha=0.3, lw=0.8, label="train (per step)")
    if len(train_loss) >= 5:
        w = max(1, min(50, len(train_loss) // 10))
        smooth = np.convolve(train_loss, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1:], smooth, color="tab:blue", lw=1.5, label=f"train ({w}-step mean)")
    if val_points:
        vs, vl = zip(*val_points)
        ax.plot(vs, vl, "o-", color="tab:orange", lw=1.5, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("weighted BCE loss")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train_reward_classifier(store, out: str | Path, config: RewardClassifierConfig | None = None,
                            progress: bool = True, command: str | None = None) -> dict:
    """Train on an episode store (path or open EpisodeStore); write the checkpoint and loss curve into ``out``.

    Returns the metrics (also stored in ``out/config.json``): validation accuracy/precision/recall at the
    threshold, positive/negative frame counts of both splits, losses, wall time.
    """
    from tqdm import tqdm

    from robot_stack.data import EpisodeStore, split_episodes

    config = config or RewardClassifierConfig()
    t0 = time.perf_counter()
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    opened = not isinstance(store, EpisodeStore)
    if opened:
        store = EpisodeStore.open(store)
    try:
        store_path = str(store.path)
        if store.num_episodes == 0:
            raise ValueError(f"{store_path}: the store has no episodes")
        check_store(store, config)
        labels_from = label_source(store, config)
        train_eps, val_eps = split_episodes(store.num_episodes, config.val_fraction, config.seed)
        train = load_labelled_frames(store, train_eps, config)
        val = load_labelled_frames(store, val_eps, config)
    finally:
        if opened:
            store.close()
    if train.positives == 0 or train.negatives == 0:
        raise ValueError(f"{store_path}: the training episodes hold {train.positives} positive and "
                         f"{train.negatives} negative frames (labels: {labels_from}); both kinds are needed")
    pos_weight = float(config.positive_weight or train.negatives / train.positives)
    load_s = time.perf_counter() - t0

    model = RewardClassifier(config).to(config.device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([pos_weight], device=model.device))
    x = {c: torch.from_numpy(train.images[c]) for c in config.cameras}
    y = torch.from_numpy(train.labels)
    eval_every = config.eval_every or max(1, config.steps // 10)
    history, val_points, order = [], [], np.zeros(0, np.int64)
    bar = tqdm(total=config.steps, desc="train reward_classifier", unit="step", disable=not progress)
    t_train = time.perf_counter()
    for step in range(1, config.steps + 1):
        if len(order) < config.batch_size:
            order = np.concatenate([order, rng.permutation(len(train))])
        idx, order = torch.from_numpy(order[:config.batch_size]), order[config.batch_size:]
        batch = {c: random_shift(x[c][idx], config.shift_pad, gen) for c in config.cameras}
        loss = loss_fn(model(batch), y[idx].to(model.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(loss.item())
        if len(val) and (step % eval_every == 0 or step == config.steps):
            val_points.append((step, evaluate(model, val, pos_weight, 2 * config.batch_size)["loss"]))
        if step % 10 == 0 or step == config.steps:
            bar.set_postfix(loss=f"{np.mean(history[-10:]):.4f}",
                            val=f"{val_points[-1][1]:.4f}" if val_points else "-")
        bar.update(1)
    bar.close()
    train_s = time.perf_counter() - t_train
    model.eval()
    v = evaluate(model, val, pos_weight, 2 * config.batch_size)
    metrics = {
        "val_accuracy": v["accuracy"], "val_precision": v["precision"], "val_recall": v["recall"],
        "val_loss": v["loss"], "val_positives": v["positives"], "val_negatives": v["negatives"],
        "val_confusion": {k: v[k] for k in ("tp", "fp", "tn", "fn")},
        "train_positives": train.positives, "train_negatives": train.negatives,
        "train_loss_final": float(np.mean(history[-max(1, min(20, len(history))):])),
        "positive_weight": pos_weight, "threshold": config.threshold, "steps": config.steps,
        "train_episodes": len(train_eps), "val_episodes": len(val_eps),
        "load_s": round(load_s, 2), "train_s": round(train_s, 2), "s_per_step": round(train_s / config.steps, 4),
    }
    if not len(val):
        metrics["note"] = "no validation episodes (val_fraction=0 or a single episode): validation metrics are null"
    manifest = {"store": store_path, "labels": labels_from, "cameras": list(config.cameras),
                "image_streams": [f"{c}_rgb" for c in config.cameras], "train_episodes": list(train_eps),
                "val_episodes": list(val_eps), "commit": git_commit(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    acc = "n/a" if v["accuracy"] is None else f"{v['accuracy']:.3f}"
    _plot_loss(out / LOSS_CURVE_FILE, history, val_points,
               f"reward classifier on {Path(store_path).name}: val accuracy {acc} "
               f"({v['positives']} pos / {v['negatives']} neg frames)")
    metrics["wall_s"] = round(time.perf_counter() - t0, 2)
    model.save(out, metrics=metrics, manifest=manifest)
    return {**metrics, "checkpoint": str(out), "loss_curve": str(out / LOSS_CURVE_FILE)}


# ---- command line -----------------------------------------------------------------------------------
USAGE = ("robot-stack train reward_classifier data=STORE out=DIR [steps=N] [cameras=[front,wrist]] "
         "[image_size=128] [threshold=0.5] [progress=false] ...")


def _parse_overrides(overrides: list[str]) -> dict:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    items = []
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"reward_classifier: expected key=value, got {item!r}; usage: {USAGE}")
        items.append(item.lstrip("+"))
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist(items), resolve=True)
    except OmegaConfBaseException as exc:
        raise ValueError(f"reward_classifier: cannot parse overrides {overrides}: {exc}") from None


def main(overrides: list[str]) -> int:
    """``robot-stack train reward_classifier data=STORE out=DIR [config keys]``: train, print metrics as JSON."""
    opts = _parse_overrides(list(overrides))
    data, out, progress = opts.pop("data", None), opts.pop("out", None), opts.pop("progress", True)
    if not data or not out:
        known = ", ".join(f.name for f in fields(RewardClassifierConfig))
        raise ValueError(f"reward_classifier needs data=STORE and out=DIR; usage: {USAGE}; config keys: {known}")
    config = RewardClassifierConfig.from_dict(opts)
    metrics = train_reward_classifier(str(data), str(out), config, progress=bool(progress),
                                      command="robot-stack train reward_classifier " + " ".join(overrides))
    print(json.dumps(metrics))
    return 0
