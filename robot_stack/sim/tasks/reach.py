"""reach: bring the TCP within 2 cm of a marker floating over the table."""
from __future__ import annotations

import numpy as np

from robot_stack.sim.scene import Scene
from robot_stack.sim.tasks.base import Task, TaskParams, Waypoint, WaypointExpert, place_clutter, shaped, top_down

SUCCESS_DISTANCE = 0.02


class Reach(Task):
    name = "reach"
    max_steps = 60
    instructions = (
        "move the gripper to the {target}",
        "reach for the {target}",
        "put your hand on the {target}",
        "go to the {target}",
    )

    def reset(self, scene: Scene, rng: np.random.Generator) -> TaskParams:
        goal = np.array([rng.uniform(0.35, 0.6), rng.uniform(-0.2, 0.15), rng.uniform(0.05, 0.3)])
        scene.set_target_zone(goal)
        place_clutter(scene, rng, {})
        self.params = TaskParams(target="yellow marker", extra={"goal": goal.round(4).tolist()})
        return self.params

    def _distance(self, scene: Scene) -> float:
        return float(np.linalg.norm(scene.ee_pose()[0] - scene.target_zone_pos()))

    def success(self, scene: Scene) -> bool:
        return self._distance(scene) < SUCCESS_DISTANCE

    def dense_reward(self, scene: Scene) -> float:
        return 1.0 if self.success(scene) else shaped(self._distance(scene))

    def state(self, scene: Scene) -> np.ndarray:
        return scene.target_zone_pos()

    def expert(self, scene: Scene, rng: np.random.Generator, policy_dt: float) -> WaypointExpert:
        quat = top_down(rng.uniform(-0.3, 0.3))
        return WaypointExpert([Waypoint(lambda s: (s.target_zone_pos(), quat), 0.0, tol=0.005, settle=2)],
                              policy_dt, scene.ee_pose())
