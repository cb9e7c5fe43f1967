"""Optimiser moments round-trip through safetensors beside other training-state keys."""
import torch

from robot_stack.optim_state import load_optimizer_tensors, optimizer_tensors


class WithTopLevelParameter(torch.nn.Module):
    """Like GRIF: a parameter at the top of the module, so its state keys have one dot ("ema.log_tau")."""

    def __init__(self):
        super().__init__()
        self.log_tau = torch.nn.Parameter(torch.tensor(0.5))
        self.head = torch.nn.Linear(3, 2)


def _stepped(seed, lr=1e-2):
    torch.manual_seed(seed)
    model = WithTopLevelParameter()
    opts = {"opt": torch.optim.AdamW(model.head.parameters(), lr=lr),
            "tau": torch.optim.Adam([model.log_tau], lr=lr)}
    for _ in range(3):
        for opt in opts.values():
            opt.zero_grad()
        (model.head(torch.randn(4, 3)).sum() * model.log_tau).backward()
        for opt in opts.values():
            opt.step()
    return model, opts


def test_moments_of_each_named_optimiser_restore_beside_model_and_ema_keys():
    model, opts = _stepped(0)
    tensors = {**optimizer_tensors(opts), **{f"model.{k}": v for k, v in model.state_dict().items()},
               **{f"ema.{k}": v for k, v in model.state_dict().items()}}
    assert "ema.log_tau" in tensors and "tau.0.exp_avg" in tensors and "opt.1.exp_avg_sq" in tensors
    fresh, fresh_opts = _stepped(1, lr=5e-3)
    load_optimizer_tensors(fresh_opts, tensors)
    for name, opt in opts.items():
        for saved, loaded in zip(opt.state_dict()["state"].values(),
                                 fresh_opts[name].state_dict()["state"].values()):
            for field in ("exp_avg", "exp_avg_sq", "step"):
                torch.testing.assert_close(loaded[field], saved[field])
        # the hyperparameters are the loading optimiser's (its config decides), not the saved ones
        assert fresh_opts[name].param_groups[0]["lr"] == 5e-3
    assert torch.equal(fresh_opts["tau"].state_dict()["state"][0]["exp_avg"],
                       opts["tau"].state_dict()["state"][0]["exp_avg"])
