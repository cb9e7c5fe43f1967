"""Demos from a real episode store, the actor's intervention path, and the in-process online loop
(curve, checkpoint, resume) in the twin."""
import json
import shutil

import numpy as np
import pytest

from robot_stack.config import load_config
from robot_stack.learner.demos import demo_transitions
from robot_stack.learner.loop import run
from robot_stack.learner.roles import Actor, Learner, LearnerSettings
from robot_stack.learner.spaces import GRIP_CLOSE, GRIP_OPEN, GRIP_STAY, ActionSpec, ObsSpec, env_action, policy_action
from robot_stack.sim.expert_data import generate
from tests.learner.helpers import SPEC, obs, small_agent

FAST = ["+agent.hidden=[32,32]", "+agent.grasp_hidden=[32]", "agent.batch_size=16", "agent.num_critics=2",
        "learning_starts=16", "eval.episodes=1", "eval.final_episodes=2", "threads=1"]


@pytest.fixture(scope="module")
def lift_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("demos") / "lift.zarr"
    generate("lift", "panda", 2, 5000, str(path), image_size=32)
    return path


def test_demos_end_at_first_success_with_the_expert_gripper_actions(lift_store):
    spec = ObsSpec(("ee_pose", "gripper", "task_state"), 15, ("front",), 32)
    demos = demo_transitions(str(lift_store), spec, ActionSpec(), penalty=-0.02)
    episodes = {t.episode for t in demos}
    assert episodes == {"demo0", "demo1"}
    for name in episodes:
        steps = [t for t in demos if t.episode == name]
        assert [t.step for t in steps] == list(range(len(steps)))
        assert steps[-1].terminated and steps[-1].reward == 1.0 and not any(t.terminated for t in steps[:-1])
        assert [t.grip for t in steps].count(GRIP_CLOSE) == 1 and GRIP_OPEN not in [t.grip for t in steps]
        assert sum(t.grasp_penalty for t in steps) == pytest.approx(-0.02)      # the one close changed the gripper
        for a, b in zip(steps, steps[1:]):
            np.testing.assert_array_equal(a.next_obs["state"], b.obs["state"])
        assert steps[0].obs["front"].shape == (32, 32, 3)


def test_demo_actions_replayed_in_the_agents_action_space_reproduce_the_demos(lift_store):
    """The actions the learner is taught, executed through DeltaAction on the demo's seed, lift the block:
    re-expressed against the expert's previous target instead, clipped steps left the grasp too high."""
    from robot_stack.data import EpisodeStore
    from robot_stack.sim.env import DeltaAction, make_env

    spec, action_spec = ObsSpec(("ee_pose", "gripper", "task_state"), 15), ActionSpec()
    demos = demo_transitions(str(lift_store), spec, action_spec)
    env = DeltaAction(make_env("lift", cameras=()), 0.02, 0.1)
    env.unwrapped.arm.log_warnings = False
    with EpisodeStore.open(lift_store) as store:
        seeds = {f"demo{k}": store.metadata(k)["seed"] for k in range(store.num_episodes)}
    clipped = 0
    for name, seed in seeds.items():
        env.reset(seed=seed)
        gripper, success = 0.0, False
        for t in [t for t in demos if t.episode == name]:
            clipped += int(np.any(np.abs(t.action) >= 1.0))
            action, gripper = env_action(t.action, t.grip, action_spec, gripper)
            success = env.step(action)[-1]["success"]
            if success:
                break
        assert success, f"{name} (seed {seed}) did not reproduce"
    assert clipped > 0          # the expert outruns 2 cm per step somewhere: the case the set point tracking is for
    env.close()


def test_gripper_actions_round_trip():
    spec = ActionSpec((0, 1, 2), True)
    for grip, before, after in ((GRIP_CLOSE, 0.0, 1.0), (GRIP_OPEN, 1.0, 0.0), (GRIP_STAY, 1.0, 1.0)):
        executed, held = env_action(np.zeros(3), grip, spec, before)
        assert held == after
        _, back, _ = policy_action(executed, spec, before)
        assert back == grip


def test_an_intervention_replaces_the_policy_action_and_is_flagged():
    agent = small_agent()
    actor = Actor(agent, seed=0, grasp_penalty=-0.02)
    learner = Learner(agent, [], LearnerSettings(buffer_capacity=100))
    actor.reset()
    o = obs(SPEC, 0.0)
    _, chosen = actor.act(o)
    human = np.array([-1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 1.0])      # the operator moves and closes the gripper
    t = actor.transition(o, chosen, 0.0, obs(SPEC, 1.0), False, False, {"intervention": True, "executed_action": human})
    assert t.intervention and t.grip == GRIP_CLOSE and t.grasp_penalty == -0.02
    np.testing.assert_allclose(t.action, [-1.0, 0.5, 0.0])
    assert actor.gripper_cmd == 1.0                      # the policy continues from the gripper the human left
    assert learner.ingest(t) and len(learner.demo_buffer) == 1 and len(learner.online_buffer) == 1


