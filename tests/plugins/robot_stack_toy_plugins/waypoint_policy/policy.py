from __future__ import annotations

import numpy as np
import torch

from robot_stack.policies import DataSpec, Policy, register
from robot_stack.policies import actions as act_space

from robot_stack_toy_plugins.waypoint_policy.config import WaypointMLPConfig
from robot_stack_toy_plugins.waypoint_policy.model import WaypointMLP


@register
class WaypointMLPPolicy(Policy):
    name = "waypoint_mlp"
    conditioning = frozenset({"waypoint"})
    Config = WaypointMLPConfig

    def __init__(self, config, stats=None):
        super().__init__(config, stats)
        self.model = WaypointMLP(config.hidden, config.action_horizon)

    def data_spec(self) -> DataSpec:
        return DataSpec(cameras=("front",), image_size=self.config.image_size, obs_horizon=1,
                        action_horizon=self.config.action_horizon)

    def loss(self, batch):
        pred = self.model(batch["images"]["front"][:, -1], batch["proprio"][:, -1], batch["waypoint"])
        loss = torch.nn.functional.mse_loss(pred, batch["action"])
        return loss, {"mse": float(loss.detach())}

    def predict(self, history, task):
        o = history[-1]
        prop = act_space.normalise(act_space.proprio(np.asarray(o.ee_pose), np.array(o.gripper)), self.stats["proprio"],
                                   "meanstd")
        pred = self.model(torch.from_numpy(np.ascontiguousarray(o.images["front"]))[None], torch.from_numpy(prop)[None],
                          torch.as_tensor(task.waypoint)[None])
        return act_space.unnormalise(pred[0].numpy(), self.stats["action"], "meanstd")
