"""The one Policy interface every method implements, and its checkpoint format.

A policy declares what conditioning it accepts (`conditioning`, a subset of
the registered conditioning kinds) and what data it reads (`data_spec`). The server calls
`reset(task)` when the task changes, `act(obs)` to decide and `observe(obs)` for the frames between
decisions (the history is kept at the policy rate); the trainer calls
`loss(batch)`. Checkpoints are a directory with `model.safetensors` and `config.json`
(the method's name, its config dataclass, the normalisation statistics): no pickle.

The training batch (built by `robot_stack.policies.batches`) is a dict:
  images:        {camera: uint8 (B, To, H, W, 3)}
  proprio:       float (B, To, 8)   normalised with stats["proprio"] (actions.proprio)
  action:        float (B, Ta, 7)   policy-space actions (actions.encode), normalised with stats["action"]
  action_is_pad: bool (B, Ta)       steps past the episode's end (repeat the last action)
  goal_image:    uint8 (B, H, W, 3) a future frame of the goal camera (relabelled in hindsight)
  start_image:   uint8 (B, H, W, 3) the episode's first frame of the goal camera
  instruction:   list[str] (B)      the episode's instruction ("" where unlabelled)
  labelled:      bool (B)           whether the instruction may be used
"""
from __future__ import annotations

import json
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from robot_stack.policies import actions as act_space
from robot_stack.policies.errors import BadObservation, CheckpointMismatch, MissingConditioning, UnknownPolicy
from robot_stack.types import ActionChunk, Observation, Task

FORMAT_VERSION = 1
HISTORY_SLACK = 0.25                    # of policy_dt: how late a frame may be and still stand for a history instant
REGISTRY: dict[str, type["Policy"]] = {}


@dataclass
class DataSpec:
    """What a policy reads from an episode store and how its training targets are built."""

    cameras: tuple[str, ...] = ("front", "wrist")
    image_size: int = 128
    obs_horizon: int = 2
    action_horizon: int = 16            # steps predicted per chunk
    goal_camera: str = "front"
    goal_final_prob: float = 1.0        # hindsight goal: the final frame with this probability, else a uniform future frame
    action_norm: str = "meanstd"
    policy_dt: float = 0.1
    conditioning: dict = field(default_factory=dict)   # per-kind settings, e.g. {"sketch": {"mode": "2.5d"}}


@dataclass
class PolicyConfig:
    """What every method's `<Method>Config` carries besides its architecture: the training hyperparameters
    (the one training loop reads them) and the deployment settings (how eval, the server and bench execute
    its chunks unless told otherwise). A method's config subclasses this and adds its own fields."""

    # training
    lr: float = 1e-4
    weight_decay: float = 1e-6
    ema_decay: float = 0.999
    # deployment (`robot-stack checkpoint set CKPT execute_steps=2` changes them in a trained checkpoint)
    execute_steps: int = 1               # chunk steps played before the policy decides again
    chunk_blend: float = 0.0             # weight the playing chunk keeps where a new one overlaps it (0 = replace)

    def __post_init__(self):
        if self.execute_steps < 1:
            raise ValueError(f"execute_steps must be at least 1, got {self.execute_steps}")
        if not 0.0 <= self.chunk_blend < 1.0:
            raise ValueError(f"chunk_blend must be in [0, 1), got {self.chunk_blend}")


DEPLOY_KEYS = ("execute_steps", "chunk_blend")    # settable in a trained checkpoint, with a method's `deploy_keys`
CHECKPOINT_KEYS = {"format", "policy", "config", "stats", "manifest", "module"}   # module: written by old builds, never read


def register(cls: type["Policy"]) -> type["Policy"]:
    """Class decorator: the method becomes loadable by its `name` (checkpoints, `train policy=NAME`)."""
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"policy name {cls.name!r} registered twice")
    if not (isinstance(cls.Config, type) and issubclass(cls.Config, PolicyConfig)):
        raise TypeError(f"policy {cls.name!r}: its Config must subclass PolicyConfig")
    REGISTRY[cls.name] = cls
    return cls


def policy_class(name: str) -> type["Policy"]:
    """The registered class of a method name. Only installed code is consulted (the methods' folders and the
    `robot_stack.policies` entry points): a checkpoint names a method, it never chooses code to import."""
    from robot_stack.policies import discover
    discover()
    if name not in REGISTRY:
        raise UnknownPolicy(f"unknown policy {name!r}; registered: {', '.join(sorted(REGISTRY)) or 'none'}")
    return REGISTRY[name]


