"""Which inputs does a trained policy read? An open-loop check on held-out episodes.

For one window per episode at a given phase of the episode, the policy predicts its chunk; then
it predicts again with one input group swapped between episodes (the cameras, the goal, the
proprio). If the error does not grow when an input is swapped, the policy ignores that input.
This is the copycat check: a policy that reads where it is heading from proprio and ignores its
cameras fits most of an expert's trajectory and still fails in closed loop, because the first
steps, where only the image says where the object is, decide the rest.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from robot_stack.policies import actions as act_space
from robot_stack.policies.base import Policy
from robot_stack.policies.batches import PolicyBatches

PHASES = (0.0, 0.1, 0.5, 0.75)   # fraction of each episode's length: start, approach, grasp, transport


def _roll(x):
    return torch.roll(torch.as_tensor(x), 1, 0)


def _roll_any(x):
    if isinstance(x, list):
        return x[-1:] + x[:-1]
    return _roll(x)


def batches_kinds(policy: Policy) -> list:
    """The conditioning kinds whose batch entries the policy reads."""
    from robot_stack.policies.conditioning import NONE, get_kind
    return [get_kind(name) for name in sorted(set(policy.conditioning) - {NONE})]


def input_swaps(policy: Policy) -> dict[str, Callable[[dict], dict]]:
    """Input group -> a function that returns the batch with that group moved one row (episode) over."""
    spec = policy.data_spec()
    swaps = {f"camera {cam}": (lambda b, cam=cam: {**b, "images": {**b["images"], cam: _roll(b["images"][cam])}})
             for cam in spec.cameras}
    for kind in batches_kinds(policy):
        swaps[kind.name] = lambda b, keys=kind.batch_keys: {**b, **{k: _roll_any(b[k]) for k in keys if k in b}}
    swaps["proprio"] = lambda b: {**b, "proprio": _roll(b["proprio"])}
    return swaps


def last_target_positions(policy: Policy, actions) -> np.ndarray:
    """Normalised policy-space actions (B, Ta, 7) -> the position target of each chunk's last step (B, 3), in m."""
    unnormalised = act_space.unnormalise(np.asarray(actions, dtype=np.float64), policy.stats["action"],
                                         policy.data_spec().action_norm)
    return unnormalised[:, -1, :3]


def sensitivity(policy: Policy, batch: dict) -> dict:
    """Mean error (mm) of the last step's position target with every input in place, with each group swapped, and
    the error of always predicting the batch's mean target (what a policy that reads nothing useful reaches at best)."""
    truth = last_target_positions(policy, batch["action"])

    def error_mm(b: dict) -> float:
        return float(1000 * np.linalg.norm(last_target_positions(policy, policy.predict_batch(b)) - truth, axis=-1).mean())

    with torch.no_grad():
        base = error_mm(batch)
        swapped = {name: error_mm(swap(batch)) for name, swap in input_swaps(policy).items()}
    mean_guess = 1000 * np.linalg.norm(truth - truth.mean(0), axis=-1).mean()
    return {"error_mm": base, "mean_guess_mm": float(mean_guess), "swapped_mm": swapped}


def windows_at_phase(batches: PolicyBatches, phase: float) -> np.ndarray:
    """One window index per episode, `phase` of the way through it."""
    by_episode: dict[int, list[tuple[int, int]]] = {}
    for j in range(len(batches)):
        i, t = batches.ds.window(j)
        by_episode.setdefault(i, []).append((t, j))
    picks = []
    for rows in by_episode.values():
        rows.sort()
        picks.append(rows[min(int(phase * len(rows)), len(rows) - 1)][1])
    return np.array(picks, dtype=np.int64)


def probe(policy: Policy, batches: PolicyBatches, phases=PHASES, seed: int = 0) -> list[dict]:
    """sensitivity() at each phase, over one window per episode of `batches`."""
    rng = np.random.default_rng(seed)
    policy.eval()
    out = []
    for phase in phases:
        idx = windows_at_phase(batches, phase)
        out.append({"phase": phase, "windows": len(idx), **sensitivity(policy, batches.batch(idx, rng))})
    return out


def format_report(rows: list[dict]) -> str:
    """One line per phase: the error, the mean guess, and the error with each input swapped."""
    lines = ["phase  windows  error mm  mean-guess mm  | swapped: " + ", ".join(rows[0]["swapped_mm"])]
    for r in rows:
        sw = "  ".join(f"{v:7.1f}" for v in r["swapped_mm"].values())
        lines.append(f"{r['phase']:5.2f}  {r['windows']:7d}  {r['error_mm']:8.1f}  {r['mean_guess_mm']:13.1f}  | {sw}")
    return "\n".join(lines)
