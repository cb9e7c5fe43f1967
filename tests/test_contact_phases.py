"""Contact phases: the real-arm gripper rule against the twin's physics contacts on expert episodes."""
import numpy as np
import pytest

from robot_stack.contact_phases import (ContactRule, agreement, contact_steps, episode_phases, phases_from_contacts,
                                        rule_phases)


def test_phases_follow_contacts():
    assert phases_from_contacts([0, 0, 1, 1, 0, 0, 1]) == ["pre_contact", "pre_contact", "in_contact", "in_contact",
                                                           "post_contact", "post_contact", "in_contact"]


def test_rule_on_hand_built_gripper_traces():
    # open, closing (still moving), stalled on a 4 cm block, released
    widths = [0.08, 0.08, 0.06, 0.04, 0.037, 0.038, 0.055, 0.07]
    commands = [0, 0, 1, 1, 1, 1, 0, 0]
    assert rule_phases(widths, commands) == ["pre_contact"] * 4 + ["in_contact"] * 2 + ["post_contact"] * 2
    # closed on nothing: the fingers stall fully shut, never a contact
    assert not contact_steps([0.08, 0.04, 0.002, 0.001], [1, 1, 1, 1]).any()
    # a push with a closed hand: the width says nothing, the wrench does
    wrench = np.zeros((4, 6))
    wrench[2:, 0] = 30.0
    assert contact_steps([0.0] * 4, [1] * 4, wrench).tolist() == [False, False, True, True]
    assert not contact_steps([0.0] * 4, [1] * 4, wrench, ContactRule(force=None)).any()


def test_recorded_labels_win_over_the_rule():
    meta = {"contact_phase": ["pre_contact", "in_contact"]}
    assert episode_phases(meta, [0.08, 0.04, 0.04], [0, 1, 1]) == ["pre_contact", "in_contact", "in_contact"]
    assert episode_phases({}, [0.08, 0.06, 0.04, 0.037, 0.037], [1, 1, 1, 1, 1]) == \
        ["pre_contact", "pre_contact", "in_contact", "in_contact", "in_contact"]


@pytest.mark.parametrize("task", ["pick_place", "stack", "lift"])
def test_rule_agrees_with_twin_contacts(task):
    """>= 95% of steps of seeded expert episodes get the twin's label from the gripper rule alone."""
    from robot_stack.sim.env import make_env
    from robot_stack.sim.rollout import expert_steps

    env = make_env(task, cameras=())
    twin, rule = [], []
    for seed in range(1000, 1006):
        widths, commands, labels = [], [], []
        for obs, action, info in expert_steps(env, seed):
            if action is None:
                continue
            widths.append(float(obs["gripper"][0]))
            commands.append(float(action[7]))
            labels.append(info["contact_phase"])
        assert "in_contact" in labels, f"{task} seed {seed}: the expert never touched the object"
        twin += labels
        rule += rule_phases(widths, commands)
    env.close()
    score = agreement(twin, rule)
    print(f"{task}: rule agrees with the twin on {100 * score:.1f}% of {len(twin)} steps")
    assert score >= 0.95
