"""lift: grasp a block and raise it 10 cm (the analogue of SERL's PandaPickCube)."""
from __future__ import annotations

import numpy as np

from robot_stack.sim.scene import BLOCK_HALF, BLOCKS, Scene
from robot_stack.sim.tasks.base import (Task, TaskParams, Waypoint, WaypointExpert, at, grasp_waypoints, place_block,
                                        place_clutter, scatter, shaped)

LIFT_HEIGHT = 0.10


class Lift(Task):
    name = "lift"
    max_steps = 100
    instructions = (
        "lift the {object}",
        "pick up the {color} block",
        "raise the {object} off the table",
        "grab the {color} cube and lift it up",
    )

    def reset(self, scene: Scene, rng: np.random.Generator) -> TaskParams:
        color = BLOCKS[rng.integers(len(BLOCKS))]
        xy = scatter(rng, 1, 0.0)[0]
        place_block(scene, color, xy, rng)
        place_clutter(scene, rng, {f"{color}_block": xy})
        self.params = TaskParams(object=f"{color} block", color=color)
        return self.params

    def _height(self, scene: Scene) -> float:
        return float(scene.block_pos(self.params.color)[2] - BLOCK_HALF)

    def success(self, scene: Scene) -> bool:
        return self._height(scene) >= LIFT_HEIGHT

    def dense_reward(self, scene: Scene) -> float:
        if self.success(scene):
            return 1.0
        reach = shaped(float(np.linalg.norm(scene.ee_pose()[0] - scene.block_pos(self.params.color))))
        lift = float(np.clip(self._height(scene) / LIFT_HEIGHT, 0.0, 1.0))
        return 0.3 * reach + 0.7 * lift * (lift < 1.0)

    def state(self, scene: Scene) -> np.ndarray:
        pos, quat = scene.body_pose(f"{self.params.color}_block")
        return np.concatenate((pos, quat))

    def expert(self, scene: Scene, rng: np.random.Generator, policy_dt: float) -> WaypointExpert:
        grasp, quat, xy = grasp_waypoints(scene, self.params.color)
        lift = Waypoint(at(xy, 0.18, quat), 1.0, speed=0.15, settle=3, tol=0.015)
        return WaypointExpert([*grasp, lift], policy_dt, scene.ee_pose())
