"""Robots are looked up by name, and a wrong name says which exist."""
import pytest

from robot_stack.robots.spec import get_robot


def test_robots_by_name():
    assert get_robot("panda").dof == 7 and get_robot("ur5e").dof == 6


def test_unknown_robot_lists_valid_names():
    with pytest.raises(ValueError, match="panda, ur5e"):
        get_robot("kuka")
