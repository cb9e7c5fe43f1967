"""drawer_open / drawer_close: pull the drawer out by its handle, or push it shut."""
from __future__ import annotations

import numpy as np

from robot_stack.sim.scene import Scene
from robot_stack.sim.tasks.base import Task, TaskParams, Waypoint, WaypointExpert, place_clutter, shaped, top_down

OPEN_ENOUGH = 0.12      # m out of 0.16
CLOSED_ENOUGH = 0.015


class _Drawer(Task):
    max_steps = 150

    def manipulated_geoms(self, scene: Scene) -> frozenset[int]:
        return scene.body_geoms("drawer")

    def state(self, scene: Scene) -> np.ndarray:
        return np.concatenate((scene.handle_pos(), [scene.drawer_opening]))

    def _reach(self, scene: Scene) -> float:
        return shaped(float(np.linalg.norm(scene.ee_pose()[0] - scene.handle_pos())))


class DrawerOpen(_Drawer):
    name = "drawer_open"
    instructions = (
        "open the {target}",
        "pull the {target} open",
        "slide the {target} out",
        "grab the handle and open the {target}",
    )

    def reset(self, scene: Scene, rng: np.random.Generator) -> TaskParams:
        scene.set_drawer(rng.uniform(0.0, 0.02))
        place_clutter(scene, rng, {})
        self.params = TaskParams(target="drawer")
        return self.params

    def success(self, scene: Scene) -> bool:
        return scene.drawer_opening >= OPEN_ENOUGH

    def dense_reward(self, scene: Scene) -> float:
        if self.success(scene):
            return 1.0
        return 0.3 * self._reach(scene) + 0.6 * float(np.clip(scene.drawer_opening / OPEN_ENOUGH, 0, 1))

    def expert(self, scene: Scene, rng: np.random.Generator, policy_dt: float) -> WaypointExpert:
        quat = top_down(np.pi / 2)                      # fingers close along base x, around the bar
        handle = scene.handle_pos()
        part_open = 1.0 - 0.022 / scene.spec.gripper.max_opening
        pull_to = handle - np.array([OPEN_ENOUGH + 0.03, 0.0, 0.0])
        fixed = lambda p: (lambda s: (p, quat))          # noqa: E731
        return WaypointExpert([
            Waypoint(fixed(handle + [0, 0, 0.08]), part_open, tol=0.008),
            Waypoint(fixed(handle), part_open, speed=0.12, tol=0.005),
            Waypoint(fixed(handle), 1.0, settle=4, tol=0.02),
            Waypoint(fixed(pull_to), 1.0, speed=0.1, tol=0.01, timeout=40),
            Waypoint(fixed(pull_to), 0.0, settle=3, tol=0.03),
            Waypoint(fixed(pull_to + [0, 0, 0.08]), 0.0, tol=0.02),
        ], policy_dt, scene.ee_pose())


class DrawerClose(_Drawer):
    name = "drawer_close"
    instructions = (
        "close the {target}",
        "push the {target} shut",
        "slide the {target} closed",
        "push the {target} back in",
    )

    def reset(self, scene: Scene, rng: np.random.Generator) -> TaskParams:
        scene.set_drawer(rng.uniform(0.10, 0.15))
        place_clutter(scene, rng, {})
        self.params = TaskParams(target="drawer")
        return self.params

    def success(self, scene: Scene) -> bool:
        return scene.drawer_opening <= CLOSED_ENOUGH

    def dense_reward(self, scene: Scene) -> float:
        if self.success(scene):
            return 1.0
        return 0.3 * self._reach(scene) + 0.6 * float(np.clip(1 - scene.drawer_opening / 0.15, 0, 1))

    def expert(self, scene: Scene, rng: np.random.Generator, policy_dt: float) -> WaypointExpert:
        quat = top_down(0.0)
        handle = scene.handle_pos()
        behind = handle - np.array([0.05, 0.0, 0.0])
        shut = handle + np.array([scene.drawer_opening + 0.005, 0.0, 0.0])
        fixed = lambda p: (lambda s: (p, quat))          # noqa: E731
        return WaypointExpert([
            Waypoint(fixed(behind + [0, 0, 0.08]), 1.0, tol=0.01),
            Waypoint(fixed(behind), 1.0, speed=0.15, tol=0.006),
            Waypoint(fixed(shut), 1.0, speed=0.12, tol=0.01, timeout=30),
            Waypoint(fixed(shut + [-0.06, 0, 0.06]), 1.0, tol=0.02),
        ], policy_dt, scene.ee_pose())
