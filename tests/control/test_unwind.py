"""Unwinding: the global way out of a configuration where every local step toward the goal runs into a joint limit
(inverse kinematics inside the margins, a joint-space path kept in the box and under the speed limits)."""
import numpy as np
import pytest

from robot_stack import transforms as tf
from robot_stack.bench.envelope import SPEED_TOLERANCE, run_storm
from robot_stack.control.safety import SafetyLimits
from robot_stack.control.unwind import StuckDetector, UnwindPlanner, solve_ik
from robot_stack.robots.kinematics import Kinematics
from robot_stack.robots.spec import get_robot

KEEP = 0.08
TOP_DOWN = np.array([1.0, 0.0, 0.0, 0.0])


def run(generator):
    """Drive a planning generator to its end, counting the control periods it took."""
    periods = 0
    while True:
        try:
            next(generator)
            periods += 1
        except StopIteration as done:
            return done.value, periods


def planner(robot: str):
    spec, limits = get_robot(robot), SafetyLimits()
    kin = Kinematics(spec)
    lo, hi = np.array(spec.q_min) + KEEP, np.array(spec.q_max) - KEEP
    return kin, lo, hi, limits, UnwindPlanner(kin, lo, hi, spec.q_home, limits.workspace_low, limits.workspace_high,
                                              limits.max_linear_speed, limits.max_angular_speed,
                                              np.array(spec.dq_max) * 0.5)


@pytest.mark.parametrize("robot", ["panda", "ur5e"])
def test_ik_finds_a_configuration_inside_the_range_for_a_pose_of_the_range(robot):
    kin, lo, hi, _, _ = planner(robot)
    rng = np.random.default_rng(0)
    for _ in range(5):
        q_true = rng.uniform(lo + 0.3, hi - 0.3)
        pos, quat = kin.fk(q_true)
        q, _ = run(solve_ik(kin, pos, quat, q_true + rng.normal(0, 0.3, len(q_true)), lo, hi))
        assert q is not None
        assert np.all(q >= lo) and np.all(q <= hi)
        got_pos, got_quat = kin.fk(q)
        assert np.linalg.norm(got_pos - pos) < 1e-3 and tf.angle_between(got_quat, quat) < 1e-2


def test_a_wrist_at_its_limit_gets_a_path_in_the_box_timed_under_the_speed_limits():
    kin, lo, hi, limits, plan = planner("panda")
    # the storm's end in `bench envelope` panda 4: the last wrist joint past its margin, the hand nearly upside down
    q = np.array([-0.23, -0.21, -0.31, -2.74, 0.87, 1.44, 2.9])
    pos, quat = kin.fk(q)
    goal = np.array([0.45, 0.2, 0.3])
    path, periods = run(plan.plan(q, pos, quat, goal, TOP_DOWN))
    assert path is not None and periods < 200           # spread over periods, done within a fraction of a second
    end_pos, end_quat = kin.fk(path.waypoints[-1])
    assert np.linalg.norm(end_pos - goal) < 1e-3 and tf.angle_between(end_quat, TOP_DOWN) < 1e-2
    start = q
    for w, duration in zip(path.waypoints, path.durations):
        assert np.all(w >= lo) and np.all(w <= hi)
        s = np.linspace(0, 1, 401)
        tcp = np.array([kin.fk(start + f * (w - start))[0] for f in s])
        assert np.all(tcp >= np.array(limits.workspace_low) - 1e-6)
        assert np.all(tcp <= np.array(limits.workspace_high) + 1e-6)
        speed = np.linalg.norm(np.diff(tcp, axis=0), axis=1).max() / (duration / 400)
        assert speed <= limits.max_linear_speed
        assert np.all(np.abs(w - start) / duration <= np.array(get_robot("panda").dq_max) * 0.5 + 1e-9)
        start = w


def test_no_path_to_a_pose_beyond_the_reach():
    kin, *_, plan = planner("panda")
    q = np.array(get_robot("panda").q_home)
    pos, quat = kin.fk(q)
    path, _ = run(plan.plan(q, pos, quat, np.array([1.5, 0.0, 0.3]), TOP_DOWN))
    assert path is None


def test_stuck_only_without_progress_far_from_the_goal_with_a_limit_holding_the_step():
    dt = 0.001
    for distances, held, expect in [
        (np.full(1000, 0.2), True, True),                      # no progress, held
        (np.full(1000, 0.2), False, False),                    # no progress, but nothing holds it (it is slow)
        (np.linspace(0.2, 0.15, 1000), True, False),           # 5 cm of progress in the window
        (np.full(1000, 0.01), True, False),                    # near enough
    ]:
        d = StuckDetector(dt)
        flags = [d.update(x, held) for x in distances]
        assert flags[-1] is expect and not any(flags[:-1])


def test_a_storm_that_stranded_the_arm_at_a_wrist_limit_ends_with_the_goal_reached_by_an_unwind():
    """Panda storm 4 left the last joint past its margin and the goal orientation the short way through it: no
    local step could reach the goal (the TCP stayed 24 cm off it until /arm/home)."""
    row = run_storm("panda", 4)
    assert row["recovered"] and row["events"].get("unwind", 0) >= 1, row
    way = row["recovery"]
    assert way["outside"] <= 0.005, row
    assert way["speed"] < row["speed_limit"] * SPEED_TOLERANCE, row
    assert way["joint_speed_ratio"] <= 1.05, row


def test_a_wrist_wound_to_its_limit_at_a_corner_of_the_box_unwinds_by_way_of_the_box_centre():
    """UR5e storm 10: wrist 1 at -2 pi with the TCP in the box's top corner; unwinding there, or on the way home,
    swings the hand out of the box. The path takes the hand to the centre of the box first."""
    kin, lo, hi, limits, plan = planner("ur5e")
    q = np.array([3.72, -1.45, 0.56, -6.23, 4.4, -0.78])
    pos, quat = kin.fk(q)
    goal = np.array([0.45, 0.2, 0.3])
    path, _ = run(plan.plan(q, pos, quat, goal, TOP_DOWN))
    assert path is not None and len(path.waypoints) >= 2
    centre = (np.array(limits.workspace_low) + np.array(limits.workspace_high)) / 2
    assert np.linalg.norm(kin.fk(path.waypoints[0])[0] - centre) < 1e-3
    start = q
    for w in path.waypoints:
        tcp = np.array([kin.fk(start + f * (w - start))[0] for f in np.linspace(0, 1, 201)])
        outside = np.linalg.norm(tcp - np.clip(tcp, limits.workspace_low, limits.workspace_high), axis=1)
        assert outside.max() <= outside[0] + 1e-6
        start = w
