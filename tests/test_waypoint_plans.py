"""Waypoint plans for the unseen tasks (`robot-stack sketch waypoints`): written from the scene, never from the
experts, valid as `eval --sketch-waypoints` input, and good enough that following them does the task."""
import json

import pytest

from robot_stack import waypoint_plans
from robot_stack.sim.env import make_env
from robot_stack.sketches import check_in_workspace, gripper_events, waypoint_path


@pytest.fixture
def no_experts(monkeypatch):
    """Any call of a task's scripted expert fails the test."""
    from robot_stack.sim.tasks import TASKS

    def refuse(*_, **__):
        raise AssertionError("a waypoint plan asked a task's expert")

    for cls in TASKS.values():
        monkeypatch.setattr(cls, "expert", refuse)
    with pytest.raises(AssertionError, match="expert"):            # the guard itself works
        make_env("place_at", cameras=()).task.expert(None, None, 0.1)


@pytest.mark.parametrize("task", waypoint_plans.PLANNED_TASKS)
def test_plans_are_written_per_seed_without_the_expert_and_read_as_sketch_input(task, tmp_path, no_experts):
    from robot_stack.control.safety import SafetyLimits

    files, followed = waypoint_plans.write_plans(task, "panda", 300, 3, tmp_path)
    assert followed is None
    assert [f.name for f in files] == ["seed_300.json", "seed_301.json", "seed_302.json"]
    plans = [json.loads(f.read_text()) for f in files]
    assert plans[0] != plans[1]                                    # each seed's own scene
    limits = SafetyLimits()
    for p in plans:
        points, gripper = waypoint_path(p)
        check_in_workspace(points, limits.workspace_low, limits.workspace_high)
        events = [e for _, e in gripper_events(gripper)]
        assert events == ([] if task == "push_around" else ["close", "open"])


def test_an_unknown_task_is_refused_with_the_planned_ones_named(tmp_path):
    with pytest.raises(ValueError, match="place_at"):
        waypoint_plans.write_plans("pick_place", "panda", 0, 1, tmp_path)


@pytest.mark.parametrize("task", ["place_at", "arc_over_bowl"])
def test_following_a_plan_does_the_task(task, tmp_path):
    """A plain follower (no policy) that steps toward each waypoint in turn succeeds on most seeds: the plans
    are sketches of a path that does the task, not just any drawing."""
    files, followed = waypoint_plans.write_plans(task, "panda", 300, 3, tmp_path, check=True)
    assert len(files) == 3 and followed >= 2, followed
