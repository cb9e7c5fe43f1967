"""The RLPD details that make it RLPD: subset targets, truncation, the gripper critic's double-DQN
target, symmetric sampling, and checkpoints that restore exactly."""
from collections import Counter

import numpy as np
import pytest
import torch

from robot_stack.learner.rlpd import RLPDAgent, RLPDConfig, to_tensors
from robot_stack.learner.roles import Learner, LearnerSettings
from robot_stack.learner.spaces import SpecError

from tests.learner.helpers import IMAGE_SPEC, SPEC, episode, obs, small_agent


def _batch(n: int, reward=0.0, terminated=0.0, spec=SPEC) -> dict:
    stack = lambda v: {k: np.stack([obs(spec, v)[k]] * n) for k in obs(spec, v)}   # noqa: E731
    return to_tensors({"obs": stack(0.0), "next_obs": stack(1.0), "action": np.zeros((n, 3), np.float32),
                       "grip": np.ones(n, np.int64), "reward": np.full(n, reward, np.float32),
                       "terminated": np.full(n, terminated, np.bool_), "truncated": np.zeros(n, np.bool_),
                       "grasp_penalty": np.zeros(n, np.float32)})


def _constant_critics(agent: RLPDAgent, values) -> None:
    """Make target critic i output values[i] for every input."""
    out = agent.target["critic"].out
    with torch.no_grad():
        out.weight.zero_()
        out.bias.copy_(torch.tensor(values, dtype=torch.float32).view(-1, 1, 1))


def test_target_is_the_minimum_over_a_random_subset_of_two_critics():
    agent = small_agent(num_critics=4, critic_subset=2, backup_entropy=False, discount=0.5)
    _constant_critics(agent, [1.0, 2.0, 3.0, 4.0])
    seen = Counter()
    for _ in range(600):
        target = agent.critic_target(_batch(2, reward=0.25))
        assert torch.allclose(target, target[0].expand_as(target))
        seen[round(float(target[0]) - 0.25, 4) / 0.5] += 1
    # min over a random pair of {1, 2, 3, 4}: 1 in 3/6 of pairs, 2 in 2/6, 3 in 1/6, never 4 (the max)
    assert set(seen) == {1.0, 2.0, 3.0}
    assert seen[1.0] > seen[2.0] > seen[3.0] > 40


def test_subset_of_all_critics_is_the_ensemble_minimum():
    agent = small_agent(num_critics=3, critic_subset=3, backup_entropy=False, discount=1.0)
    _constant_critics(agent, [5.0, -2.0, 7.0])
    assert torch.allclose(agent.critic_target(_batch(4)), torch.full((4,), -2.0))


def test_truncation_bootstraps_and_termination_does_not():
    agent = small_agent(num_critics=2, critic_subset=2, backup_entropy=False, discount=0.9)
    _constant_critics(agent, [10.0, 10.0])
    batch = _batch(2, reward=1.0)
    batch["truncated"] = torch.tensor([True, True])           # time limit: still bootstraps
    assert torch.allclose(agent.critic_target(batch), torch.full((2,), 1.0 + 0.9 * 10.0))
    batch["terminated"] = torch.tensor([True, False])
    assert torch.allclose(agent.critic_target(batch), torch.tensor([1.0, 10.0]))


def test_entropy_backup_subtracts_alpha_log_pi():
    with_backup = small_agent(num_critics=2, backup_entropy=True, init_temperature=1.0, discount=1.0)
    _constant_critics(with_backup, [0.0, 0.0])
    torch.manual_seed(0)
    target = with_backup.critic_target(_batch(64))
    assert target.std() > 0      # -log pi of sampled actions varies; without the backup the target is constant 0


def test_gripper_target_is_double_dqn():
    agent = small_agent(discount=1.0, augment_pad=0)
    with torch.no_grad():
        online, target = agent.grasp[-1], agent.target["grasp"][-1]
        online.weight.zero_(); online.bias.copy_(torch.tensor([0.0, 1.0, 3.0]))      # online picks "close"
        target.weight.zero_(); target.bias.copy_(torch.tensor([10.0, 20.0, 5.0]))    # target's max would be 20
    batch = _batch(3, reward=0.5)
    batch["grasp_penalty"] = torch.tensor([0.0, -0.02, 0.0])
    batch["terminated"] = torch.tensor([False, False, True])
    assert torch.allclose(agent.grasp_target(batch), torch.tensor([5.5, 5.48, 0.5]))


def test_batches_are_half_demo_half_online():
    agent = small_agent(batch_size=64, demo_fraction=0.5)
    learner = Learner(agent, episode(SPEC, "demo", 30, reward=7.0), LearnerSettings(buffer_capacity=1000))
    for t in episode(SPEC, "online", 30, start=100.0):
        assert learner.ingest(t)
    batch = learner.batch()
    assert len(batch["reward"]) == 64
    assert int((batch["reward"] == 7.0).sum()) == 32
    assert np.all(batch["obs"]["state"][batch["reward"] == 0.0] >= 100.0)


