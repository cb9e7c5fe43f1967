"""Optimiser moments round-trip through safetensors beside other training-state keys."""
import torch

from robot_stack.optim_state import load_optimizer_tensors, optimizer_tensors


class WithTopLevelParameter(torch.nn.Module):
    """Like GRIF: a parameter at the top of the module, so its state keys have one dot ("ema.log_tau")."""

    def __init__(self):
        super().__init__()
        self.log_tau = torch.nn.Parameter(torch.tensor(0.5))
        self.head = torch.nn.Linear(3, 2)


def _stepped(seed):
    torch.manual_seed(seed)
    model = WithTopLevelParameter()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        (model.head(torch.randn(4, 3)).sum() * model.log_tau).backward()
        opt.step()
    return model, opt


def test_moments_restore_beside_model_and_ema_keys():
    model, opt = _stepped(0)
    tensors = {**optimizer_tensors(opt, "opt"), **{f"model.{k}": v for k, v in model.state_dict().items()},
               **{f"ema.{k}": v for k, v in model.state_dict().items()}}
    assert "ema.log_tau" in tensors
    fresh, fresh_opt = _stepped(1)
    load_optimizer_tensors(fresh_opt, tensors, "opt")
    for saved, loaded in zip(opt.state_dict()["state"].values(), fresh_opt.state_dict()["state"].values()):
        for field in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(loaded[field], saved[field])
