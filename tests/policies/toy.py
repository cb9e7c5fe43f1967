"""A tiny registered policy for interface, trainer, server and eval tests (not a method)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from robot_stack.policies import actions as act_space
from robot_stack.policies.base import DataSpec, Policy, PolicyConfig, register


@register
class ToyPolicy(Policy):
    name = "toy"
    conditioning = frozenset({"goal_image", "instruction"})

    @dataclass
    class Config(PolicyConfig):
        image_size: int = 32
        action_horizon: int = 3
        hidden: int = 16
        cameras: tuple = ("front",)
        obs_horizon: int = 1

    def __init__(self, config, stats=None):
        super().__init__(config, stats)
        self.net = torch.nn.Sequential(torch.nn.Linear(3 + 3 + 8, config.hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(config.hidden, config.action_horizon * 7))

    def data_spec(self) -> DataSpec:
        return DataSpec(cameras=tuple(self.config.cameras), image_size=self.config.image_size, obs_horizon=self.config.obs_horizon,
                        action_horizon=self.config.action_horizon)

    def _features(self, image, goal, proprio):
        return torch.cat((image.float().mean((1, 2)) / 255, goal.float().mean((1, 2)) / 255, proprio), -1)

    def loss(self, batch):
        x = self._features(batch["images"]["front"][:, -1], batch["goal_image"], batch["proprio"][:, -1])
        pred = self.net(x).view(len(x), self.config.action_horizon, 7)
        loss = torch.nn.functional.mse_loss(pred, batch["action"])
        return loss, {"mse": float(loss.detach())}

    def predict_batch(self, batch):
        x = self._features(torch.as_tensor(batch["images"]["front"])[:, -1], torch.as_tensor(batch["goal_image"]),
                           torch.as_tensor(batch["proprio"])[:, -1])
        return self.net(x).view(len(x), self.config.action_horizon, 7)

    def predict(self, history, task):
        o = history[-1]
        prop = act_space.normalise(act_space.proprio(np.asarray(o.ee_pose), np.array(o.gripper)), self.stats["proprio"],
                                   "meanstd")
        goal = task.goal_image if task.goal_image is not None else np.zeros_like(o.images["front"])
        x = self._features(torch.from_numpy(o.images["front"])[None], torch.from_numpy(goal)[None],
                           torch.from_numpy(prop)[None])
        pred = self.net(x).view(self.config.action_horizon, 7).numpy()
        return act_space.unnormalise(pred, self.stats["action"], "meanstd")


def toy_stats() -> dict:
    rng = np.random.default_rng(0)
    return {"action": act_space.compute_stats(0.01 * rng.normal(size=(100, 7))),
            "proprio": act_space.compute_stats(rng.normal(size=(100, 8)))}
