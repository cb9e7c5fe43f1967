"""SwitchVLA: flow matching against hand-computed values, run-time switching from the policy's own contact
estimate, the switch conditioning kind, and a tiny model trained and switched mid-episode in the twin."""
import numpy as np
import pytest
import torch

from robot_stack.policies.switchvla import flow

A, B = "put the red block in the bowl", "put the green block in the bowl"
TINY = dict(image_size=32, channels=(8, 16), width=32, layers=1, heads=2, expert_layers=1, grid=2,
            action_horizon=4, flow_steps=2)


# --- flow matching ------------------------------------------------------------------------------
def test_flow_training_pair_by_hand():
    actions = torch.tensor([[[1.0, 2.0]]])
    noise = torch.tensor([[[0.0, 1.0]]])
    x, v = flow.noisy_actions(actions, noise, torch.tensor([0.25]))
    assert torch.allclose(x, torch.tensor([[[0.75, 1.75]]]))         # 0.25 * noise + 0.75 * actions
    assert torch.allclose(v, torch.tensor([[[-1.0, -1.0]]]))         # noise - actions
    x1, _ = flow.noisy_actions(actions, noise, torch.tensor([1.0]))
    x0, _ = flow.noisy_actions(actions, noise, torch.tensor([0.0]))
    assert torch.equal(x1, noise) and torch.equal(x0, actions)
    s = flow.training_sigmas(10000, torch.Generator().manual_seed(0))
    assert 0.001 <= float(s.min()) and float(s.max()) <= 1.0
    assert abs(float(s.mean()) - (0.001 + 0.999 * 0.6)) < 0.01       # E[Beta(1.5, 1)] = 0.6
    assert float((s > 0.5).float().mean()) > 0.6                       # weighted to the noisy end, as pi0


def test_flow_sampler_by_hand():
    noise = torch.tensor([[[1.0, -2.0]]])
    # v(x) = x on the grid 1, 0.5, 0: x -> x * (1 - 0.5) * (1 - 0.5)
    assert torch.allclose(flow.sample(lambda x, s: x, noise, 2), 0.25 * noise)
    # v = const c: x(0) = noise - c, whatever the number of steps
    c = torch.tensor([[[0.5, 0.5]]])
    assert torch.allclose(flow.sample(lambda x, s: c.expand_as(x), noise, 3), noise - c)
    # the exact velocity of one data point recovers it
    a = torch.tensor([[[0.3, 0.7]]])
    assert torch.allclose(flow.sample(lambda x, s: noise - a, noise, 5), a, atol=1e-6)
    seen = []
    flow.sample(lambda x, s: seen.append(float(s[0])) or torch.zeros_like(x), noise, 4)
    assert np.allclose(seen, [1.0, 0.75, 0.5, 0.25])


# --- the conditioning kind ----------------------------------------------------------------------
def test_the_switch_kind_records_the_replaced_instruction_and_forgets_it_per_episode():
    from robot_stack.policies.conditioning import get_kind
    kind = get_kind("switch")
    assert kind.on_update({"instruction": A}, {"instruction": B}) == {"previous_instruction": A}
    assert kind.on_update({"instruction": A}, {"instruction": A}) == {}                 # the same text again
    assert kind.on_update({}, {"instruction": A}) == {}          # the first instruction: the episode start pairs it
    assert kind.on_update({"instruction": A}, {"instruction": None}) == {"previous_instruction": None}
    assert kind.on_update({"instruction": None, "previous_instruction": None}, {"instruction": B}) == \
        {"previous_instruction": B}                                     # after a clear: a fresh start
    assert kind.on_update({"instruction": A}, {"goal_image": None}) == {}
    assert kind.on_episode_start({"instruction": B, "previous_instruction": A}, {}, "front") == \
        {"previous_instruction": B}
    from robot_stack.types import Task
    assert "switch" in Task(instruction=A, previous_instruction=A).provides()
    assert "switch" not in Task(instruction=A).provides()                # a plain instruction task is not one


@pytest.mark.parametrize("when, contact_at, expect", [("pre_contact", None, 5), ("in_contact", 12, 22),
                                                      ("post_contact", None, 30), ("17", None, 17)])
def test_eval_switches_at_the_asked_point(when, contact_at, expect):
    from robot_stack.policies.conditioning import EpisodeContext, get_kind
    kind = get_kind("switch")
    options = {"instruction": "put the {object} in the {target}", "switch_to": "put the {other_object} in the {target}",
               "switch_at": when}
    kind.check_options(options)
    ctx = EpisodeContext(seed=4, task="pick_place", robot="panda", image_size=32,
                         params={"object": "red block", "color": "red", "target": "bowl"}, options=options)
    assert kind.episode_fields(ctx) == {"instruction": "put the red block in the bowl",
                                        "previous_instruction": "put the red block in the bowl"}
    switched = None
    for step in range(1, 60):
        phase = "in_contact" if contact_at is not None and step >= contact_at else "pre_contact"
        change = kind.during_episode(ctx, step, {"contact_phase": phase, "success": step >= 30})
        if change:
            assert switched is None, "one switch per episode"
            switched = step
            assert change == {"instruction": "put the green block in the bowl",   # seed 4: the other blocks' first
                              "previous_instruction": "put the red block in the bowl"}
    assert switched == expect
    assert kind.record(ctx)["switched_at"] == expect
    with pytest.raises(ValueError):
        kind.check_options({**options, "switch_at": "mid_air"})
    with pytest.raises(ValueError):
        kind.check_options({**options, "switch_to": "the {nothing}"})


