"""The twin's tasks, by name."""
from __future__ import annotations

from robot_stack.sim.tasks.base import Task
from robot_stack.sim.tasks.drawer import DrawerClose, DrawerOpen
from robot_stack.sim.tasks.lift import Lift
from robot_stack.sim.tasks.pick_place import PickPlace, Stack
from robot_stack.sim.tasks.push import Push
from robot_stack.sim.tasks.reach import Reach

TASKS: dict[str, type[Task]] = {
    t.name: t for t in (Reach, Push, PickPlace, Stack, Lift, DrawerOpen, DrawerClose)
}


def make_task(name: str) -> Task:
    try:
        return TASKS[name]()
    except KeyError:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}") from None
