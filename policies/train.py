"""`robot-stack train policy=NAME task=T data=STORE ...`: the one training loop for every policy.

AdamW on `policy.loss(batch)`, EMA weights (the deployed checkpoint), validation loss on
held-out episodes, checkpoints, resume from the last training state, a loss-curve PNG.
Training state (raw weights, EMA, optimiser moments, step) is safetensors + JSON, like the
checkpoints: no pickle.
"""
from __future__ import annotations

import json
import math
import subprocess
import time
from copy import deepcopy
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from robot_stack.optim_state import load_optimizer_tensors, optimizer_tensors
from robot_stack.policies.base import DEPLOY_KEYS, Policy, config_from_dict, policy_class
from robot_stack.policies.batches import PolicyBatches, split_episodes


class EMA:
    """Exponential moving average of the weights; warm-up as in diffusion_policy (decay grows with the step)."""

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


def _save_state(out: Path, step: int, policy: Policy, ema: EMA, opt: torch.optim.Optimizer, history: list) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.model.state_dict().items()})
    tensors.update(optimizer_tensors(opt, "opt"))
    tmp = out / "train_state.safetensors.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(out / "train_state.safetensors")
    (out / "train_state.json").write_text(json.dumps({"step": step, "history": history}))


def _load_state(out: Path, policy: Policy, ema: EMA, opt: torch.optim.Optimizer) -> tuple[int, list]:
    doc = json.loads((out / "train_state.json").read_text())
    tensors = load_file(str(out / "train_state.safetensors"), device=str(next(policy.parameters()).device))
    policy.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    load_optimizer_tensors(opt, tensors, "opt")
    return int(doc["step"]), list(doc["history"])


