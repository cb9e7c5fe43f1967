"""Scripted experts solve every task on both robots, and label their episodes in hindsight."""
import numpy as np
import pytest

from robot_stack.sim.env import make_env
from robot_stack.sim.rollout import gripper_events, run_expert
from robot_stack.sim.tasks import TASKS

SEEDS = range(1000, 1004)     # never the seeds of the 100-episode table (0-99)


@pytest.mark.parametrize("robot", ["panda", "ur5e"])
def test_experts_succeed_on_a_seeded_subset(robot):
    failures = []
    for task in TASKS:
        env = make_env(task, robot, cameras=(), terminate_on_success=False)
        for seed in SEEDS:
            ep = run_expert(env, seed)
            if not ep.success:
                failures.append((task, seed))
    episodes = len(TASKS) * len(SEEDS)
    assert (episodes - len(failures)) / episodes >= 0.95, failures


def test_pick_place_episode_labels():
    env = make_env("pick_place", "panda", cameras=(), terminate_on_success=False)
    ep = run_expert(env, seed=7, goal_size=(96, 128))
    assert ep.success
    color = ep.params["color"]
    assert color in ep.instruction and "bowl" in ep.instruction
    assert ep.goal_image.shape == (96, 128, 3) and ep.goal_image.dtype == np.uint8
    assert ep.ee_path.shape == (ep.steps + 1, 7)
    assert len(ep.contact_phase) == ep.steps == len(ep.actions)
    # Phases run pre -> in -> post, each present, never back to pre.
    first_in = ep.contact_phase.index("in_contact")
    assert set(ep.contact_phase[:first_in]) == {"pre_contact"}
    assert "pre_contact" not in ep.contact_phase[first_in:]
    assert ep.contact_phase[-1] == "post_contact"
    # One close (grasp) then one open (release), at the steps the command flipped.
    assert [kind for _, kind in ep.gripper_events] == ["close", "open"]
    for step, kind in ep.gripper_events:
        assert (ep.actions[step, 7] > 0.5) == (kind == "close")
        assert (ep.actions[step - 1, 7] > 0.5) != (kind == "close")


def test_reach_has_no_contact_and_no_gripper_events():
    env = make_env("reach", "ur5e", cameras=(), terminate_on_success=False)
    ep = run_expert(env, seed=3)
    assert ep.success
    assert set(ep.contact_phase) == {"pre_contact"}
    assert ep.gripper_events == []


def test_gripper_events_from_commands():
    assert gripper_events(np.array([0, 0, 1, 1, 0.2, 0.9])) == [(2, "close"), (4, "open"), (5, "close")]
    assert gripper_events(np.array([1.0, 1.0])) == [(0, "close")]


def test_instructions_vary_across_episodes():
    env = make_env("stack", "panda", cameras=())
    seen = {env.reset(seed=s)[1]["instruction"].split(" ")[0] for s in range(20)}
    assert len(seen) >= 3
