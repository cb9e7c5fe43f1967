"""A replay buffer that stores each observation once.

A transition (s, a, r, s') of an episode shares s with the s' of the transition before it, so
observations live in their own ring of slots and transitions hold two slot indices. An episode
of T steps costs T + 1 observations instead of 2T (half the image memory of a naive buffer).
A slot remembers the serial number of its write; a transition is valid only while both of its
slots still hold the observations it was written with, so the rings can wrap independently.
Buffers save to safetensors + JSON (no pickle) and restore exactly.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from robot_stack.learner.spaces import ObsSpec, SpecError, check_obs

FIELDS = {"action": np.float32, "grip": np.int64, "reward": np.float32, "terminated": np.bool_,
          "truncated": np.bool_, "intervention": np.bool_, "grasp_penalty": np.float32}


@dataclass
class Transition:
    obs: dict
    action: np.ndarray            # the continuous action in [-1, 1]^dim
    grip: int                     # 0 open, 1 stay, 2 close (1 when the gripper is not discrete)
    reward: float
    next_obs: dict
    terminated: bool              # the task ended (success or failure): no bootstrap
    truncated: bool               # the time limit ended the episode: bootstrap
    intervention: bool = False    # a human chose this action
    grasp_penalty: float = 0.0    # HIL-SERL: a small cost for changing the gripper state
    episode: str = ""             # unique per episode (actor id + episode number)
    step: int = 0                 # index in the episode


def check_transition(t: Transition, spec: ObsSpec, action_dim: int) -> None:
    """Raise SpecError unless the transition fits the spec and every number is finite."""
    check_obs(t.obs, spec)
    check_obs(t.next_obs, spec)
    action = np.asarray(t.action)
    if action.shape != (action_dim,):
        raise SpecError(f"action shape {list(action.shape)}, expected [{action_dim}]")
    if not np.all(np.isfinite(action)) or np.any(np.abs(action) > 1.0 + 1e-6):
        raise SpecError("action has NaN/inf or leaves [-1, 1]")
    if int(t.grip) not in (0, 1, 2):
        raise SpecError(f"gripper action {t.grip} is not 0, 1 or 2")
    if not (np.isfinite(t.reward) and np.isfinite(t.grasp_penalty)):
        raise SpecError("reward or grasp penalty is NaN or inf")


class ReplayBuffer:
    def __init__(self, spec: ObsSpec, action_dim: int, capacity: int, obs_capacity: int | None = None):
        self.spec, self.action_dim, self.capacity = spec, action_dim, int(capacity)
        # Each transition needs one new observation, plus one at each episode start.
        self.obs_capacity = int(obs_capacity or capacity + capacity // 8 + 2)
        self.obs = {k: np.zeros((self.obs_capacity, *shape), dtype) for k, (shape, dtype) in spec.shapes().items()}
        self.slot_serial = np.full(self.obs_capacity, -1, np.int64)
        self.data = {k: np.zeros((self.capacity, action_dim) if k == "action" else self.capacity, dt)
                     for k, dt in FIELDS.items()}
        self.slots = np.zeros((self.capacity, 2), np.int64)         # obs slot, next-obs slot
        self.serials = np.full((self.capacity, 2), -1, np.int64)    # their serials when written
        self.added = 0            # transitions ever added
        self.obs_written = 0      # observations ever written
        self._tails: OrderedDict[str, tuple[int, int]] = OrderedDict()   # episode -> (step, slot of its last s')

    def __len__(self) -> int:
        return min(self.added, self.capacity)

    def _write_obs(self, obs: dict) -> tuple[int, int]:
        slot, serial = self.obs_written % self.obs_capacity, self.obs_written
        for k, v in obs.items():
            self.obs[k][slot] = v
        self.slot_serial[slot] = serial
        self.obs_written += 1
        return slot, serial

    def add(self, t: Transition) -> None:
        check_transition(t, self.spec, self.action_dim)
        tail = self._tails.get(t.episode) if t.episode else None
        slot = None
        if tail is not None and tail[0] == t.step - 1:
            prev = tail[1]
            if self.slot_serial[prev] >= 0 and np.array_equal(self.obs["state"][prev], t.obs["state"]):
                slot, serial = prev, int(self.slot_serial[prev])
        if slot is None:
            slot, serial = self._write_obs(t.obs)
        next_slot, next_serial = self._write_obs(t.next_obs)
        i = self.added % self.capacity
        self.slots[i] = (slot, next_slot)
        self.serials[i] = (serial, next_serial)
        for k in FIELDS:
            self.data[k][i] = getattr(t, k)
        self.added += 1
        if t.episode:
            if t.terminated or t.truncated:
                self._tails.pop(t.episode, None)
            else:
                self._tails[t.episode] = (t.step, next_slot)
                self._tails.move_to_end(t.episode)
                while len(self._tails) > 256:
                    self._tails.popitem(last=False)

    def valid(self, idx: np.ndarray) -> np.ndarray:
        s = self.slots[idx]
        return (self.slot_serial[s[:, 0]] == self.serials[idx, 0]) & (self.slot_serial[s[:, 1]] == self.serials[idx, 1])

    def sample(self, n: int, rng: np.random.Generator) -> dict:
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(len(self), size=n)
        for _ in range(20):
            bad = ~self.valid(idx)
            if not bad.any():
                break
            idx[bad] = rng.integers(len(self), size=int(bad.sum()))
        idx = idx[self.valid(idx)]
        s = self.slots[idx]
        batch = {k: v[idx] for k, v in self.data.items()}
        batch["obs"] = {k: v[s[:, 0]] for k, v in self.obs.items()}
        batch["next_obs"] = {k: v[s[:, 1]] for k, v in self.obs.items()}
        return batch

    def states(self) -> np.ndarray:
        """The state vectors of all observations held (for normalisation statistics)."""
        return self.obs["state"][:min(self.obs_written, self.obs_capacity)]

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.obs.values()) + sum(a.nbytes for a in self.data.values())

    # --- persistence -------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """`<path>.safetensors` (arrays) + `<path>.json` (counters, episode tails). Only the slots ever
        written are saved: a fresh image buffer of 200k transitions would otherwise write ~22 GB."""
        path = Path(path)
        n_obs, n = min(self.obs_written, self.obs_capacity), len(self)
        arrays = {f"obs.{k}": v[:n_obs] for k, v in self.obs.items()}
        arrays.update({f"data.{k}": v[:n] for k, v in self.data.items()})
        arrays.update(slot_serial=self.slot_serial[:n_obs], slots=self.slots[:n], serials=self.serials[:n])
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path.with_suffix(".safetensors")))
        meta = {"capacity": self.capacity, "obs_capacity": self.obs_capacity, "action_dim": self.action_dim,
                "shapes": {k: [list(s), d] for k, (s, d) in self.spec.shapes().items()},
                "added": self.added, "obs_written": self.obs_written,
                "tails": [[k, *map(int, v)] for k, v in self._tails.items()]}
        path.with_suffix(".json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, path: str | Path, spec: ObsSpec) -> "ReplayBuffer":
        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        shapes = {k: [list(s), d] for k, (s, d) in spec.shapes().items()}
        if meta["shapes"] != shapes:
            raise SpecError(f"{path}: buffer observations {meta['shapes']} do not match the spec's {shapes}")
        buf = cls(spec, meta["action_dim"], meta["capacity"], meta["obs_capacity"])
        arrays = load_file(str(path.with_suffix(".safetensors")))
        n_obs, n = min(meta["obs_written"], buf.obs_capacity), min(meta["added"], buf.capacity)
        for k in buf.obs:
            buf.obs[k][:n_obs] = arrays[f"obs.{k}"]
        for k in buf.data:
            buf.data[k][:n] = arrays[f"data.{k}"]
        buf.slot_serial[:n_obs] = arrays["slot_serial"]
        buf.slots[:n], buf.serials[:n] = arrays["slots"], arrays["serials"]
        buf.added, buf.obs_written = meta["added"], meta["obs_written"]
        buf._tails = OrderedDict((k, (s, slot)) for k, s, slot in meta["tails"])
        return buf