def plot_curves(history: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    val = [(h["step"], h["val_loss"]) for h in history if "val_loss" in h]
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


@torch.no_grad()
def validation_metrics(model: Policy, batches: PolicyBatches, batch_size: int, seed: int,
                       max_batches: int = 8) -> dict[str, float]:
    """Every metric of `model.loss` averaged over held-out batches, as `val_<name>` (`val_loss` the total):
    a total can hide its parts (GRIF's is mostly the alignment term, while BC is what acts)."""
    rng = np.random.default_rng(seed)
    torch_state = torch.get_rng_state()
    torch.manual_seed(seed)
    idx = rng.permutation(len(batches))[: batch_size * max_batches]
    rows = []
    for i in range(0, len(idx), batch_size):
        loss, metrics = model.loss(batches.batch(idx[i:i + batch_size], rng))
        rows.append({**{k: float(v) for k, v in metrics.items()}, "loss": float(loss)})
    torch.set_rng_state(torch_state)
    if not rows:
        return {"val_loss": float("nan")}
    return {f"val_{k}": float(np.mean([r[k] for r in rows])) for k in rows[0]}


def init_weights(policy: Policy, ema: EMA, checkpoint: Path, skip: tuple[str, ...] = ()) -> str:
    """Start from a checkpoint's weights where name and shape match (a fine-tune, or a changed head):
    the rest, and every tensor whose name starts with one of `skip`, keep their fresh initialisation (an
    ablation that must not inherit what a part learned, e.g. GRIF's language projection without alignment).
    A checkpoint of another method is an error, not a no-op."""
    doc = json.loads((checkpoint / "config.json").read_text())
    if doc.get("policy") != policy.name:
        raise ValueError(f"init_from={checkpoint} holds a {doc.get('policy')!r} policy, not {policy.name!r}")
    tensors = load_file(str(checkpoint / "model.safetensors"), device=str(next(policy.parameters()).device))
    own = policy.state_dict()
    unknown = [p for p in skip if not any(k.startswith(p) for k in own)]
    if unknown:
        raise ValueError(f"init_skip names no tensor of {policy.name!r}: {unknown}")
    taken = {k: v for k, v in tensors.items()
             if k in own and own[k].shape == v.shape and not k.startswith(tuple(skip))}
    if not taken:
        raise ValueError(f"init_from={checkpoint}: no weight matches this policy's names and shapes")
    policy.load_state_dict(taken, strict=False)
    ema.model.load_state_dict(taken, strict=False)
    fresh = sorted(set(own) - set(taken))
    return (f"initialised {len(taken)}/{len(own)} tensors from {checkpoint}"
            + (f"; fresh: {', '.join(fresh)}" if fresh else ""))


def train_config(overrides: list[str] | tuple[str, ...] = ()):
    """conf/train.yaml with command-line overrides, the policy's config resolved and validated.

    `policy=NAME` picks the method; `policy.KEY=VALUE` sets a field of its <Method>Config (no hydra `+`
    needed: the method's dataclass, not a YAML file, says which keys exist, and unknown keys or values of
    the wrong type are refused here, before any data loads)."""
    from dataclasses import asdict

    from robot_stack.config import load_config

    translated = []
    for item in overrides:
        key, _, value = item.partition("=")
        if key == "policy":
            translated.append(f"policy.name={value}")
        elif key.startswith("policy.") and key != "policy.name":
            translated.append(f"++{item}")
        else:
            translated.append(item)
    cfg = load_config("train", translated)
    values = OmegaConf.to_container(cfg.policy, resolve=True)
    name = str(values.pop("name"))
    config = config_from_dict(policy_class(name).Config, values, f"policy {name!r}")
    doc = OmegaConf.to_container(cfg, resolve=False)
    doc["policy"] = {"name": name, **asdict(config)}
    return OmegaConf.create(doc)


def policy_help() -> str:
    """The registered policies and their config keys with defaults (`robot-stack train --help`)."""
    from dataclasses import MISSING, fields

    from robot_stack.policies import discover
    lines = ["registered policies (policy=NAME) and their config keys (policy.KEY=VALUE, default shown):"]
    for name, cls in sorted(discover().items()):
        keys = [f"{f.name}={f.default if f.default is not MISSING else f.default_factory()}" for f in fields(cls.Config)]
        lines.append(f"  {name} (conditioning: {', '.join(sorted(cls.conditioning))}; deployment: "
                     f"{', '.join((*DEPLOY_KEYS, *cls.deploy_keys))})")
        lines.append("    " + " ".join(keys))
    return "\n".join(lines)


def learning_rate(cfg, step: int) -> float:
    """The step's learning rate: `constant`, or `cosine` (diffusion_policy's schedule: linear warm-up over
    `lr_warmup` steps, then a half cosine to `lr_min_ratio` x lr at `steps`). A pure function of the step,
    so a run resumed with the same `steps` continues on the same curve with nothing more saved."""
    base = float(cfg.policy.lr)
    schedule = cfg.lr_schedule
    if schedule == "constant":
        return base
    if schedule != "cosine":
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {schedule!r}")
    warmup = int(cfg.lr_warmup)
    if step < warmup:
        return base * (step + 1) / warmup
    floor = base * float(cfg.lr_min_ratio)
    progress = min(1.0, (step - warmup) / max(1, int(cfg.steps) - warmup))
    return floor + (base - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def training_device(name: str) -> torch.device:
    """`auto` takes the GPU when there is one; asking for one that is not there is an error, not a silent CPU run."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name} asked for, but torch sees no CUDA device (use device=cpu or auto)")
    return device


def train(cfg, argv: list[str] | None = None) -> dict:
    learning_rate(cfg, 0)                # a bad lr_schedule fails now, not after the data has loaded
    torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    policy_values = OmegaConf.to_container(cfg.policy, resolve=True)
    policy = policy_class(str(policy_values.pop("name"))).from_config(policy_values)
    policy.to(training_device(cfg.device))
    spec = policy.data_spec()
    train_eps, val_eps = split_episodes(cfg.data, cfg.val_fraction, cfg.seed, task=cfg.task)
    cache = int(cfg.cache_gb * 2**30)
    data = PolicyBatches(cfg.data, spec, train_eps, language_fraction=cfg.language_fraction, seed=cfg.seed,
                         cache_bytes=cache, conditioning=policy.conditioning)
    val = PolicyBatches(cfg.data, spec, val_eps, stats=data.stats, language_fraction=1.0, seed=cfg.seed,
                        cache_bytes=cache, conditioning=policy.conditioning) if val_eps else None
    policy.stats = data.stats            # the normalisers travel in every checkpoint's config.json
    c = policy.config
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=c.lr, weight_decay=c.weight_decay)
    ema = EMA(policy, c.ema_decay)
    step, history = 0, []
    if cfg.resume and (out / "train_state.json").exists():
        step, history = _load_state(out, policy, ema, opt)
        print(f"resumed from {out} at step {step}")
    elif cfg.get("init_from"):
        print(init_weights(policy, ema, Path(cfg.init_from), tuple(cfg.get("init_skip") or ())))
    manifest = {"command": "robot-stack train " + " ".join(argv or []), "policy": cfg.policy.name,
                "task": cfg.task, "data": str(cfg.data), "train_episodes": train_eps, "val_episodes": val_eps,
                **data.summary, "commit": git_commit(),
                "config": OmegaConf.to_container(cfg, resolve=True)}
    rng = np.random.default_rng(cfg.seed + step)
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.policy.name}", unit="step")
    t0, running = time.time(), []
    policy.train()
    deadline = t0 + 60 * float(cfg.max_minutes) if cfg.max_minutes else math.inf
    done = step >= cfg.steps or time.time() >= deadline
    while not done:
        for idx in np.array_split(rng.permutation(len(data)), max(1, len(data) // cfg.batch_size)):
            lr = learning_rate(cfg, step)
            for group in opt.param_groups:
                group["lr"] = lr
            loss, metrics = policy.loss(data.batch(idx[: cfg.batch_size], rng))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {float(loss)} at step {step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            opt.step()
            ema.update(policy, step)
            step += 1
            out_of_time = time.time() >= deadline
            # the last step is always checkpointed below; it is logged (and validated) only when it falls on
            # log_every or the time ran out
            done = step >= cfg.steps or out_of_time
            running.append(float(loss.detach()))
            bar.update(1)
            if step % cfg.log_every == 0 or out_of_time:
                entry = {"step": step, "loss": float(np.mean(running)), "time_s": time.time() - t0, "lr": lr,
                         **{k: float(v) for k, v in metrics.items()}}
                running = []
                if val is not None and (step % cfg.val_every == 0 or done):
                    entry.update(validation_metrics(ema.model, val, cfg.batch_size, cfg.seed))
                history.append(entry)
                bar.set_postfix(loss=f"{entry['loss']:.4f}",
                                **({"val": f"{entry['val_loss']:.4f}"} if "val_loss" in entry else {}))
            if done:
                break
            if step % cfg.save_every == 0:
                _checkpoint(out, step, policy, ema, opt, history, manifest)
            if cfg.get("keep_every") and step % cfg.keep_every == 0:
                _save_weights(out / f"checkpoint_step{step:06d}", step, ema, manifest)
    bar.close()
    _checkpoint(out, step, policy, ema, opt, history, manifest)
    final = {"checkpoint": str(out / "checkpoint"), "steps": step, "minutes": (time.time() - t0) / 60,
             "final_loss": history[-1]["loss"] if history else math.nan,
             "val_loss": next((h["val_loss"] for h in reversed(history) if "val_loss" in h), None)}
    print(json.dumps(final))
    return final


def _save_weights(path: Path, step: int, ema: EMA, manifest: dict) -> None:
    """The deployable checkpoint: EMA weights, with the run's manifest stamped with this step."""
    ema.model.save(path, extra={"manifest": {**manifest, "step": step}})


def _checkpoint(out: Path, step: int, policy: Policy, ema: EMA, opt, history: list, manifest: dict) -> None:
    _save_weights(out / "checkpoint", step, ema, manifest)
    _save_state(out, step, policy, ema, opt, history)
    (out / "history.json").write_text(json.dumps(history))
    if history:
        plot_curves(history, out / "loss.png", f"{manifest['policy']} on {manifest['task']}")