def test_without_demos_batches_are_all_online():
    learner = Learner(small_agent(batch_size=32), [], LearnerSettings(buffer_capacity=100))
    for t in episode(SPEC, "online", 5):
        learner.ingest(t)
    assert len(learner.batch()["reward"]) == 32


def test_interventions_go_to_both_buffers():
    learner = Learner(small_agent(), [], LearnerSettings(buffer_capacity=100))
    for t in episode(SPEC, "a", 4) + episode(SPEC, "b", 3, intervention=True):
        learner.ingest(t)
    assert len(learner.online_buffer) == 7 and len(learner.demo_buffer) == 3


@pytest.mark.parametrize("corrupt", ["nan_state", "wrong_shape", "nan_action", "big_action", "bad_grip", "camera"])
def test_malformed_transitions_are_counted_and_never_written(corrupt):
    learner = Learner(small_agent(), [], LearnerSettings(buffer_capacity=100))
    t = episode(SPEC, "a", 1)[0]
    if corrupt == "nan_state":
        t.obs["state"][2] = np.nan
    elif corrupt == "wrong_shape":
        t.next_obs["state"] = np.zeros(6, np.float32)
    elif corrupt == "nan_action":
        t.action[0] = np.nan
    elif corrupt == "big_action":
        t.action[0] = 3.0
    elif corrupt == "bad_grip":
        t.grip = 5
    else:
        t.obs["front"] = np.zeros((16, 16, 3), np.uint8)      # a camera this spec does not have
    assert not learner.ingest(t)
    assert len(learner.online_buffer) == 0 and sum(learner.rejected.values()) == 1


def test_update_moves_critics_toward_the_reward_and_runs_with_images():
    torch.manual_seed(0)
    agent = small_agent(IMAGE_SPEC, batch_size=8, augment_pad=2, critic_actor_ratio=2)
    batch = _batch(8, reward=1.0, terminated=1.0, spec=IMAGE_SPEC)
    first = agent.update(batch)["critic_loss"]
    for _ in range(30):
        last = agent.update(batch)
    assert last["critic_loss"] < first
    assert agent.updates == 31 and set(last) >= {"critic_loss", "grasp_loss", "actor_loss", "alpha", "entropy"}


