"""Optimiser moments as flat safetensors entries (`prefix.param_index.field`): no pickle in checkpoints."""
from __future__ import annotations

import torch


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    """Every per-parameter state tensor of `opt` (Adam's step, exp_avg, exp_avg_sq) under `prefix`."""
    return {f"{prefix}.{idx}.{key}": torch.as_tensor(value).detach().cpu().contiguous().clone()
            for idx, st in opt.state_dict()["state"].items() for key, value in st.items()}


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict, prefix: str,
                           param_groups: list | None = None) -> None:
    """Restore what `optimizer_tensors` wrote; `param_groups` from the checkpoint's JSON, else the optimiser's own."""
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):          # other keys may be anything, e.g. a model's top-level "ema.log_tau"
            idx, field = key[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(idx), {})[field] = value
    opt.load_state_dict({"state": state, "param_groups": param_groups or opt.state_dict()["param_groups"]})