def test_switched_success_is_the_new_instructions_predicate():
    from robot_stack.policies.conditioning import EpisodeContext, get_kind
    from robot_stack.sim.env import make_env

    kind = get_kind("switch")
    env = make_env("pick_place", cameras=())
    _, info = env.reset(seed=3)
    options = {"instruction": "put the {object} in the {target}", "switch_to": "put the {other_object} in the {target}",
               "switch_at": "1"}
    ctx = EpisodeContext(seed=3, task="pick_place", robot="panda", image_size=32, params=info["task_params"],
                         options=options)
    kind.episode_fields(ctx)
    assert kind.success(ctx, env.scene, env.task) is False           # before the switch, never
    kind.during_episode(ctx, 1, {"contact_phase": "pre_contact", "success": False})
    assert kind.success(ctx, env.scene, env.task) is False           # the other block is not in the bowl
    import mujoco

    from robot_stack.policies.conditioning.switch import other_color
    bowl = env.scene.body_pose("bowl")[0]
    env.scene.set_free_body(f"{other_color(info['task_params'], 3)}_block", [bowl[0], bowl[1], 0.03])
    for _ in range(200):
        mujoco.mj_step(env.scene.model, env.scene.data)
    assert kind.success(ctx, env.scene, env.task) is True
    env.close()


# --- the policy ---------------------------------------------------------------------------------
def _policy(**over):
    from robot_stack.policies import policy_class
    cls = policy_class("switchvla")
    p = cls(cls.Config(**{**TINY, **over}),
            stats={"action": {"mean": [0.0] * 7, "std": [1.0] * 7}, "proprio": {"mean": [0.0] * 8, "std": [1.0] * 8},
                   "text": {"mean": [0.0] * 384, "scale": 0.05}})
    return p.eval()


def _obs(stamp, gripper=0.08, contact="post_contact"):
    """An observation; its `contact` (a simulator's label where one is known) must never reach the policy's state."""
    from robot_stack.types import Observation
    rng = np.random.default_rng(int(stamp * 10))
    images = {c: rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for c in ("front", "wrist")}
    return Observation(stamp=stamp, images=images,
                       ee_pose=np.array([0.4, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0]), gripper=gripper, contact=contact)


def _force_contact(policy, on: bool):
    with torch.no_grad():
        policy.net.contact_head.weight.zero_()
        policy.net.contact_head.bias.copy_(torch.tensor([0.0, 10.0] if on else [10.0, 0.0]))


def test_run_time_switching_follows_the_policys_own_contact_estimate():
    """In contact at the switch: rollback until the estimate says released, then advance, and forward again once
    the new task's contact begins. The observation carries no contact: only the policy's estimate is used."""
    from robot_stack.types import Observation, Task
    p = _policy()
    p.reset(Task(instruction=A, previous_instruction=A))
    _force_contact(p, True)
    p.act(_obs(0.0))
    assert p.state.contact and p.status()["switch_mode_rule"] == "forward"
    p.update_task(Task(instruction=B, previous_instruction=A))
    assert len(p._history) == 1 and p.status()["switch_mode_rule"] == "rollback"    # history kept, not a reset
    p.act(_obs(0.1))
    assert (p.state.previous, p.state.current) == (A, B) and p.status()["switch_mode_rule"] == "rollback"
    _force_contact(p, False)
    p.act(_obs(0.2, contact="in_contact"))
    assert p.state.released and p.status()["switch_mode_rule"] == "advance"
    _force_contact(p, True)
    p.act(_obs(0.3))
    assert p.state.previous == p.state.current == B and p.status()["switch_mode_rule"] == "forward"
    assert p.status()["switch_mode"] in ("forward", "rollback", "advance") and p.status()["switches"] == "1"
    # out of contact at the switch: straight to advance; switching back to the first task ends the switch
    p.reset(Task(instruction=A, previous_instruction=A))
    _force_contact(p, False)
    p.act(_obs(0.0))
    p.update_task(Task(instruction=B))
    assert p.status()["switch_mode_rule"] == "advance"
    p.update_task(Task(instruction=A))
    assert p.status()["switch_mode_rule"] == "forward"


def test_the_estimate_is_refined_by_the_gripper_an_empty_closed_hand_holds_nothing():
    from robot_stack.types import Task
    p = _policy()
    p.reset(Task(instruction=A, previous_instruction=A))
    _force_contact(p, True)                                         # the head says contact whatever it sees
    p.act(_obs(0.0, gripper=0.0372))                                # fingers stopped on a block
    assert p.state.contact
    p.act(_obs(0.1, gripper=0.001))                                 # closed on nothing: a missed grasp
    assert not p.state.contact and p.state.contact_prob > 0.99
    p.update_task(Task(instruction=B))
    assert p.status()["switch_mode_rule"] == "advance"              # nothing to put back