def config_from_dict(config_cls: type, values: dict, where: str):
    """A config dataclass from JSON/CLI values: unknown keys and values of the wrong type are refused by name
    before anything is built (a checkpoint's `image_size: "many"` is a clear error, not a TypeError inside a model)."""
    import typing

    if not isinstance(values, dict):
        raise CheckpointMismatch(f"{where}: the config must be a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(config_cls)
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise CheckpointMismatch(f"{where}: unknown config keys {unknown}; known: {sorted(known)}")
    for key, value in values.items():
        if not _fits(value, hints.get(key)):
            raise CheckpointMismatch(f"{where}: {key} = {value!r} is not a {_type_name(hints.get(key))}")
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise CheckpointMismatch(f"{where}: {exc}") from exc


def _fits(value, hint) -> bool:
    import types
    import typing

    if hint is None or hint is typing.Any:
        return True
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    origin = typing.get_origin(hint) or hint
    if origin in (tuple, list):
        return isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    return True


def _type_name(hint) -> str:
    return getattr(hint, "__name__", str(hint))


class Policy(torch.nn.Module):
    name: ClassVar[str]
    conditioning: ClassVar[frozenset[str]]      # kinds of robot_stack.policies.conditioning, and/or "none"
    Config: ClassVar[type]                      # the method's <Method>Config, a PolicyConfig
    deploy_keys: ClassVar[tuple[str, ...]] = ()  # config keys that change execution, not weights (BESO's guidance)

    def __init__(self, config, stats: dict | None = None):
        super().__init__()
        self.config = config
        self.stats = stats or {}
        self.task: Task | None = None
        self._history: deque[Observation] = deque()     # oldest first, pruned to what the next window needs

    # --- what the method declares -------------------------------------------------------------
    def data_spec(self) -> DataSpec:
        raise NotImplementedError

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def predict(self, obs: list[Observation], task: Task) -> np.ndarray:
        """Policy-space actions (Ta, 7), unnormalised, for an observation history (oldest first)."""
        raise NotImplementedError

    def predict_batch(self, batch: dict) -> torch.Tensor:
        """Normalised actions (B, Ta, 7) for a training-format batch, conditioned on its goal images: the
        open-loop check of policies/probe.py. Deterministic, so two calls differ only where the inputs do."""
        raise NotImplementedError(f"policy {self.name!r} has no batch prediction")

    def _on_reset(self, task: Task) -> None:
        """Per-method work when the task changes (encode the goal or instruction once)."""

    # --- the interface ----------------------------------------------------------------------------
    def serve(self) -> "Policy":
        """Prepare for a process that only decides (the policy server): eval mode, and whatever a method does to
        decide faster with weights that no longer change (BESO traces its score network). Not for training."""
        return self.eval()

    def reset(self, task: Task) -> None:
        """Start a new task; refuses (MissingConditioning) a task this policy cannot be conditioned on."""
        offered = task.provides()
        if not offered & self.conditioning:
            raise MissingConditioning(
                f"policy {self.name!r} needs one of {sorted(self.conditioning)}; the task provides "
                f"{sorted(offered - {'none'}) or 'nothing'}")
        self._check_task_images(task)
        self.task = task
        self._history.clear()
        self._on_reset(task)

    def update_task(self, task: Task) -> None:
        """A task input changed mid-episode (a new instruction, goal or sketch arrived while the arm moves). The
        default starts over as reset() does; a method that switches tasks mid-execution (SwitchVLA) keeps its
        history and reads the change instead."""
        self.reset(task)

    def status(self) -> dict[str, str]:
        """What the policy reports about its own state on /diagnostics (SwitchVLA: the active mode); text values."""
        return {}

    @torch.no_grad()
    def act(self, obs: Observation) -> ActionChunk:
        """An action chunk for the newest observation; step k holds from obs.stamp + k * policy_dt."""
        if self.task is None:
            raise MissingConditioning(f"policy {self.name!r} has no task: call reset(task) first")
        self.observe(obs)
        history = self._window(obs.stamp)
        if self.training:                # eval() walks every submodule: 1.6 ms of BESO's 12 ms act() when done always
            self.eval()
            try:
                pred = self.predict(history, self.task)
            finally:
                self.train()
        else:
            pred = self.predict(history, self.task)
        spec = self.data_spec()
        return act_space.decode(np.asarray(obs.ee_pose, dtype=np.float64), pred, obs.stamp, spec.policy_dt)

    def observe(self, obs: Observation) -> None:
        """Keep a frame for the observation history without deciding. A caller that decides every N policy
        steps passes the frames in between here, so the history is spaced at the policy rate, as in training
        (fed only the decision frames, a 2-frame BESO deciding every 2 steps saw frames 0.2 s apart, not 0.1)."""
        if self.task is None:
            raise MissingConditioning(f"policy {self.name!r} has no task: call reset(task) first")
        self.check_observation(obs)
        history = self._history
        while history and history[-1].stamp >= obs.stamp:
            history.pop()                       # a frame of the same instant or earlier: the newest one stands
        history.append(obs)
        spec = self.data_spec()
        oldest = obs.stamp - (spec.obs_horizon - 1) * spec.policy_dt
        while len(history) > 1 and history[1].stamp <= oldest + HISTORY_SLACK * spec.policy_dt:
            history.popleft()

    def _window(self, stamp: float) -> list[Observation]:
        """The history for a decision at `stamp`: for each of the obs_horizon instants spaced policy_dt apart
        and ending at `stamp`, the newest kept frame at most HISTORY_SLACK periods after it; the oldest kept
        frame where none is that old yet (the episode start pads, as the training windows do)."""
        spec = self.data_spec()
        window = []
        for k in range(spec.obs_horizon - 1, -1, -1):
            t = stamp + (HISTORY_SLACK - k) * spec.policy_dt
            window.append(next((o for o in reversed(self._history) if o.stamp <= t), self._history[0]))
        return window

    def check_observation(self, obs: Observation) -> None:
        spec = self.data_spec()
        for cam in spec.cameras:
            image = obs.images.get(cam)
            if image is None:
                raise BadObservation(f"policy {self.name!r} needs camera {cam!r}; got {sorted(obs.images)}")
            self._check_image(f"camera {cam!r}", image)
        pose = np.asarray(obs.ee_pose, dtype=np.float64)
        if pose.shape != (7,) or not np.all(np.isfinite(pose)) or not np.isfinite(obs.gripper):
            raise BadObservation(f"ee_pose must be 7 finite numbers and gripper finite; got {pose.shape}")

    def _check_task_images(self, task: Task) -> None:
        from robot_stack.policies.conditioning import image_fields
        for label in image_fields():
            image = getattr(task, label)
            if image is not None:
                self._check_image(label, image)

    def _check_image(self, label: str, image) -> None:
        size = self.data_spec().image_size
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.shape != (size, size, 3):
            raise BadObservation(f"{label}: expected a {size}x{size}x3 uint8 image, got {image.shape} {image.dtype}")

    # --- checkpoints --------------------------------------------------------------------------
    def save(self, path: str | Path, extra: dict | None = None) -> Path:
        from robot_stack.training import write_checkpoint
        doc = {"format": FORMAT_VERSION, "policy": self.name, "config": asdict(self.config), "stats": self.stats,
               **(extra or {})}
        return write_checkpoint(path, self, doc)

    @classmethod
    def from_config(cls, config: dict, stats: dict | None = None) -> "Policy":
        return cls(config_from_dict(cls.Config, config, f"policy {cls.name!r}"), stats)

    @property
    def deploy(self) -> dict:
        """How this policy is executed (chunk steps, blending and the method's own `deploy_keys`)."""
        return {k: getattr(self.config, k) for k in (*DEPLOY_KEYS, *self.deploy_keys)}


def read_checkpoint(path: str | Path) -> dict:
    """A checkpoint's config.json, validated before anything is built: its keys, format and method."""
    path = Path(path)
    cfg_file, weights = path / "config.json", path / "model.safetensors"
    if not cfg_file.is_file() or not weights.is_file():
        raise CheckpointMismatch(f"{path}: a checkpoint is a directory with config.json and model.safetensors")
    try:
        doc = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointMismatch(f"{cfg_file}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise CheckpointMismatch(f"{cfg_file}: expected a JSON object")
    unknown = sorted(set(doc) - CHECKPOINT_KEYS)
    if unknown:
        raise CheckpointMismatch(f"{cfg_file}: unknown keys {unknown}; a checkpoint has {sorted(CHECKPOINT_KEYS - {'module'})}")
    if doc.get("format") != FORMAT_VERSION:
        raise CheckpointMismatch(f"{cfg_file}: checkpoint format {doc.get('format')!r}, this build reads {FORMAT_VERSION}")
    if not isinstance(doc.get("stats", {}), dict):
        raise CheckpointMismatch(f"{cfg_file}: stats must be a mapping")
    return doc


def load_policy(path: str | Path, device: str = "cpu") -> Policy:
    """A checkpoint directory -> the policy it holds (any registered method), in eval mode."""
    from robot_stack.training import load_weights

    path = Path(path)
    doc = read_checkpoint(path)
    try:
        policy = policy_class(str(doc.get("policy"))).from_config(doc.get("config", {}), doc.get("stats"))
    except CheckpointMismatch as exc:                   # the error names the file it is in
        raise CheckpointMismatch(f"{path / 'config.json'}: {exc}") from exc
    load_weights(policy, path / "model.safetensors", CheckpointMismatch)
    return policy.to(device).eval()


def set_deploy(path: str | Path, values: dict) -> dict:
    """Change a trained checkpoint's deployment settings in place (validated as a load would); returns them."""
    path = Path(path)
    doc = read_checkpoint(path)
    cls = policy_class(str(doc.get("policy")))
    allowed = (*DEPLOY_KEYS, *cls.deploy_keys)
    refused = sorted(set(values) - set(allowed))
    if refused:
        raise CheckpointMismatch(f"{path}: {refused} cannot be changed after training; deployment settings of "
                                 f"{cls.name!r}: {list(allowed)}")
    config = {**doc.get("config", {}), **values}
    checked = config_from_dict(cls.Config, config, f"{path}")
    doc["config"] = asdict(checked)
    doc.pop("module", None)
    from robot_stack.training import write_json
    write_json(path / "config.json", doc)
    return {k: getattr(checked, k) for k in allowed}
