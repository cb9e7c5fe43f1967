"""SwitchVLA's sample builder: the mode rule, rollback and advance targets, determinism, ordinary demos only."""
import numpy as np
import pytest

from robot_stack.policies.switchvla.samples import (ADVANCE, FORWARD, ROLLBACK, Demo, SwitchSampleBuilder,
                                                    contact_at_ticks, mode_of)

A, B = "put the red block in the bowl", "put the green block in the bowl"


def _demo(instruction, direction, layout="scene0", n=14):
    """A straight TCP path along `direction`; hand closes at tick 4, in contact over ticks 6-9, opens at 10."""
    ee = np.zeros((n, 7))
    ee[:, :3] = np.array([0.4, 0.0, 0.2]) + 0.01 * np.arange(n)[:, None] * np.asarray(direction)
    ee[:, 6] = 1.0
    action = np.roll(ee, -1, axis=0)
    action[-1] = ee[-1]
    grip = np.zeros(n)
    grip[4:10] = 1.0
    contact = np.zeros(n, bool)
    contact[6:10] = True
    return Demo(instruction, layout, ee, action, grip, contact)


def test_the_mode_rule_on_hand_built_cases():
    assert mode_of(A, A, True) == FORWARD and mode_of(A, A, False) == FORWARD
    assert mode_of(A, B, True) == ROLLBACK
    assert mode_of(A, B, False) == ADVANCE


def test_contact_at_ticks_shifts_the_after_action_labels_by_one():
    phases = ["pre_contact", "in_contact", "in_contact", "post_contact"]
    assert contact_at_ticks(phases, 5).tolist() == [False, False, True, True, False]


def test_rollback_targets_are_the_reversed_contact_actions_ending_with_the_gripper_open():
    demos = [_demo(A, [1, 0, 0]), _demo(B, [0, 1, 0])]
    builder = SwitchSampleBuilder(demos, horizon=6)
    s = builder.rollback(0, 8, 1, contact_prev=True)
    assert s.mode == ROLLBACK and (s.previous, s.current) == (A, B) and s.source == 0
    assert s.ticks.tolist() == [7, 6, 5, 4, 4, 4]                      # back to where the hand closed (tick 4)
    assert s.gripper.tolist() == [1, 1, 1, 0, 0, 0]                    # carried back closed, released there
    poses, _ = builder.targets(s)
    assert np.allclose(poses, demos[0].ee_pose[[7, 6, 5, 4, 4, 4]])       # where the TCP was, newest first
    assert np.all(np.diff(poses[:4, 0]) < 0)                          # moving back along the path it came
    long = builder.rollback(0, 9, 1, contact_prev=True)
    assert SwitchSampleBuilder(demos, horizon=3).rollback(0, 9, 1, True).gripper.tolist() == [1, 1, 1]
    assert long.gripper[-1] == 0.0
    # the hand closing in place (ticks 4-6 at one pose): from there the rollback is to open at once
    demos[0].ee_pose[4:7] = demos[0].ee_pose[4]
    at_grasp = builder.rollback(0, 7, 1, contact_prev=True)
    assert at_grasp.gripper.tolist() == [0] * 6 and at_grasp.ticks.tolist() == [4] * 6


def test_advance_targets_come_from_the_new_tasks_pre_contact_segment_nearest_the_tcp():
    demos = [_demo(A, [1, 0, 0]), _demo(B, [1, 0, 0])]
    demos[1].ee_pose[:, 1] += 0.001                                    # B's path beside A's
    builder = SwitchSampleBuilder(demos, horizon=4)
    s = builder.advance(0, 2, 1, contact_prev=False)
    assert s.mode == ADVANCE and s.source == 1 and (s.previous, s.current) == (A, B)
    assert s.ticks.tolist() == [2, 3, 4, 5]                            # B's tick nearest A's TCP at tick 2
    far = builder.advance(0, 12, 1, contact_prev=False)                # A after release: B's approach ends at tick 3
    assert far.ticks[0] < demos[1].grasp_start and far.ticks[0] == 3
    assert np.allclose(builder.targets(far)[0], demos[1].action_pose[far.ticks])


def test_the_builder_is_deterministic_for_a_seed_and_labels_every_sample_by_the_rule():
    demos = [_demo(A, [1, 0, 0]), _demo(B, [0, 1, 0]), _demo("put the blue block in the bowl", [0, -1, 0]),
             _demo(A, [0, 0, 1], layout="scene1")]
    builder = SwitchSampleBuilder(demos, horizon=5)
    draws = [(e, t) for e in range(4) for t in range(14)] * 3

    def run(seed):
        rng = np.random.default_rng(seed)
        return [builder.draw(e, t, rng) for e, t in draws]

    first, again, other = run(7), run(7), run(8)
    key = lambda s: (s.mode, s.previous, s.current, s.source, s.ticks.tolist(), s.gripper.tolist())  # noqa: E731
    assert [key(s) for s in first] == [key(s) for s in again]
    assert [key(s) for s in first] != [key(s) for s in other]
    modes = set()
    for (e, t), s in zip(draws, first):
        assert s.mode == mode_of(s.previous, s.current, bool(demos[e].contact[t]))
        modes.add(s.mode)
        if e == 3:                                                     # a scene with no other task: forward only
            assert s.mode == FORWARD
    assert modes == {FORWARD, ROLLBACK, ADVANCE}


def test_switch_prob_bounds():
    with pytest.raises(ValueError):
        SwitchSampleBuilder([_demo(A, [1, 0, 0])], horizon=4, switch_prob=1.5)
    only_forward = SwitchSampleBuilder([_demo(A, [1, 0, 0]), _demo(B, [0, 1, 0])], horizon=4, switch_prob=0.0)
    rng = np.random.default_rng(0)
    assert {only_forward.draw(0, t, rng).mode for t in range(14)} == {FORWARD}


@pytest.mark.parametrize("when", ["in_contact", "pre_contact"])
def test_the_builders_targets_carry_out_a_switch_in_the_twin(when):
    """Executed in the twin, the rollback and advance targets complete a switch (put the held block back and
    let go, then the other block into the bowl): what a policy trained on them is asked to imitate is doable."""
    from robot_stack.policies.switchvla.oracle import run
    result = run(2000, when)
    assert result["success"], result
    assert (result["rollback_steps"] > 0) == (when == "in_contact") and result["advance_steps"] > 0
