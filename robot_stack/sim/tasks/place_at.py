"""place_at (unseen): pick a named block and set it down on a marked table spot.

No training task puts a block down on the bare table at a chosen point: pick_place lets go over the bowl,
stack on a block, lift never lets go. The spot is a flat white disc (scene.xml's `spot`, the success radius
wide) drawn per seed anywhere in the object region, which the front camera frames. The helpers here (the
spot's success test, the carry-and-set-down expert) serve the other unseen tasks that end on the spot.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from robot_stack.sim.scene import BLOCK_HALF, BLOCKS, Scene
from robot_stack.sim.tasks.base import (Task, TaskParams, Waypoint, WaypointExpert, at,
                                        grasp_waypoints, place_block, place_clutter, scatter, shaped)

SPOT_RADIUS = 0.03          # success: the block's centre within this of the spot's centre (the disc's radius)
RESTING_Z = BLOCK_HALF + 0.005   # the block's centre no higher than this: it lies on the table, not in the hand
# Where push and reach leave the yellow target zone when no task draws it (scene.xml); the spot keeps clear
# of it, so the two discs never overlap in the image.
ZONE_DEFAULT_XY = np.array([0.55, 0.1])
ZONE_KEEP_OUT = 0.09
SPOT_KEEP_OUT = [(ZONE_DEFAULT_XY, ZONE_KEEP_OUT)]
SET_DOWN_Z = BLOCK_HALF + 0.004  # TCP (= block centre) height at release: the block drops 4 mm at most
MAX_HOLD_OFFSET = 0.02           # a held block's centre is at most this far (xy) from the TCP
PART_OPEN = 0.03                 # per-finger opening (m) for a grasp inside the bowl: 1 cm each side of a block


def spot_distance(scene: Scene, color: str) -> float:
    return float(np.linalg.norm(scene.block_pos(color)[:2] - scene.spot_pos()[:2]))


def on_spot(scene: Scene, color: str) -> bool:
    """The block lies on the table within SPOT_RADIUS of the spot's centre and the gripper has let go."""
    resting = scene.block_pos(color)[2] < RESTING_Z
    released = not scene.touching(scene.gripper_geoms, scene.body_geoms(f"{color}_block"))
    return bool(spot_distance(scene, color) < SPOT_RADIUS and resting and released)


def spot_reward(scene: Scene, color: str) -> float:
    """Dense reward toward the spot: near the block, then the block near the spot (1 only on success)."""
    if on_spot(scene, color):
        return 1.0
    reach = shaped(float(np.linalg.norm(scene.ee_pose()[0] - scene.block_pos(color))))
    return 0.3 * reach + 0.6 * shaped(spot_distance(scene, color), 5.0)


def over_spot(z: float, quat: np.ndarray, color: str) -> Callable[[Scene], tuple[np.ndarray, np.ndarray]]:
    """A TCP target that puts the held block (not the TCP) over the spot: the block sits wherever the fingers
    closed on it, up to a centimetre off the TCP along the fingers, and the spot allows 3 cm in all."""
    def target(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
        tcp = scene.ee_pose()[0]
        offset = tcp[:2] - scene.block_pos(color)[:2]
        # no more than the fingers allow: after a missed grasp the block stays behind, and an unbounded offset
        # sent the target after the TCP, out of the workspace
        offset *= min(1.0, MAX_HOLD_OFFSET / max(float(np.linalg.norm(offset)), 1e-9))
        return np.array([*(scene.spot_pos()[:2] + offset), z]), quat
    return target


def carry_to_spot(scene: Scene, color: str, policy_dt: float,
                  via: Callable[[np.ndarray, np.ndarray], list[Waypoint]] = lambda xy, quat: []) -> WaypointExpert:
    """Grasp the block where it lies, lift it, follow `via` (waypoints built from the block's xy and the grasp
    quat), come down over the spot, set the block on the table and let go, then rise clear."""
    grasp, quat, xy = grasp_waypoints(scene, color)
    carry = 0.12
    # grasp_waypoints closes at a block on the table; a block resting higher (on the bowl's floor) is
    # grasped at its own centre instead, and with the fingers only partly open: fully open, the UR5e's
    # reach 5.5 cm from the block's centre and came down on the bowl's wall (6.4 cm from its centre)
    z = max(float(scene.block_pos(color)[2]), BLOCK_HALF)
    if z > BLOCK_HALF + 0.002:
        part_open = 1.0 - PART_OPEN / scene.spec.gripper.max_opening
        grasp = [Waypoint(at(xy, 0.10, quat), part_open, tol=0.01),
                 Waypoint(at(xy, z, quat), part_open, speed=0.15, tol=0.006),
                 Waypoint(at(xy, z, quat), 1.0, settle=5, tol=0.02)]
    return WaypointExpert([
        *grasp,
        Waypoint(at(xy, carry, quat), 1.0, speed=0.2, tol=0.02),
        *via(xy, quat),
        Waypoint(over_spot(carry, quat, color), 1.0, speed=0.25, tol=0.01, settle=1),
        Waypoint(over_spot(SET_DOWN_Z, quat, color), 1.0, speed=0.12, tol=0.008, settle=2),
        Waypoint(over_spot(SET_DOWN_Z, quat, color), 0.0, settle=4, tol=0.03),
        Waypoint(over_spot(carry, quat, color), 0.0, speed=0.2, tol=0.02),
    ], policy_dt, scene.ee_pose())


class PlaceAt(Task):
    name = "place_at"
    max_steps = 150
    instructions = (
        "put the {object} on the {target}",
        "set the {color} block down on the {target}",
        "place the {object} onto the {target}",
        "pick up the {color} cube and put it on the {target}",
    )

    def reset(self, scene: Scene, rng: np.random.Generator) -> TaskParams:
        color = BLOCKS[rng.integers(len(BLOCKS))]
        # 12 cm apart at least: the block never starts on the spot, and setting it down is a real carry
        block_xy, spot_xy = scatter(rng, 2, 0.12, keep_out=SPOT_KEEP_OUT)
        place_block(scene, color, block_xy, rng)
        scene.set_spot([spot_xy[0], spot_xy[1], 0.0])
        # the bowl and the other blocks keep off the spot (as off push's zone): the block must fit there
        place_clutter(scene, rng, {f"{color}_block": block_xy, "spot": spot_xy})
        self.params = TaskParams(object=f"{color} block", color=color, target="white spot")
        return self.params

    def success(self, scene: Scene) -> bool:
        return on_spot(scene, self.params.color)

    def dense_reward(self, scene: Scene) -> float:
        return spot_reward(scene, self.params.color)

    def state(self, scene: Scene) -> np.ndarray:
        pos, quat = scene.body_pose(f"{self.params.color}_block")
        return np.concatenate((pos, quat, scene.spot_pos()))

    def expert(self, scene: Scene, rng: np.random.Generator, policy_dt: float) -> WaypointExpert:
        return carry_to_spot(scene, self.params.color, policy_dt)

