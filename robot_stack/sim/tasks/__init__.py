"""The twin's tasks, by name.

TRAINING_TASKS are the ones policies learn from (scripted collection, the stores training reads).
UNSEEN_TASKS ask for motions none of those produce (RT-Trajectory's task generalisation, issue 30): their
scripted experts exist only to draw `--sketch expert` sketches and as an evaluation baseline, never to
write training data.
"""
from __future__ import annotations

from robot_stack.sim.tasks.arc_over_bowl import ArcOverBowl
from robot_stack.sim.tasks.base import Task
from robot_stack.sim.tasks.drawer import DrawerClose, DrawerOpen
from robot_stack.sim.tasks.lift import Lift
from robot_stack.sim.tasks.out_of_bowl import OutOfBowl
from robot_stack.sim.tasks.pick_place import PickPlace, Stack
from robot_stack.sim.tasks.place_at import PlaceAt
from robot_stack.sim.tasks.push import Push
from robot_stack.sim.tasks.push_around import PushAround
from robot_stack.sim.tasks.reach import Reach

_TRAINING = (Reach, Push, PickPlace, Stack, Lift, DrawerOpen, DrawerClose)
_UNSEEN = (PlaceAt, ArcOverBowl, PushAround, OutOfBowl)

TRAINING_TASKS: tuple[str, ...] = tuple(t.name for t in _TRAINING)
UNSEEN_TASKS: tuple[str, ...] = tuple(t.name for t in _UNSEEN)
TASKS: dict[str, type[Task]] = {t.name: t for t in (*_TRAINING, *_UNSEEN)}


def make_task(name: str) -> Task:
    try:
        return TASKS[name]()
    except KeyError:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}") from None