def test_the_gripper_rule_can_stand_in_for_the_estimate():
    p = _policy(contact_source="gripper_rule")
    from robot_stack.types import Task
    p.reset(Task(instruction=A, previous_instruction=A))
    _force_contact(p, True)                                         # the head says contact; the rule decides
    p.act(_obs(0.0, gripper=0.08))
    assert not p.state.contact
    p.state.command = 1.0
    p.act(_obs(0.1, gripper=0.037))
    p.state.command = 1.0
    p.act(_obs(0.2, gripper=0.0372))
    assert p.state.contact


def test_tiny_switchvla_trains_on_sibling_demos_and_switches_mid_episode(tmp_path):
    """Ordinary demos (one per block of a scene) -> forward/rollback/advance batches -> a few training steps ->
    a saved checkpoint -> one twin episode switched to another block at step 3, through eval's sim backend."""
    from robot_stack.data import EpisodeStore
    from robot_stack.evaluate import _run_sim
    from robot_stack.policies import load_policy
    from robot_stack.policies.batches import PolicyBatches
    from robot_stack.policies.switchvla.demos import collect
    from robot_stack.policies.train import train, train_config

    store = tmp_path / "pp.zarr"
    assert collect(str(store), 1, seed=1000, image_size=32)["episodes"] == 3
    with EpisodeStore.open(store) as s:                               # ordinary demos: one task, one instruction each
        metas = [s.metadata(k) for k in range(s.num_episodes)]
    assert len({m["layout"] for m in metas}) == 1 and len({m["instruction"] for m in metas}) == 3
    assert all(m["params"]["color"] in m["instruction"] and "switch" not in m for m in metas)
    arch = [f"policy.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in TINY.items()]
    train(train_config(["policy=switchvla", f"data={store}", "task=pick_place", f"out={tmp_path}/run", "steps=4",
                        "batch_size=8", "threads=1", "val_fraction=0", "log_every=2", *arch]))
    policy = load_policy(tmp_path / "run" / "checkpoint")
    from robot_stack.policies.grif import language               # the instructions centred, at unit spread
    t = policy.stats["text"]
    e = (language.embed(sorted(m["instruction"] for m in metas)).numpy() - np.array(t["mean"])) / t["scale"]
    assert abs(float(np.sqrt((e ** 2).mean())) - 1.0) < 1e-4 and np.abs(e.mean(0)).max() < 1e-5
    batches = PolicyBatches(store, policy.data_spec(), [0, 1, 2], stats=policy.stats, conditioning=policy.conditioning)
    b = batches.batch(np.arange(len(batches)), np.random.default_rng(0))
    assert set(b["mode"].tolist()) == {0, 1, 2}
    loss, metrics = policy.loss(b)
    assert torch.isfinite(loss) and {"flow", "mode_ce", "contact_ce"} <= set(metrics)
    options = {"instruction": "move the {color} cube to the {target}",
               "switch_to": "now the {other_color} one into the {target} instead", "switch_at": "3"}
    records = _run_sim("switchvla", policy, "pick_place", "panda", [5], "switch", options, None, execute_steps=2)
    assert records[0]["switched_at"] == 3 and records[0]["steps"] > 3
    runs = [r.rsplit(" x", 1) for r in records[0]["modes"].split(" > ")]    # the policy's mode at every step
    assert sum(int(n) for _, n in runs) == records[0]["steps"] and {m for m, _ in runs} <= {"forward", "rollback",
                                                                                              "advance"}
    from robot_stack.policies.conditioning import get_kind
    line = get_kind("switch").describe(records[0])
    assert "instead" in line and "at step 3" in line and records[0]["modes"] in line
    assert policy.state.switches == 1 and "instead" in policy.state.current
    with EpisodeStore.open(store) as s:
        s.metadata(0)
    bad = [{**metas[0], "switch_to": B}]
    with pytest.raises(ValueError, match="records a switch"):
        from robot_stack.policies.conditioning import get_kind
        get_kind("switch").prepare(batches, bad)


def test_an_instruction_policy_is_evaluated_on_switches_as_a_baseline_but_not_a_goal_image_one():
    from types import SimpleNamespace

    from robot_stack.evaluate import choose_conditioning
    options = {"instruction": "put the {object} in the {target}", "switch_to": "the {other_object} instead",
               "switch_at": "in_contact"}
    grif_like = SimpleNamespace(name="grif", conditioning=frozenset({"goal_image", "instruction"}))
    assert choose_conditioning(grif_like, options, "switch") == "switch"
    with pytest.raises(ValueError, match="accepts"):
        choose_conditioning(SimpleNamespace(name="beso", conditioning=frozenset({"goal_image"})), options, "switch")
