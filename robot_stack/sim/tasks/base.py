"""What a task is: randomised reset, success predicate, dense and sparse reward, labels.

A task knows the scene but not the controller or the episode loop. Each task module
also holds its scripted expert, so a task reads top to bottom in one file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from robot_stack import transforms as tf
from robot_stack.sim.scene import BLOCK_HALF, BLOCKS, Scene

# Top-down tool orientation: tool z points at the table, fingers close along base y.
DOWN = np.array([1.0, 0.0, 0.0, 0.0])
# Where objects are scattered (base frame, m); the drawer cabinet sits beyond y = 0.25.
OBJECT_REGION_LOW = np.array([0.38, -0.25])
OBJECT_REGION_HIGH = np.array([0.62, 0.13])
BOWL_RADIUS = 0.07          # inner radius of the bowl
ZONE_RADIUS = 0.05          # target zone for push


def top_down(yaw: float = 0.0) -> np.ndarray:
    """Tool pointing down, rotated by `yaw` about the base z axis."""
    return tf.quat_mul(tf.axis_angle_to_quat([0.0, 0.0, yaw]), DOWN)


def grasp_yaw(block_quat: np.ndarray) -> float:
    """Gripper yaw aligned with a block's faces, the one of four nearest zero."""
    rot = tf.quat_to_mat(block_quat)
    yaw = np.arctan2(rot[1, 0], rot[0, 0])
    return float((yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)


@dataclass
class TaskParams:
    """What varies between episodes of a task, used for instructions and predicates."""

    object: str | None = None       # e.g. "red block"
    color: str | None = None        # e.g. "red"
    target: str | None = None       # e.g. "bowl", "green block", "yellow circle"
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"object": self.object, "color": self.color, "target": self.target, **self.extra}


class Task:
    name: str = ""
    max_steps: int = 150
    instructions: tuple[str, ...] = ()
    needs: frozenset[str] = frozenset()    # which objects the task uses (others are clutter)

    def __init__(self):
        self.params = TaskParams()

    # --- reset ------------------------------------------------------------------------
    def reset(self, scene: Scene, rng: np.random.Generator) -> TaskParams:
        """Randomise the scene for a new episode (the arm is placed by the caller)."""
        raise NotImplementedError

    def manipulated_geoms(self, scene: Scene) -> frozenset[int]:
        """Geoms whose contact with the gripper defines the contact phase."""
        if self.params.color is None:
            return frozenset()
        return scene.body_geoms(f"{self.params.color}_block")

    # --- outcome ----------------------------------------------------------------------
    def success(self, scene: Scene) -> bool:
        raise NotImplementedError

    def dense_reward(self, scene: Scene) -> float:
        """Shaped reward in [0, 1]; 1 exactly when successful."""
        raise NotImplementedError

    def sparse_reward(self, scene: Scene) -> float:
        return float(self.success(scene))

    def state(self, scene: Scene) -> np.ndarray:
        """Privileged task state for state-based learning: object pose and goal position."""
        raise NotImplementedError

    # --- labels -----------------------------------------------------------------------
    def instruction(self, rng: np.random.Generator) -> str:
        template = self.instructions[rng.integers(len(self.instructions))]
        return template.format(**self.params.as_dict())

    def expert(self, scene: Scene, rng: np.random.Generator, policy_dt: float) -> "Expert":
        raise NotImplementedError


class Expert:
    """A scripted policy: returns canonical actions (pos, quat xyzw, gripper in [0, 1])."""

    def act(self, scene: Scene) -> np.ndarray:
        raise NotImplementedError



def shaped(distance: float, scale: float = 10.0) -> float:
    return float(1.0 - np.tanh(scale * distance))


def scatter(rng: np.random.Generator, n: int, min_distance: float, keep_out: list[tuple[np.ndarray, float]] = (),
            low: np.ndarray = OBJECT_REGION_LOW, high: np.ndarray = OBJECT_REGION_HIGH) -> list[np.ndarray]:
    """n points in the object region, pairwise and from `keep_out` discs at least apart."""
    for _ in range(1000):
        points: list[np.ndarray] = []
        for _ in range(n):
            for _ in range(200):
                p = rng.uniform(low, high)
                if all(np.linalg.norm(p - q) >= min_distance for q in points) and \
                        all(np.linalg.norm(p - c) >= r for c, r in keep_out):
                    points.append(p)
                    break
        if len(points) == n:
            return points
    raise CrowdedRegion("could not scatter the objects; the region is too crowded")


class CrowdedRegion(RuntimeError):
    """No placement keeps the objects apart (a rare draw leaves no room for a later object)."""


BLOCK_CLEARANCE = 0.10      # centre to centre: open fingers never land on a neighbour
BOWL_CLEARANCE = 0.16


CLUTTER_TRIES = 20


