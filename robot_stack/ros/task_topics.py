"""The task on the ROS 2 graph: every registered conditioning kind's topics, subscribed or published.

The policy server and anything that sets tasks (eval's ros backend, bench) go through here, so a new
conditioning kind reaches the graph by declaring its topics, with no edit to either side.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from robot_stack.policies.conditioning import ConditioningError, InputLimits, kinds
from robot_stack.ros import qos


def task_publishers(node) -> Callable:
    """Publishers on every kind's task topics -> publish(task, stamp): each kind's message built from the task, the
    clearing message where the task lacks that kind, so no latched topic keeps an earlier episode's input."""
    pubs = [(topic, node.create_publisher(topic.msg_type(), topic.topic, getattr(qos, topic.qos)))
            for kind in kinds().values() for topic in kind.topics()]

    def publish(task, stamp: float) -> None:
        for topic, pub in pubs:
            pub.publish(topic.build(task, stamp))
    return publish


class TaskInputs:
    """The newest task fields from every kind's topics, validated by the kind; `dirty` once any changed."""

    def __init__(self, node, limits: InputLimits, on_error: Callable[[str], None]):
        self.limits = limits
        self.on_error = on_error
        self.fields: dict = {}
        self.dirty = False
        self._lock = threading.Lock()
        for kind in kinds().values():
            for topic in kind.topics():
                node.create_subscription(topic.msg_type(), topic.topic,
                                         lambda msg, t=topic: self._on_message(t, msg), getattr(qos, topic.qos))

    def _on_message(self, topic, msg) -> None:
        try:
            update = topic.parse(msg, self.limits)
        except (ConditioningError, ValueError) as exc:
            return self.on_error(f"{topic.topic}: {exc}")
        with self._lock:
            extra = {}
            for kind in kinds().values():
                extra.update(kind.on_update(dict(self.fields), update))
            self.fields.update({**update, **extra})
            self.dirty = True

    def start_episode(self, images: dict, goal_camera: str) -> dict:
        """A new episode: what each kind takes from its first frames (GRIF's start image) or resets joins the
        fields, which hold until the next episode or topic update; returns the fields now set."""
        with self._lock:
            update = {}
            for kind in kinds().values():
                update.update(kind.on_episode_start(dict(self.fields), images, goal_camera))
            self.fields.update(update)
            self.dirty = False
            return {k: v for k, v in self.fields.items() if v is not None}

    def take(self) -> tuple[dict, bool]:
        """The fields set now (None dropped) and whether they changed since the last take."""
        with self._lock:
            dirty, self.dirty = self.dirty, False
            return {k: v for k, v in self.fields.items() if v is not None}, dirty
