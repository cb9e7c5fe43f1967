"""pick_place: put a named block into the bowl; stack: put a named block on another."""
from __future__ import annotations

import numpy as np

from robot_stack.sim.scene import BLOCK_HALF, BLOCKS, Scene
from robot_stack.sim.tasks.base import (BOWL_CLEARANCE, BOWL_RADIUS, Task, TaskParams, Waypoint, WaypointExpert, at,
                                        grasp_waypoints, place_block, place_clutter, scatter, shaped)


def pick_and_release(scene: Scene, color: str, place_xy, place_z: float, policy_dt: float) -> WaypointExpert:
    """Grasp the block from above, carry it high, lower it to `place_z` and let go."""
    grasp, quat, xy = grasp_waypoints(scene, color)
    carry = 0.16
    place = lambda z: (lambda s: (np.array([*place_xy(s), z]), quat))   # noqa: E731
    return WaypointExpert([
        *grasp,
        Waypoint(at(xy, carry, quat), 1.0, speed=0.2, tol=0.02),
        Waypoint(place(carry), 1.0, speed=0.25, tol=0.01, settle=1),
        Waypoint(place(place_z), 1.0, speed=0.12, tol=0.008, settle=2),
        Waypoint(place(place_z), 0.0, settle=4, tol=0.03),
        Waypoint(place(carry), 0.0, speed=0.2, tol=0.02),
    ], policy_dt, scene.ee_pose())


class PickPlace(Task):
    name = "pick_place"
    max_steps = 150
    instructions = (
        "put the {object} in the {target}",
        "place the {color} block into the {target}",
        "pick up the {object} and drop it in the {target}",
        "move the {color} cube into the {target}",
    )

    def reset(self, scene: Scene, rng: np.random.Generator) -> TaskParams:
        color = BLOCKS[rng.integers(len(BLOCKS))]
        block_xy, bowl_xy = scatter(rng, 2, BOWL_CLEARANCE)
        place_block(scene, color, block_xy, rng)
        scene.set_free_body("bowl", [bowl_xy[0], bowl_xy[1], 0.0])
        place_clutter(scene, rng, {f"{color}_block": block_xy, "bowl": bowl_xy})
        self.params = TaskParams(object=f"{color} block", color=color, target="bowl")
        return self.params

    def _offset(self, scene: Scene) -> np.ndarray:
        return scene.block_pos(self.params.color) - scene.body_pose("bowl")[0]

    def success(self, scene: Scene) -> bool:
        off = self._offset(scene)
        inside = np.linalg.norm(off[:2]) < BOWL_RADIUS - 0.01 and off[2] < 0.05
        released = not scene.touching(scene.gripper_geoms, self.manipulated_geoms(scene))
        return bool(inside and released)

    def dense_reward(self, scene: Scene) -> float:
        if self.success(scene):
            return 1.0
        reach = shaped(float(np.linalg.norm(scene.ee_pose()[0] - scene.block_pos(self.params.color))))
        place = shaped(float(np.linalg.norm(self._offset(scene)[:2])), 5.0)
        return 0.3 * reach + 0.6 * place

    def state(self, scene: Scene) -> np.ndarray:
        pos, quat = scene.body_pose(f"{self.params.color}_block")
        return np.concatenate((pos, quat, scene.body_pose("bowl")[0]))

    def expert(self, scene: Scene, rng: np.random.Generator, policy_dt: float) -> WaypointExpert:
        return pick_and_release(scene, self.params.color, lambda s: s.body_pose("bowl")[0][:2], 0.09, policy_dt)


class Stack(Task):
    name = "stack"
    max_steps = 150
    instructions = (
        "stack the {object} on the {target}",
        "put the {color} block on top of the {target}",
        "place the {object} onto the {target}",
        "build a tower: {color} block on the {target}",
    )

    def reset(self, scene: Scene, rng: np.random.Generator) -> TaskParams:
        top, bottom = rng.choice(len(BLOCKS), size=2, replace=False)
        top, bottom = BLOCKS[top], BLOCKS[bottom]
        top_xy, bottom_xy = scatter(rng, 2, 0.12)
        place_block(scene, top, top_xy, rng)
        place_block(scene, bottom, bottom_xy, rng)
        place_clutter(scene, rng, {f"{top}_block": top_xy, f"{bottom}_block": bottom_xy})
        self.params = TaskParams(object=f"{top} block", color=top, target=f"{bottom} block",
                                 extra={"bottom": bottom})
        return self.params

    def _offset(self, scene: Scene) -> np.ndarray:
        return scene.block_pos(self.params.color) - scene.block_pos(self.params.extra["bottom"])

    def success(self, scene: Scene) -> bool:
        off = self._offset(scene)
        on_top = np.linalg.norm(off[:2]) < 0.02 and abs(off[2] - 2 * BLOCK_HALF) < 0.008
        bottom_down = scene.block_pos(self.params.extra["bottom"])[2] < BLOCK_HALF + 0.005
        released = not scene.touching(scene.gripper_geoms, self.manipulated_geoms(scene))
        return bool(on_top and bottom_down and released)

    def dense_reward(self, scene: Scene) -> float:
        if self.success(scene):
            return 1.0
        reach = shaped(float(np.linalg.norm(scene.ee_pose()[0] - scene.block_pos(self.params.color))))
        goal = self._offset(scene) - np.array([0.0, 0.0, 2 * BLOCK_HALF])
        return 0.3 * reach + 0.6 * shaped(float(np.linalg.norm(goal)), 5.0)

    def state(self, scene: Scene) -> np.ndarray:
        pos, quat = scene.body_pose(f"{self.params.color}_block")
        return np.concatenate((pos, quat, scene.block_pos(self.params.extra["bottom"])))

    def expert(self, scene: Scene, rng: np.random.Generator, policy_dt: float) -> WaypointExpert:
        bottom = self.params.extra["bottom"]
        bottom_xy = scene.block_pos(bottom)[:2]
        return pick_and_release(scene, self.params.color, lambda s: bottom_xy, 3 * BLOCK_HALF + 0.006, policy_dt)
