"""Transitions and weights as bytes, for std_msgs/UInt8MultiArray on ROS 2 topics. No pickle.

Each message is a safetensors blob: the arrays as tensors, everything else in its string
metadata (JSON). The spec fingerprint rides in every message: a learner writes nothing whose
fingerprint differs from its own, an actor loads no weights whose fingerprint differs.
"""
from __future__ import annotations

import json

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load as np_load, save as np_save
from safetensors.torch import load as torch_load, save as torch_save

from robot_stack.learner.replay import Transition
from robot_stack.learner.spaces import SpecError

SCALARS = ("grip", "reward", "terminated", "truncated", "intervention", "grasp_penalty", "episode", "step")


class TransportError(ValueError):
    """Bytes that are not a message of the expected kind."""


def _metadata(data: bytes) -> dict:
    """The JSON header of a safetensors blob, read without decoding tensors."""
    if len(data) < 8:
        raise TransportError(f"message of {len(data)} bytes is not safetensors")
    n = int.from_bytes(data[:8], "little")
    if n <= 0 or 8 + n > len(data):
        raise TransportError("message header length is out of range")
    try:
        header = json.loads(data[8:8 + n])
        return json.loads(header.get("__metadata__", {}).get("robot_stack", "{}"))
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise TransportError(f"message header is not JSON: {exc}") from exc


def encode_transition(t: Transition, actor: str, seq: int, fingerprint: str) -> bytes:
    arrays = {f"obs.{k}": np.ascontiguousarray(v) for k, v in t.obs.items()}
    arrays.update({f"next_obs.{k}": np.ascontiguousarray(v) for k, v in t.next_obs.items()})
    arrays["action"] = np.ascontiguousarray(t.action, np.float32)
    meta = {"kind": "transition", "actor": actor, "seq": int(seq), "fingerprint": fingerprint,
            **{k: _plain(getattr(t, k)) for k in SCALARS}}
    return np_save(arrays, metadata={"robot_stack": json.dumps(meta)})


def decode_transition(data: bytes, fingerprint: str | None = None) -> tuple[str, int, Transition]:
    """(actor, seq, transition); TransportError for bytes that are not one, SpecError for another spec."""
    data = bytes(data)
    meta = _metadata(data)
    if meta.get("kind") != "transition":
        raise TransportError(f"expected a transition message, got kind {meta.get('kind')!r}")
    if fingerprint is not None and meta.get("fingerprint") != fingerprint:
        raise SpecError(f"transition spec {meta.get('fingerprint')} does not match the learner's {fingerprint}")
    try:
        arrays = np_load(data)
        obs = {k[4:]: v for k, v in arrays.items() if k.startswith("obs.")}
        next_obs = {k[9:]: v for k, v in arrays.items() if k.startswith("next_obs.")}
        t = Transition(obs, arrays["action"], int(meta["grip"]), float(meta["reward"]), next_obs,
                       bool(meta["terminated"]), bool(meta["truncated"]), bool(meta["intervention"]),
                       float(meta["grasp_penalty"]), str(meta["episode"]), int(meta["step"]))
        return str(meta["actor"]), int(meta["seq"]), t
    except (SafetensorError, KeyError, TypeError, ValueError) as exc:
        raise TransportError(f"malformed transition message: {exc}") from exc


def encode_weights(state: dict[str, torch.Tensor], version: int, fingerprint: str, updates: int = 0) -> bytes:
    meta = {"kind": "weights", "version": int(version), "fingerprint": fingerprint, "updates": int(updates)}
    return torch_save({k: v.contiguous() for k, v in state.items()}, metadata={"robot_stack": json.dumps(meta)})


def decode_weights(data: bytes, fingerprint: str) -> tuple[int, dict[str, torch.Tensor]]:
    """(version, policy state); SpecError when the weights were trained for another spec."""
    data = bytes(data)
    meta = _metadata(data)
    if meta.get("kind") != "weights":
        raise TransportError(f"expected a weights message, got kind {meta.get('kind')!r}")
    if meta.get("fingerprint") != fingerprint:
        raise SpecError(f"weights for spec {meta.get('fingerprint')} do not match the actor's {fingerprint}")
    try:
        return int(meta["version"]), torch_load(data)
    except (SafetensorError, KeyError, ValueError) as exc:
        raise TransportError(f"malformed weights message: {exc}") from exc


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v
