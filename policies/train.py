"""`robot-stack train policy=NAME task=T data=STORE ...`: the one training loop for every policy.

AdamW on `policy.loss(batch)` in robot_stack.training's loop (EMA weights as the deployed checkpoint,
resume, loss-curve PNG), which the reward classifier shares; this module adds what is the policies'
own: the config (`policy=NAME`, `policy.KEY=VALUE`), data, learning-rate schedule, validation of every
loss metric on held-out episodes, and starting from another checkpoint's weights.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from robot_stack.policies.base import DEPLOY_KEYS, Policy, config_from_dict, policy_class
from robot_stack.policies.batches import PolicyBatches, split_episodes
from robot_stack.training import EMA, fit, git_commit, load_state, minibatches, training_device


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
    step, history = load_state(out, policy, ema, opt) if cfg.resume else (0, [])
    if not step and cfg.get("init_from"):
        print(init_weights(policy, ema, Path(cfg.init_from), tuple(cfg.get("init_skip") or ())))
    manifest = {"command": "robot-stack train " + " ".join(argv or []), "policy": cfg.policy.name,
                "task": cfg.task, "data": str(cfg.data), "train_episodes": train_eps, "val_episodes": val_eps,
                **data.summary, "commit": git_commit(),
                "config": OmegaConf.to_container(cfg, resolve=True)}
    rng = np.random.default_rng(cfg.seed + step)
    batches = minibatches(len(data), cfg.batch_size, rng)
    t0 = time.time()
    step, history = fit(
        cfg, policy, ema, opt, lambda: policy.loss(data.batch(next(batches), rng)),
        lr=lambda s: learning_rate(cfg, s), clip_grad=1.0, start=(step, history),
        validate=(lambda m: validation_metrics(m, val, cfg.batch_size, cfg.seed)) if val is not None else None,
        save=lambda path, s: ema.model.save(path, extra={"manifest": {**manifest, "step": s}}),
        title=f"{cfg.policy.name} on {cfg.task}", desc=f"train {cfg.policy.name}")
    final = {"checkpoint": str(out / "checkpoint"), "steps": step, "minutes": (time.time() - t0) / 60,
             "final_loss": history[-1]["loss"] if history else math.nan,
             "val_loss": next((h["val_loss"] for h in reversed(history) if "val_loss" in h), None)}
    print(json.dumps(final))
    return final
