"""Optimiser moments as flat safetensors entries (`name.param_index.field`): no pickle in checkpoints.

The policy/reward-classifier trainer (robot_stack.training) and the RLPD agent both save their optimisers
with these two functions. Only the per-parameter state is stored: the hyperparameters (param_groups) come
from the optimiser the loader builds from its own config, which is the one that must win on resume."""
from __future__ import annotations

import torch


def optimizer_tensors(opts: dict[str, torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
    """Every per-parameter state tensor (Adam's step, exp_avg, exp_avg_sq) of each named optimiser."""
    return {f"{name}.{idx}.{key}": torch.as_tensor(value).detach().cpu().contiguous().clone()
            for name, opt in opts.items()
            for idx, st in opt.state_dict()["state"].items() for key, value in st.items()}


def load_optimizer_tensors(opts: dict[str, torch.optim.Optimizer], tensors: dict) -> None:
    """Restore what `optimizer_tensors` wrote into optimisers built over the same parameters."""
    for name, opt in opts.items():
        state: dict = {}
        for key, value in tensors.items():
            if key.startswith(name + "."):    # other keys may be anything, e.g. a model's top-level "ema.log_tau"
                idx, field = key[len(name) + 1:].split(".", 1)
                state.setdefault(int(idx), {})[field] = value
        opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})
