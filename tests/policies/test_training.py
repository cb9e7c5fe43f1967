"""The training loop end to end on expert episodes: batches, EMA checkpoint, curve, resume."""
import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from robot_stack.policies import load_policy
from robot_stack.policies import actions as A
from robot_stack.policies.batches import PolicyBatches, split_episodes
from robot_stack.policies.train import train, train_config
from robot_stack.sim.expert_data import generate
from tests.policies.toy import ToyPolicy  # noqa: F401  (registers "toy")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "reach.zarr"
    report = generate("reach", "panda", 4, seed=1000, out=str(path), image_size=32)
    assert report["episodes"] == 4
    return str(path)


def test_batches_encode_the_recorded_actions_and_relabel_goals(store):
    spec = ToyPolicy(ToyPolicy.Config()).data_spec()
    train_eps, val_eps = split_episodes(store, 0.25, seed=0)
    assert sorted(train_eps + val_eps) == [0, 1, 2, 3] and len(val_eps) == 1
    data = PolicyBatches(store, spec, train_eps, language_fraction=0.5, seed=0)
    assert data.labelled.sum() == round(0.5 * len(train_eps))
    b = data.batch(np.arange(len(data)), np.random.default_rng(0))
    assert b["images"]["front"].shape == (len(data), 1, 32, 32, 3)
    # goal_final_prob is 1: every goal is its episode's final frame, and differs from the start frame
    torch.testing.assert_close(b["goal_image"], b["final_goal_image"])
    assert (b["goal_image"].float() - b["start_image"].float()).abs().mean() > 0.5
    assert all((s == "") != bool(l) for s, l in zip(b["instruction"], b["labelled"]))
    # normalised actions decode back to the recorded absolute targets
    raw = A.unnormalise(b["action"].numpy(), data.stats["action"], "meanstd")
    i, t = data.ds.window(5)
    ee = data.ds.rows_at("ee_pose", i, [t])[0]
    recorded = data.ds.rows_at("action_pose", i, [min(t + k, data.ds.last_tick(i)) for k in range(3)])
    np.testing.assert_allclose(A.decode(ee, raw[5], 0.0, 0.1).positions, recorded[:, :3], atol=1e-5)


def test_train_checkpoints_plots_and_resumes(store, tmp_path):
    overrides = ["policy.name=toy", f"data={store}", "task=reach", f"out={tmp_path}/run", "steps=40", "batch_size=8",
                 "log_every=10", "val_every=20", "save_every=20", "threads=1", "val_fraction=0.25"]
    cfg = train_config(overrides + ["keep_every=15"])
    OmegaConf.set_readonly(cfg, False)
    result = train(cfg)
    run = tmp_path / "run"
    assert result["steps"] == 40 and (run / "loss.png").stat().st_size > 1000
    history = json.loads((run / "history.json").read_text())
    assert [h["step"] for h in history] == [10, 20, 30, 40] and "val_loss" in history[1]
    # every metric of the loss is validated, not only the total (the toy's one metric is its total)
    assert history[1]["val_mse"] == pytest.approx(history[1]["val_loss"]) and "val_mse" not in history[0]
    policy = load_policy(run / "checkpoint")
    assert policy.name == "toy" and policy.stats["action"]["mean"]
    manifest = json.loads((run / "checkpoint" / "config.json").read_text())["manifest"]
    assert manifest["data"] == store and manifest["step"] == 40
    # snapshots kept along the way, each loadable and stamped with its own step
    assert sorted(p.name for p in run.glob("checkpoint_step*")) == ["checkpoint_step000015", "checkpoint_step000030"]
    snapshot = json.loads((run / "checkpoint_step000030" / "config.json").read_text())["manifest"]
    assert snapshot["step"] == 30 and load_policy(run / "checkpoint_step000015").name == "toy"
    cfg = train_config(overrides[:-7] + ["steps=60", "batch_size=8", "log_every=10", "val_every=20",
                                                 "save_every=20", "threads=1"])
    OmegaConf.set_readonly(cfg, False)
    assert train(cfg)["steps"] == 60
    history = json.loads((run / "history.json").read_text())
    assert [h["step"] for h in history] == [10, 20, 30, 40, 50, 60]     # continued, nothing repeated


