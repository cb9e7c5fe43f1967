"""Goal-image conditioning (BESO, GRIF): a picture of the scene once the task is done.

Training relabels in hindsight: the goal is the episode's final frame of the goal camera with probability
`goal_final_prob`, else a uniform future frame; `start_image` is the episode's first frame (GRIF encodes
the change start -> goal). On the graph the goal arrives latched on /task/goal_image and the server takes
the start image from the first frames after an episode is enabled; `robot-stack eval` renders each
episode's goal by running the scripted expert on its seed (or on `--goal-seed`).
"""
from __future__ import annotations

import numpy as np
import torch

from robot_stack.policies.conditioning import register_kind
from robot_stack.policies.conditioning.base import (ConditioningKind, EpisodeContext, TaskTopic, image_msg_or_clear,
                                                    parse_image_msg)


def _image_type():
    from sensor_msgs.msg import Image
    return Image


@register_kind
class GoalImage(ConditioningKind):
    name = "goal_image"
    fields = {"goal_image": "image", "start_image": "image"}
    required = ("goal_image",)
    batch_keys = ("goal_image", "final_goal_image", "start_image")

    def batch(self, batches, samples, rng):
        goals, finals, starts = [], [], []
        for s in samples:
            g = s.last if rng.random() < batches.spec.goal_final_prob else int(rng.integers(s.t, s.last + 1))
            goal, final, start = batches.ds.rows_at(batches.goal_key, s.episode, [g, s.last, 0])
            goals.append(goal)
            finals.append(final)
            starts.append(start)
        return {"goal_image": torch.from_numpy(np.stack(goals)),
                "final_goal_image": torch.from_numpy(np.stack(finals)),
                "start_image": torch.from_numpy(np.stack(starts))}

    def topics(self):
        return [TaskTopic("task/goal_image", _image_type,
                          parse=lambda msg, limits: {"goal_image": parse_image_msg(msg, "goal image", limits)},
                          build=lambda task, stamp: image_msg_or_clear(task.goal_image, stamp,
                                                                       "front_color_optical_frame"))]

    def on_episode_start(self, fields, images, goal_camera):
        return {"start_image": images[goal_camera]} if goal_camera in images else {}

    def add_arguments(self, parser):
        parser.add_argument("--goal-seed", type=int,
                            help="goal_image: the goal from the expert on this seed (default: each episode's seed)")

    def given(self, options):
        return options.get("goal_seed") is not None

    def episode_fields(self, ctx: EpisodeContext) -> dict:
        key = ("goal_images", ctx.task, ctx.robot, ctx.image_size)
        if key not in ctx.cache:
            ctx.cache[key] = GoalImages(ctx.task, ctx.robot, ctx.image_size)
        seed = ctx.options.get("goal_seed")
        goal = ctx.cache[key](ctx.seed if seed is None else int(seed))[0]
        return {"goal_image": goal, "start_image": ctx.first_images.get(ctx.goal_camera)}

    def example(self, image_size):
        image = np.random.default_rng(0).integers(0, 255, (image_size, image_size, 3), dtype=np.uint8)
        return {"goal_image": image, "start_image": image}


class GoalImages:
    """Goal images from the scripted expert run on a seed (cached): its settled final front frame."""

    def __init__(self, task: str, robot: str, size: int):
        from robot_stack.sim.env import make_env

        self.env = make_env(task, robot=robot, cameras=("front",), image_size=size)
        self.size = size
        self.cache: dict[int, tuple[np.ndarray, dict, bool]] = {}

    def __call__(self, seed: int) -> tuple[np.ndarray, dict, bool]:
        from robot_stack.sim.rollout import run_expert

        if seed not in self.cache:
            ep = run_expert(self.env, seed, goal_size=(self.size, self.size))
            self.cache[seed] = (ep.goal_image, ep.params, ep.success)
        return self.cache[seed]