def test_checkpoint_restores_networks_optimisers_and_counts(tmp_path):
    agent = small_agent()
    for _ in range(3):
        agent.update(_batch(16, reward=1.0))
    agent.save(tmp_path / "a")
    back = RLPDAgent.load(tmp_path / "a")
    assert back.updates == 3 and back.fingerprint() == agent.fingerprint()
    for (k, v), (k2, v2) in zip(agent.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert torch.equal(agent.critic_opt.state_dict()["state"][0]["exp_avg"],
                       back.critic_opt.state_dict()["state"][0]["exp_avg"])
    torch.manual_seed(1)
    a = agent.update(_batch(16, reward=1.0))
    torch.manual_seed(1)
    b = back.update(_batch(16, reward=1.0))
    assert a == pytest.approx(b, rel=1e-5)


def test_checkpoint_errors_are_clear(tmp_path):
    small_agent().save(tmp_path / "a")
    (tmp_path / "a" / "agent.json").write_text("{not json")
    with pytest.raises(SpecError, match="agent.json"):
        RLPDAgent.load(tmp_path / "a")
    with pytest.raises(SpecError, match="unknown RLPD config keys"):
        RLPDConfig.from_dict({"num_critic": 3})


def test_policy_weights_with_the_wrong_shape_change_nothing():
    agent, other = small_agent(), small_agent(hidden=(16, 16))
    before = {k: v.clone() for k, v in agent.policy_state().items()}
    with pytest.raises(SpecError):
        agent.load_policy_state(other.policy_state())
    assert all(torch.equal(v, agent.policy_state()[k]) for k, v in before.items())


def test_state_is_standardised_with_the_demo_statistics_and_the_stats_travel_with_the_policy_weights():
    demos = episode(SPEC, "demo", 30, start=10.0)          # states 10 .. 40 in every entry
    learner = Learner(small_agent(), demos, LearnerSettings(buffer_capacity=100))
    encoder = learner.agent.encoder
    states = np.arange(10.0, 41.0)
    assert torch.allclose(encoder.state_mean, torch.full((5,), states.mean()), atol=1e-4)
    assert torch.allclose(encoder.state_std, torch.full((5,), states.std()), atol=1e-4)
    centre = {"state": torch.full((1, 5), float(states.mean()))}
    assert torch.allclose(encoder(centre), torch.zeros(1, 5), atol=1e-5)
    assert torch.equal(learner.agent.target["encoder"].state_mean, encoder.state_mean)
    actor_side = small_agent()
    actor_side.load_policy_state(learner.agent.policy_state())
    assert torch.equal(actor_side.encoder(centre), encoder(centre))
    raw = Learner(small_agent(normalize_state=False), demos, LearnerSettings(buffer_capacity=100)).agent
    assert torch.equal(raw.encoder(centre), centre["state"])


def _fixed_actor(agent: RLPDAgent, mean_action: float) -> None:
    """Make the actor's deterministic action tanh(bias) = mean_action for every input."""
    with torch.no_grad():
        agent.actor.mean.weight.zero_()
        agent.actor.mean.bias.fill_(float(np.arctanh(mean_action)))


def test_bc_loss_counts_demo_rows_only_and_the_q_filter_drops_rows_where_the_policy_is_better():
    agent = small_agent(bc_q_filter=True)
    _fixed_actor(agent, 0.5)
    batch = _batch(4)
    batch["action"] = torch.tensor([[0.0] * 3, [1.0] * 3, [0.5] * 3, [-1.0] * 3])
    batch["demo"] = torch.tensor([True, True, False, False])
    features = agent.encoder(batch["obs"])
    # rows 0 and 1 are demos: squared errors 3 * 0.25 and 3 * 0.25; online rows 2, 3 never count
    loss, kept = agent.bc_loss(features, batch, torch.full((4,), -1e6))      # policy rated below every demo
    assert loss.item() == pytest.approx(0.75, rel=1e-5) and kept == 1.0
    loss, kept = agent.bc_loss(features, batch, torch.full((4,), 1e6))       # policy rated above every demo
    assert loss.item() == 0.0 and kept == 0.0
    agent.cfg.bc_q_filter = False
    loss, kept = agent.bc_loss(features, batch, torch.full((4,), 1e6))
    assert loss.item() == pytest.approx(0.75, rel=1e-5) and kept == 1.0


def test_grasp_margin_loss_is_dqfd_large_margin_on_demo_rows():
    agent = small_agent(grasp_margin=0.05)
    with torch.no_grad():
        agent.grasp[-1].weight.zero_()
        agent.grasp[-1].bias.copy_(torch.tensor([0.0, 1.0, 0.98]))           # Q(open, stay, close)
    batch = _batch(3)
    batch["grip"] = torch.tensor([2, 1, 0])
    batch["demo"] = torch.tensor([True, True, False])
    features = agent.encoder(batch["obs"])
    # close: max(0.05, 1.05, 0.98) - 0.98 = 0.07; stay: max(0.05, 1.0, 1.03) - 1.0 = 0.03; row 2 is online
    assert agent.grasp_margin_loss(features, batch).item() == pytest.approx(0.05, abs=1e-6)


def test_demo_losses_train_the_actor_and_gripper_toward_the_demo_actions():
    torch.manual_seed(0)
    agent = small_agent(bc_weight=10.0, bc_q_filter=False, grasp_margin_weight=1.0, batch_size=16)
    batch = _batch(16)
    batch["action"] = torch.full((16, 3), 0.6)
    batch["grip"] = torch.full((16,), 2)
    batch["demo"] = torch.ones(16, dtype=torch.bool)
    for _ in range(150):
        agent.update(batch)
    features = agent.encoder(batch["obs"])
    action, _ = agent.actor(features, deterministic=True)
    assert torch.allclose(action, torch.full_like(action, 0.6), atol=0.1)
    assert bool((agent.grasp(features).argmax(-1) == 2).all())


@pytest.mark.parametrize("n", [30, 130])      # part-filled, and wrapped round a capacity of 100
def test_replay_buffer_saves_only_what_it_holds_and_restores_exactly(tmp_path, n):
    from robot_stack.learner.replay import ReplayBuffer
    buf = ReplayBuffer(IMAGE_SPEC, 3, capacity=100)
    for i in range(0, n, 10):
        for t in episode(IMAGE_SPEC, f"e{i}", 10, start=float(i)):
            buf.add(t)
    buf.save(tmp_path / "b")
    size = (tmp_path / "b.safetensors").stat().st_size
    full = buf.nbytes()
    assert size < full / 2 if n == 30 else size > full / 2
    back = ReplayBuffer.load(tmp_path / "b", IMAGE_SPEC)
    assert back.added == buf.added and back.obs_written == buf.obs_written and len(back) == len(buf)
    a, b = buf.sample(64, np.random.default_rng(3)), back.sample(64, np.random.default_rng(3))
    assert all(np.array_equal(a[k], b[k]) for k in a if k not in ("obs", "next_obs"))
    assert all(np.array_equal(a[o][k], b[o][k]) for o in ("obs", "next_obs") for k in a[o])