def test_time_budget_stops_early_with_a_checkpoint(store, tmp_path):
    cfg = train_config(["policy.name=toy", f"data={store}", "task=reach", f"out={tmp_path}/run",
                                "steps=100000", "batch_size=8", "threads=1", "max_minutes=0.0005"])
    OmegaConf.set_readonly(cfg, False)
    result = train(cfg)
    assert 1 <= result["steps"] < 100000
    assert json.loads((tmp_path / "run" / "checkpoint" / "config.json").read_text())["manifest"]["step"] == result["steps"]


def test_asking_for_a_missing_gpu_is_an_error(store, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)   # a machine without CUDA, wherever this runs
    cfg = train_config(["policy.name=toy", f"data={store}", "task=reach", f"out={tmp_path}/run",
                                "steps=2", "threads=1", "device=cuda"])
    OmegaConf.set_readonly(cfg, False)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        train(cfg)


def test_init_from_takes_matching_weights_and_refuses_another_method(store, tmp_path):
    base = ["policy.name=toy", f"data={store}", "task=reach", "steps=5", "batch_size=8", "threads=1",
            "val_fraction=0.25"]
    cfg = train_config(base + [f"out={tmp_path}/first"])
    OmegaConf.set_readonly(cfg, False)
    train(cfg)
    first = load_policy(tmp_path / "first" / "checkpoint").state_dict()
    # a wider hidden layer: both hidden-layer tensors and the output weight change shape, the output bias does not
    cfg = train_config(base + ["steps=1", f"out={tmp_path}/second", f"init_from={tmp_path}/first/checkpoint",
                                       "policy.hidden=24", "policy.lr=0"])
    OmegaConf.set_readonly(cfg, False)
    train(cfg)
    second = load_policy(tmp_path / "second" / "checkpoint").state_dict()
    torch.testing.assert_close(second["net.2.bias"], first["net.2.bias"])   # lr 0: still the loaded values
    assert second["net.0.weight"].shape != first["net.0.weight"].shape
    # init_skip keeps a part fresh even where name and shape match; a prefix that names nothing is refused
    cfg = train_config(base + ["steps=1", f"out={tmp_path}/skip", f"init_from={tmp_path}/first/checkpoint",
                                       "init_skip=[net.2]", "policy.lr=0"])
    OmegaConf.set_readonly(cfg, False)
    train(cfg)
    skipped = load_policy(tmp_path / "skip" / "checkpoint").state_dict()
    torch.testing.assert_close(skipped["net.0.weight"], first["net.0.weight"])
    assert not torch.equal(skipped["net.2.weight"], first["net.2.weight"])
    cfg = train_config(base + ["steps=1", f"out={tmp_path}/bad", f"init_from={tmp_path}/first/checkpoint",
                                       "init_skip=[language]"])
    OmegaConf.set_readonly(cfg, False)
    with pytest.raises(ValueError, match="init_skip names no tensor"):
        train(cfg)
    doc = json.loads((tmp_path / "first" / "checkpoint" / "config.json").read_text())
    (tmp_path / "first" / "checkpoint" / "config.json").write_text(json.dumps({**doc, "policy": "beso"}))
    cfg = train_config(base + [f"out={tmp_path}/third", f"init_from={tmp_path}/first/checkpoint"])
    OmegaConf.set_readonly(cfg, False)
    with pytest.raises(ValueError, match="not 'toy'"):
        train(cfg)