def place_clutter(scene: Scene, rng: np.random.Generator, used: dict[str, np.ndarray]) -> None:
    """Put the objects the task does not use somewhere out of the way of those it does. They go down one by
    one; where the earlier ones leave no room for a later one, all of them are drawn again (push seed 6931's bowl
    left a push scene's last block no room, and the scene raised instead of resetting)."""
    for _ in range(CLUTTER_TRIES):
        try:
            poses = _clutter_poses(rng, used)
        except CrowdedRegion:
            continue
        for name, pos, quat in poses:
            scene.set_free_body(name, pos, quat)
        return
    raise CrowdedRegion(f"no room for the clutter around {sorted(used)} in {CLUTTER_TRIES} draws")


def _clutter_poses(rng: np.random.Generator, used: dict[str, np.ndarray]) -> list[tuple[str, list, np.ndarray | None]]:
    placed = dict(used)

    def keep_out(radius_from_bowl: float, radius_from_block: float) -> list[tuple[np.ndarray, float]]:
        return [(xy, radius_from_bowl if name == "bowl" else radius_from_block) for name, xy in placed.items()]

    poses = []
    if "bowl" not in used:
        xy = scatter(rng, 1, 0.0, keep_out(0.0, BOWL_CLEARANCE))[0]
        poses.append(("bowl", [xy[0], xy[1], 0.0], None))
        placed["bowl"] = xy
    for color in BLOCKS:
        if f"{color}_block" not in used:
            xy = scatter(rng, 1, 0.0, keep_out(BOWL_CLEARANCE, BLOCK_CLEARANCE))[0]
            poses.append((f"{color}_block", [xy[0], xy[1], BLOCK_HALF], _yaw_quat(rng)))
            placed[f"{color}_block"] = xy
    return poses


def _yaw_quat(rng: np.random.Generator) -> np.ndarray:
    return tf.axis_angle_to_quat([0.0, 0.0, rng.uniform(-np.pi / 4, np.pi / 4)])


def place_block(scene: Scene, color: str, xy: np.ndarray, rng: np.random.Generator) -> None:
    scene.set_free_body(f"{color}_block", [xy[0], xy[1], BLOCK_HALF], _yaw_quat(rng))


TargetFn = Callable[[Scene], tuple[np.ndarray, np.ndarray]]


def at(xy: np.ndarray, z: float, quat: np.ndarray) -> TargetFn:
    """A fixed target above the table point `xy` at height `z`."""
    pos = np.array([xy[0], xy[1], z], dtype=float)
    return lambda scene: (pos, quat)


@dataclass
class Waypoint:
    """Go to `target` (evaluated each step) with the gripper at `gripper`, then wait `settle` steps."""

    target: TargetFn
    gripper: float
    tol: float = 0.008
    speed: float = 0.3          # carrot speed (m/s)
    settle: int = 0
    timeout: int = 60


def grasp_waypoints(scene: Scene, color: str) -> tuple[list[Waypoint], np.ndarray, np.ndarray]:
    """Above the block, down with open fingers, close and wait; returns (waypoints, quat, block xy)."""
    _, block_quat = scene.body_pose(f"{color}_block")
    quat = top_down(grasp_yaw(block_quat))
    xy = scene.block_pos(color)[:2]
    return [
        Waypoint(at(xy, 0.10, quat), 0.0, tol=0.01),
        Waypoint(at(xy, BLOCK_HALF, quat), 0.0, speed=0.15, tol=0.006),
        Waypoint(at(xy, BLOCK_HALF, quat), 1.0, settle=5, tol=0.02),
    ], quat, xy


class WaypointExpert(Expert):
    """Moves a carrot toward each waypoint at a bounded speed; advances when reached."""

    def __init__(self, waypoints: list[Waypoint], policy_dt: float, start: tuple[np.ndarray, np.ndarray]):
        self.waypoints = waypoints
        self.dt = policy_dt
        self.index = 0
        self.cmd_pos, self.cmd_quat = np.array(start[0], dtype=float), np.array(start[1], dtype=float)
        self._steps_here = 0
        self._settled = 0

    @property
    def done(self) -> bool:
        return self.index >= len(self.waypoints)

    def act(self, scene: Scene) -> np.ndarray:
        if self.done:
            wp = self.waypoints[-1]
            return np.concatenate((self.cmd_pos, self.cmd_quat, [wp.gripper]))
        wp = self.waypoints[self.index]
        pos, quat = wp.target(scene)
        delta = pos - self.cmd_pos
        dist = np.linalg.norm(delta)
        max_step = wp.speed * self.dt
        self.cmd_pos = pos.copy() if dist <= max_step else self.cmd_pos + delta * (max_step / dist)
        angle = tf.angle_between(quat, self.cmd_quat)
        self.cmd_quat = quat.copy() if angle <= 0.25 else tf.slerp(self.cmd_quat, quat, 0.25 / angle)
        self._steps_here += 1
        tcp, _ = scene.ee_pose()
        reached = dist <= max_step and np.linalg.norm(tcp - pos) < wp.tol
        if reached:
            self._settled += 1
        if (reached and self._settled > wp.settle) or self._steps_here >= wp.timeout:
            self.index += 1
            self._steps_here = 0
            self._settled = 0
        return np.concatenate((self.cmd_pos, self.cmd_quat, [wp.gripper]))
