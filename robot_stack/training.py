"""The one training loop, shared by the policies (policies/train.py) and the reward classifier.

`fit` takes optimiser steps on a loss with an EMA of the weights (the deployed ones), a progress bar, the
logging / validation / checkpoint cadence and a time budget. A run directory `out` ends up with:

    checkpoint/                               the EMA weights: model.safetensors + config.json
    checkpoint_stepNNNNNN/                    snapshots kept every `keep_every` steps
    train_state.safetensors, train_state.json raw weights, EMA, optimiser moments, step, history (resume)
    history.json, loss.png                    the logged metrics and their curve

Everything is safetensors + JSON: no pickle.
"""
from __future__ import annotations

import json
import math
import subprocess
import time
from copy import deepcopy
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from robot_stack.optim_state import load_optimizer_tensors, optimizer_tensors


class EMA:
    """Exponential moving average of the weights; warm-up as in diffusion_policy (decay grows with the step).
    A decay of 0 keeps the latest weights."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.model = deepcopy(model).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for e, p in zip(self.model.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(d).add_(p.detach(), alpha=1 - d)
            else:
                e.copy_(p)


def git_commit() -> str:
    """The commit of this checkout, for run manifests."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def training_device(name: str) -> torch.device:
    """`auto` takes the GPU when there is one; asking for one that is not there is an error, not a silent CPU run."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name} asked for, but torch sees no CUDA device (use device=cpu or auto)")
    return device


def minibatches(n: int, batch_size: int, rng: np.random.Generator):
    """Row indices of each step, endlessly: a fresh permutation per epoch, cut into len // batch_size batches."""
    while True:
        for idx in np.array_split(rng.permutation(n), max(1, n // batch_size)):
            yield idx[:batch_size]


# ---- files ------------------------------------------------------------------------------------------
def write_json(path: Path, doc) -> None:
    """Written whole, then renamed: a reader (or a resume after a crash) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    tmp.replace(path)


def write_checkpoint(path: str | Path, module: torch.nn.Module, doc: dict) -> Path:
    """A checkpoint directory: the module's weights in model.safetensors, `doc` in config.json."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    write_tensors(path / "model.safetensors", module.state_dict())
    write_json(path / "config.json", doc)
    return path


def load_weights(module: torch.nn.Module, path: Path, error: type[Exception] = ValueError) -> None:
    """model.safetensors into `module`; unreadable, missing, unexpected or wrongly shaped tensors are an `error`
    naming them, and nothing is loaded."""
    from safetensors import SafetensorError
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise error(f"{path}: unreadable weights ({exc})") from None
    own = module.state_dict()
    wrong = [f"{k} {tuple(v.shape)} (config needs {tuple(own[k].shape)})"
             for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if wrong or missing or unexpected:
        raise error(f"{path}: weights do not match the config: wrong shapes {wrong[:3]}, missing {missing[:3]}, "
                    f"unexpected {unexpected[:3]}")
    module.load_state_dict(state)


def save_state(out: Path, step: int, model: torch.nn.Module, ema: EMA, opt: torch.optim.Optimizer,
               history: list) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.model.state_dict().items()})
    tensors.update(optimizer_tensors({"opt": opt}))
    write_tensors(out / "train_state.safetensors", tensors)
    write_json(out / "train_state.json", {"step": step, "history": history})


def load_state(out: Path, model: torch.nn.Module, ema: EMA, opt: torch.optim.Optimizer) -> tuple[int, list]:
    """(step, history) of the run in `out`, its weights and optimiser moments restored; (0, []) for a new run."""
    if not (out / "train_state.json").exists():
        return 0, []
    doc = json.loads((out / "train_state.json").read_text())
    tensors = load_file(str(out / "train_state.safetensors"), device=str(next(model.parameters()).device))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    load_optimizer_tensors({"opt": opt}, tensors)
    print(f"resumed from {out} at step {doc['step']}")
    return int(doc["step"]), list(doc["history"])


def plot_curves(history: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    val = [(h["step"], h["val_loss"]) for h in history if h.get("val_loss") is not None]
    if train:
        ax.plot(*zip(*train), label="train loss", alpha=0.7)
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss (EMA weights)")
    ax.set_yscale("log")
    ax.set_xlabel("gradient step")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---- the loop ---------------------------------------------------------------------------------------
def fit(cfg, model: torch.nn.Module, ema: EMA, opt: torch.optim.Optimizer,
        loss: Callable[[], tuple[torch.Tensor, dict]], *, lr: Callable[[int], float],
        save: Callable[[Path, int], None], title: str, desc: str,
        validate: Callable[[torch.nn.Module], dict] | None = None, clip_grad: float | None = None,
        start: tuple[int, list] = (0, [])) -> tuple[int, list]:
    """Train from `start` (step, history; see `load_state`) to `cfg.steps` or `cfg.max_minutes`; returns both.

    `loss()` draws the next batch and returns (loss, metrics); `lr(step)` sets the step's learning rate;
    `validate(ema_model)` gives `val_*` entries (`val_loss` is plotted); `save(path, step)` writes the deployable
    checkpoint. Reads `cfg.out, steps, log_every, val_every, save_every, max_minutes` and, when present,
    `keep_every` and `progress`."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    step, history = start
    bar = tqdm(total=cfg.steps, initial=step, desc=desc, unit="step", disable=not cfg.get("progress", True))
    t0, running = time.time(), []
    model.train()
    deadline = t0 + 60 * float(cfg.max_minutes) if cfg.max_minutes else math.inf
    done = step >= cfg.steps or time.time() >= deadline
    while not done:
        rate = lr(step)
        for group in opt.param_groups:
            group["lr"] = rate
        value, metrics = loss()
        scalar = float(value.detach())          # one device sync per step, for the check and the log
        if not math.isfinite(scalar):
            raise FloatingPointError(f"loss became {scalar} at step {step}")
        opt.zero_grad(set_to_none=True)
        value.backward()
        if clip_grad:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        opt.step()
        ema.update(model, step)
        step += 1
        out_of_time = time.time() >= deadline
        # the last step is always checkpointed below; it is logged (and validated) only when it falls on
        # log_every or the time ran out
        done = step >= cfg.steps or out_of_time
        running.append(scalar)
        bar.update(1)
        if step % cfg.log_every == 0 or out_of_time:
            entry = {"step": step, "loss": float(np.mean(running)), "time_s": time.time() - t0, "lr": rate,
                     **{k: float(v) for k, v in metrics.items()}}
            running = []
            if validate is not None and (step % cfg.val_every == 0 or done):
                entry.update(validate(ema.model))
            history.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.4f}",
                            **({"val": f"{entry['val_loss']:.4f}"} if entry.get("val_loss") is not None else {}))
        if done:
            break
        if step % cfg.save_every == 0:
            _checkpoint(out, step, model, ema, opt, history, save, title)
        if cfg.get("keep_every") and step % cfg.keep_every == 0:
            save(out / f"checkpoint_step{step:06d}", step)
    bar.close()
    _checkpoint(out, step, model, ema, opt, history, save, title)
    return step, history


def _checkpoint(out: Path, step: int, model, ema: EMA, opt, history: list, save, title: str) -> None:
    save(out / "checkpoint", step)
    save_state(out, step, model, ema, opt, history)
    write_json(out / "history.json", history)
    if history:
        plot_curves(history, out / "loss.png", title)