def test_cosine_schedule_warms_up_decays_to_its_floor_and_resumes_on_the_curve(store, tmp_path):
    from robot_stack.policies.train import learning_rate
    cfg = train_config(["policy.name=toy", "policy.lr=1e-3", "lr_schedule=cosine", "lr_warmup=10",
                                "lr_min_ratio=0.1", "steps=110", f"data={store}"])
    lrs = [learning_rate(cfg, s) for s in range(111)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)          # linear warm-up
    assert lrs[60] == pytest.approx(0.55e-3) and lrs[110] == pytest.approx(1e-4)    # half-way, then the floor
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))                           # never rises after warm-up
    assert learning_rate(train_config(["policy.lr=1e-3", f"data={store}"]), 50) == 1e-3
    with pytest.raises(ValueError, match="lr_schedule"):
        learning_rate(train_config(["lr_schedule=linear", f"data={store}"]), 0)
    # the trainer applies it: logged lrs follow the curve across a resume
    run = ["policy.name=toy", f"data={store}", "task=reach", f"out={tmp_path}/run", "batch_size=8", "threads=1",
           "log_every=10", "save_every=20", "policy.lr=1e-3", "lr_schedule=cosine", "lr_min_ratio=0.1"]
    for steps in (20, 40):
        c = train_config(run + [f"steps={steps}"])
        OmegaConf.set_readonly(c, False)
        train(c)
    logged = {h["step"]: h["lr"] for h in json.loads((tmp_path / "run" / "history.json").read_text())}
    final = train_config(run + ["steps=40"])
    assert logged[40] == pytest.approx(learning_rate(final, 39)) and logged[40] < 0.11e-3


def test_frame_cache_budget_changes_where_frames_come_from_not_the_batches(store):
    """cache_gb: within the budget the camera streams are held decoded; below it they are re-read per episode."""
    spec = ToyPolicy(ToyPolicy.Config()).data_spec()
    held = PolicyBatches(store, spec, [0, 1, 2], seed=0)
    reread = PolicyBatches(store, spec, [0, 1, 2], seed=0, cache_bytes=1)
    assert "front_rgb" in held.ds._resident and "front_rgb" not in reread.ds._resident
    idx = np.arange(len(held))
    a, b = held.batch(idx, np.random.default_rng(3)), reread.batch(idx, np.random.default_rng(3))
    torch.testing.assert_close(a["images"]["front"], b["images"]["front"])
    torch.testing.assert_close(a["goal_image"], b["goal_image"])


def test_the_shared_loop_alone_logs_checkpoints_keeps_latest_weights_at_decay_zero_and_refuses_nan(tmp_path):
    """robot_stack.training.fit, as the reward classifier uses it: a model that is not a Policy, no validation."""
    from robot_stack.training import EMA, fit
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, 0.0)                          # decay 0: the EMA copy is the latest weights (the classifier's default)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    cfg = OmegaConf.create({"out": str(tmp_path), "steps": 4, "log_every": 2, "val_every": 2, "save_every": 3,
                            "keep_every": 2, "max_minutes": None, "progress": False})
    x, saved = torch.randn(8, 2), []
    step, history = fit(cfg, model, ema, opt, lambda: (model(x).pow(2).mean(), {"n": 8}), lr=lambda s: 0.1 / (1 + s),
                        save=lambda path, s: saved.append((path.name, s)), title="toy", desc="toy")
    assert step == 4 and [(h["step"], h["lr"], h["n"]) for h in history] == [(2, 0.05, 8.0), (4, 0.025, 8.0)]
    assert saved == [("checkpoint_step000002", 2), ("checkpoint", 3), ("checkpoint", 4)]
    assert json.loads((tmp_path / "train_state.json").read_text())["step"] == 4 and (tmp_path / "loss.png").is_file()
    for e, p in zip(ema.model.parameters(), model.parameters()):
        torch.testing.assert_close(e, p)
    cfg.steps = 10
    with pytest.raises(FloatingPointError, match="loss became nan at step 4"):
        fit(cfg, model, ema, opt, lambda: (model(x).sum() * float("nan"), {}), lr=lambda s: 0.1,
            save=lambda path, s: None, title="toy", desc="toy", start=(step, history))
