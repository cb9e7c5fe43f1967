"""Training batches in the Policy batch format (see base.py) from an episode store.

Wraps the store's EpisodeDataset: encodes canonical actions into policy space relative
to the TCP pose at the newest observation (actions.encode), builds proprio, normalises
both with statistics computed once on the training episodes, and relabels goals in
hindsight through the conditioning kinds the policy reads (each kind's module says how: the goal
image, the instruction with its `language_fraction`, ...).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robot_stack.data import EpisodeStore
from robot_stack.data.dataset import EpisodeDataset
from robot_stack.policies import actions as act_space
from robot_stack.policies.base import DataSpec
from robot_stack.policies.conditioning import NONE, Sample, get_kind

PROPRIO_KEYS = ("ee_pose", "gripper")
ACTION_KEYS = ("action_pose", "action_gripper")


def split_episodes(store_path: str | Path, val_fraction: float, seed: int, task: str | None = None,
                   only_success: bool = True) -> tuple[list[int], list[int]]:
    """Train/validation split by episode (never by sample), deterministic in `seed`; `task` "all" (or None) keeps
    every task's episodes (multi-task training, as RT-Trajectory's seven tasks)."""
    store = EpisodeStore.open(store_path, "r")
    keep = []
    for k in range(store.num_episodes):
        meta = store.metadata(k)
        if only_success and not meta.get("success", False):
            continue
        if task and task != "all" and meta.get("task") not in (None, task):
            continue
        keep.append(k)
    if not keep:
        raise ValueError(f"{store_path}: no {'successful ' if only_success else ''}episodes"
                         f"{' of task ' + task if task else ''}")
    order = np.random.default_rng(seed).permutation(keep)
    n_val = int(round(len(order) * val_fraction)) if len(order) > 1 else 0
    return sorted(int(k) for k in order[n_val:]), sorted(int(k) for k in order[:n_val])


class PolicyBatches:
    def __init__(self, store_path: str | Path, spec: DataSpec, episodes: list[int], stats: dict | None = None,
                 language_fraction: float = 1.0, seed: int = 0, cache_bytes: int = 2 << 30,
                 conditioning: frozenset[str] | tuple[str, ...] = ("goal_image", "instruction")):
        if spec.goal_camera not in spec.cameras:
            raise ValueError(f"goal camera {spec.goal_camera!r} must be one of the policy's cameras {spec.cameras}")
        self.spec = spec
        self.image_keys = tuple(f"{c}_rgb" for c in spec.cameras)
        self.goal_key = f"{spec.goal_camera}_rgb"
        self.ds = EpisodeDataset(store_path, [*self.image_keys, *PROPRIO_KEYS], ACTION_KEYS, clock="tick",
                                 obs_horizon=spec.obs_horizon, action_horizon=spec.action_horizon, episodes=episodes,
                                 cache_bytes=cache_bytes)
        store = EpisodeStore.open(store_path, "r")
        metas = [store.metadata(k) for k in episodes]
        self.language_fraction, self.seed = language_fraction, seed
        self.kinds = [get_kind(name) for name in sorted(set(conditioning) - {NONE})]
        self.summary: dict = {}           # what the kinds report for the run manifest (e.g. labelled episodes)
        for kind in self.kinds:
            self.summary.update(kind.prepare(self, metas))
        for key in self.image_keys:
            shape = store.streams[key].shape
            if tuple(shape) != (spec.image_size, spec.image_size, 3):
                raise ValueError(f"{store_path}: stream {key} holds {shape} images; the policy expects "
                                 f"{spec.image_size}x{spec.image_size}x3 (record or generate at that size)")
        self.stats = stats or self._compute_stats()
        if stats is None:
            for kind in self.kinds:
                self.stats.update(kind.stats(self))

    def __len__(self) -> int:
        return len(self.ds)

    def _raw(self, idx: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray]:
        b = self.ds.get_batch(idx)
        ee = b["obs"]["ee_pose"].numpy()
        grip = b["obs"]["gripper"].numpy()
        acts = act_space.encode(ee[:, -1], b["action"]["action_pose"].numpy(), b["action"]["action_gripper"].numpy())
        return b, act_space.proprio(ee, grip[..., 0]), acts

    def _compute_stats(self) -> dict:
        props, acts = [], []
        for start in range(0, len(self), 1024):
            _, p, a = self._raw(np.arange(start, min(start + 1024, len(self))))
            props.append(p[:, -1])
            acts.append(a)
        return {"proprio": act_space.compute_stats(np.concatenate(props)),
                "action": act_space.compute_stats(np.concatenate(acts))}

    def batch(self, idx, rng: np.random.Generator) -> dict:
        idx = np.asarray(idx, dtype=np.int64)
        b, prop, acts = self._raw(idx)
        samples = []
        for j in idx:
            i, t = self.ds.window(int(j))
            samples.append(Sample(episode=i, t=t, last=self.ds.last_tick(i)))
        out = {
            "images": {c: b["obs"][k] for c, k in zip(self.spec.cameras, self.image_keys)},
            "proprio": torch.from_numpy(act_space.normalise(prop, self.stats["proprio"], "meanstd")),
            "action": torch.from_numpy(act_space.normalise(acts, self.stats["action"], self.spec.action_norm)),
            "action_is_pad": b["action_is_pad"],
        }
        for kind in self.kinds:
            out.update(kind.batch(self, samples, rng))
        return out