def test_online_loop_writes_curve_and_checkpoint_and_resumes(tmp_path, lift_store):
    out = tmp_path / "run"
    cfg = load_config("learn", [f"out={out}", f"demos={lift_store}", "env_steps=120", "eval.every=60",
                                "checkpoint_every=60", *FAST])
    summary = run(cfg, progress=False)
    assert summary["env_steps"] >= 120 and summary["updates"] > 0
    assert (out / "curve.png").stat().st_size > 1000
    curve = json.loads((out / "curve.json").read_text())
    assert [p["env_steps"] for p in curve][-1] == summary["env_steps"] and len(curve) >= 2
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["env_steps"] == summary["env_steps"]
    # a kill between the save's last two steps leaves the previous checkpoint as checkpoint.old beside it
    shutil.copytree(out / "checkpoint", out / "checkpoint.old")
    more = run(load_config("learn", [f"out={out}", f"demos={lift_store}", f"env_steps={summary['env_steps'] + 50}",
                                     "eval.every=1000", "checkpoint_every=1000", *FAST]), progress=False)
    assert more["env_steps"] >= summary["env_steps"] + 50 and more["updates"] > summary["updates"]
    assert more["episodes"] > summary["episodes"]
    # a kill between the save's first two renames leaves only checkpoint.old: the run resumes from it
    (out / "checkpoint").rename(out / "checkpoint.old")
    last = run(load_config("learn", [f"out={out}", f"demos={lift_store}", f"env_steps={more['env_steps'] + 10}",
                                     "eval.every=1000", "checkpoint_every=1000", *FAST]), progress=False)
    assert last["updates"] > more["updates"] and (out / "checkpoint" / "state.json").exists()
    assert not (out / "checkpoint.old").exists()


@pytest.mark.parametrize("threshold, ends", [(0.001, True), (0.999, False)])
def test_a_reward_classifier_replaces_the_task_reward_and_ends_episodes(tmp_path, threshold, ends):
    from robot_stack.learner.loop import learned_reward, make_learning_env
    from robot_stack.learner.reward_classifier import RewardClassifier, RewardClassifierConfig

    RewardClassifier(RewardClassifierConfig(cameras=("front",), image_size=32, threshold=threshold)).save(
        tmp_path / "clf")
    cfg = load_config("learn", [f"reward_classifier={tmp_path / 'clf'}", "obs.image_size=32"])
    assert learned_reward(cfg)[1] == ("front",)          # what the env renders, on either backend: the classifier's camera
    env = make_learning_env(cfg)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.zeros(7))
    assert (reward, terminated, info["success"]) == ((1.0, True, True) if ends else (0.0, False, False))
    assert info["task_success"] is False
    env.close()


def test_evaluation_episodes_take_no_sequence_numbers():
    from robot_stack.learner.loop import evaluate, make_agent, make_learning_env

    cfg = load_config("learn", FAST)
    env = make_learning_env(cfg)
    actor = Actor(make_agent(cfg), seed=0)
    result = evaluate(env, actor, 1, seed=0)
    assert actor.seq == 0 and result["episodes"] == 1      # a gap here would stall the learner's in-order intake
    produced = sum(1 for _ in actor.episode_steps(env, 100000))
    assert actor.seq == produced == actor.outcome["length"]
    env.close()


def test_object_rel_is_the_tcp_to_object_offset_in_env_and_demo_states(lift_store):
    from robot_stack.learner.spaces import agent_obs
    from robot_stack.sim.env import make_env

    keys = ("ee_pose", "gripper", "task_state", "object_rel")
    env = make_env("lift", cameras=())
    o, _ = env.reset(seed=5000)
    spec = ObsSpec.from_env(o, keys)
    assert spec.state_dim == 7 + 1 + o["task_state"].size + 3
    np.testing.assert_allclose(agent_obs(o, spec)["state"][-3:], o["task_state"][:3] - o["ee_pose"][:3], atol=1e-6)
    first = [t for t in demo_transitions(str(lift_store), spec, ActionSpec()) if t.episode == "demo0"][0]
    np.testing.assert_allclose(first.obs["state"], agent_obs(o, spec)["state"], atol=1e-4)   # demo0 is seed 5000
    env.close()
    with pytest.raises(Exception, match="object_rel|no "):
        ObsSpec.from_env({"ee_pose": o["ee_pose"]}, keys)
