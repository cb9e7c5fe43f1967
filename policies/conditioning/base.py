"""What a conditioning kind declares: everything the stack needs to know about one kind of task input.

A kind (goal image, instruction, sketch, ...) is one module in this folder with one `ConditioningKind`
subclass decorated `@register_kind`. The Task fields it fills, how a training batch gets it from an
episode (hindsight relabelling), its ROS 2 topics with their message type, QoS and validation, how
`robot-stack eval` builds it for an episode and which options it adds, and an example for bench and
probe all live there; the trainer, the policy server, both eval backends, bench and probe iterate
over the registered kinds and name none of them.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

MAX_INSTRUCTION_CHARS = 1000     # longer text is refused before it is decoded or embedded
MAX_IMAGE_SIDE = 1024            # task images larger than this are refused before allocation


class ConditioningError(ValueError):
    """A task input that cannot be used: malformed, too large, or missing what the kind needs."""


@dataclass
class TaskTopic:
    """One ROS 2 topic a kind's task input arrives on.

    `parse(msg, limits)` returns the Task fields the message sets (None clears a field) or raises
    ConditioningError; `build(task, stamp)` is the message that publishes `task`'s fields, or the
    clearing message where the task lacks them (so a latched topic never carries a stale input).
    `qos` names a profile of robot_stack.ros.qos, so this module imports no ROS.
    """

    topic: str
    msg_type: Callable[[], type]          # lazily imported message class
    parse: Callable[[Any, "InputLimits"], dict]
    build: Callable[[Any, float], Any]
    qos: str = "LATCHED"


@dataclass(frozen=True)
class InputLimits:
    """Size limits on task inputs arriving from outside (the policy server's parameters)."""

    max_instruction_chars: int = MAX_INSTRUCTION_CHARS
    max_image_side: int = MAX_IMAGE_SIDE


@dataclass
class Sample:
    """One training window: episode `episode` (index into the batches' episode list), newest observation at
    tick `t`, episode's last tick `last`."""

    episode: int
    t: int
    last: int


@dataclass
class EpisodeContext:
    """What `robot-stack eval` knows when it builds an episode's task (both backends)."""

    seed: int
    task: str                             # the twin's task name
    robot: str
    image_size: int
    params: dict                          # the episode's task parameters (object, colour, target, ...)
    options: dict                         # the eval command's options (this kind's among them)
    goal_camera: str = "front"            # the policy's goal camera
    spec: Any = None                      # the policy's DataSpec (a kind's settings in spec.conditioning)
    first_images: dict[str, np.ndarray] = field(default_factory=dict)   # the first frames, where the backend has them
    cache: dict = field(default_factory=dict)    # per-eval scratch shared across episodes (e.g. goal renderers)


class ConditioningKind:
    name: ClassVar[str]
    # Task field -> what it holds: "image" (HxWx3 uint8, the policy's image size), "text", "array"
    fields: ClassVar[dict[str, str]]
    # fields that must all be set for a task to provide this kind (default: every field)
    required: ClassVar[tuple[str, ...] | None] = None
    # training-batch keys this kind adds (the probe swaps them between episodes to see whether a policy reads them)
    batch_keys: ClassVar[tuple[str, ...]] = ()
    # kinds whose policies `robot-stack eval` may also run on this kind's episodes, as baselines (a switch is an
    # instruction that changes: an instruction-following policy gets the new text through update_task)
    baseline_for: ClassVar[tuple[str, ...]] = ()

    # --- the task --------------------------------------------------------------------------
    def provided(self, task) -> bool:
        required = self.required if self.required is not None else tuple(self.fields)
        return all(_present(getattr(task, f)) for f in required)

    # --- training: hindsight relabelling from an episode store ------------------------------------
    def prepare(self, batches, metadata: list[dict]) -> dict:
        """Per-dataset set-up (called once, with each episode's metadata); returns figures for the run manifest."""
        return {}

    def batch(self, batches, samples: list[Sample], rng: np.random.Generator) -> dict:
        """This kind's entries of a training batch for `samples`."""
        return {}

    def describe(self, record: dict) -> str | None:
        """One line on what happened in an evaluated episode (its `record`), printed for short runs (the demo)."""
        return None

    def stats(self, batches) -> dict:
        """Normalisers of this kind's inputs, from the training episodes (after `prepare`): they travel in the
        checkpoint beside the action and proprio ones, so run time sees what training saw."""
        return {}

    # --- ROS 2 -----------------------------------------------------------------------------------
    def topics(self) -> list[TaskTopic]:
        return []

    def on_update(self, fields: dict, update: dict) -> dict:
        """More field changes when any kind's topic changes `fields` by `update` (both before the update applies):
        e.g. a switch kind records the instruction being replaced as the previous one."""
        return {}

    def on_episode_start(self, fields: dict, images: dict[str, np.ndarray], goal_camera: str) -> dict:
        """Field changes at the start of an episode on the graph, from its first frames (GRIF's start image) or
        resetting what an earlier episode left (a switch kind's previous instruction); None clears a field."""
        return {}

    def during_episode(self, ctx: "EpisodeContext", step: int, info: dict) -> dict | None:
        """`robot-stack eval`, after each step: field changes to make mid-episode (a task switch), or None.
        `info` has the step's `contact_phase` and `success`."""
        return None

    def extra_steps(self, ctx: "EpisodeContext") -> int:
        """`robot-stack eval`: steps an episode may run past the task's limit (a switched episode does two tasks)."""
        return 0

    def success(self, ctx: "EpisodeContext", scene, task) -> bool | None:
        """`robot-stack eval`: whether the episode has succeeded where the kind changes what success means (after a
        switch, the new instruction's predicate on the twin's `scene`); None: the `task`'s own predicate."""
        return None

    def record(self, ctx: "EpisodeContext") -> dict:
        """`robot-stack eval`: what this kind adds to an episode's record (e.g. when a switch happened)."""
        return {}

    # --- robot-stack eval -----------------------------------------------------------------------
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Options of `robot-stack eval` this kind reads (their dests go into EpisodeContext.options)."""

    def given(self, options: dict) -> bool:
        """Whether the user asked for this kind through its options (chooses the default --conditioning)."""
        return False

    def check_options(self, options: dict) -> None:
        """Raise ValueError when eval is asked for this kind without what it needs."""

    def episode_fields(self, ctx: EpisodeContext) -> dict:
        """The Task fields for one evaluation episode."""
        raise NotImplementedError

    # --- bench and probe --------------------------------------------------------------------------
    def example(self, image_size: int) -> dict:
        """Fields of a plausible task of this kind (bench policy times act() with it)."""
        raise NotImplementedError


def _present(value) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value)
    return True


def check_text(text: str, what: str, limits: InputLimits) -> str:
    if len(text) > limits.max_instruction_chars:
        raise ConditioningError(f"{what}: {len(text)} characters; at most {limits.max_instruction_chars} are accepted")
    return text


def parse_image_msg(msg, what: str, limits: InputLimits) -> np.ndarray | None:
    """An Image message -> HxWx3 uint8, None for an empty (clearing) image; size checked before any copy."""
    from robot_stack.ros import convert

    if msg.height == 0 or msg.width == 0:
        return None
    if max(msg.height, msg.width) > limits.max_image_side:
        raise ConditioningError(f"{what}: {msg.width}x{msg.height} image; at most {limits.max_image_side} pixels a side")
    try:
        return np.array(convert.parse_image(msg))
    except convert.MessageError as exc:
        raise ConditioningError(f"{what}: {exc}") from exc


def image_msg_or_clear(image, stamp: float, frame_id: str):
    from robot_stack.ros import convert

    if image is None:
        return convert.image_msg(np.zeros((0, 0, 3), np.uint8), stamp, "")
    return convert.image_msg(np.asarray(image), stamp, frame_id)
