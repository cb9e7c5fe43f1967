"""arc_over_bowl (unseen): carry a block along a high arc over the bowl and set it down on the spot beyond.

Block, bowl and spot lie on one line with the bowl in the middle, so the way to the spot leads over the
bowl. No training task carries anything over an obstacle and down the other side: pick_place's carry stays
at one height and ends over the bowl, not past it. Success asks that the bowl has not been moved, so
shoving the block along the table through the bowl does not count.
"""
from __future__ import annotations

import numpy as np

from robot_stack.sim.scene import BLOCKS, Scene
from robot_stack.sim.tasks.base import Task, TaskParams, Waypoint, place_block, place_clutter
from robot_stack.sim.tasks.place_at import SPOT_KEEP_OUT, carry_to_spot, on_spot, spot_reward

# Block and spot this far from the bowl's centre: open fingers clear the rim (7.6 cm) by a centimetre or more.
SIDE_DISTANCE = (0.14, 0.17)
# The line spans up to 34 cm, more than the object region's 24 cm in x, so these scenes use a slightly larger
# region, still framed by the front camera and well inside both arms' reach. Not larger in +y: the Panda's
# hand, 20 cm long, grasping a block beyond y = 0.14 near x = 0.64 came down on the cabinet's side wall.
REGION_LOW = np.array([0.34, -0.28])
REGION_HIGH = np.array([0.64, 0.13])
ARC_BASE = 0.12             # TCP height where the arc starts and ends (the carry height of the set-down)
ARC_RISE = 0.12             # the arc's top, over the bowl, is this much higher: 24 cm above the table
ARC_POINTS = 7
BOWL_MOVED = 0.02           # the bowl counts as disturbed beyond this


def arc_layout(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block, bowl and spot on a line, the bowl between, all inside the region and the spot off the zone."""
    for _ in range(1000):
        bowl = rng.uniform(REGION_LOW, REGION_HIGH)
        angle = rng.uniform(-np.pi, np.pi)
        u = np.array([np.cos(angle), np.sin(angle)])
        block = bowl - rng.uniform(*SIDE_DISTANCE) * u
        spot = bowl + rng.uniform(*SIDE_DISTANCE) * u
        inside = all(np.all(p >= REGION_LOW) and np.all(p <= REGION_HIGH) for p in (block, spot))
        if inside and all(np.linalg.norm(spot - c) >= r for c, r in SPOT_KEEP_OUT):
            return block, bowl, spot
    raise RuntimeError("no block-bowl-spot line fits the region")   # never seen: most draws along y fit


class ArcOverBowl(Task):
    name = "arc_over_bowl"
    max_steps = 180
    instructions = (
        "lift the {object} over the bowl and put it on the {target}",
        "carry the {color} block over the bowl to the {target}",
        "move the {object} across the bowl onto the {target} without touching the bowl",
        "take the {color} cube over the top of the bowl and set it down on the {target}",
    )

    def reset(self, scene: Scene, rng: np.random.Generator) -> TaskParams:
        color = BLOCKS[rng.integers(len(BLOCKS))]
        block_xy, bowl_xy, spot_xy = arc_layout(rng)
        place_block(scene, color, block_xy, rng)
        scene.set_free_body("bowl", [bowl_xy[0], bowl_xy[1], 0.0])
        scene.set_spot([spot_xy[0], spot_xy[1], 0.0])
        place_clutter(scene, rng, {f"{color}_block": block_xy, "bowl": bowl_xy, "spot": spot_xy})
        self.params = TaskParams(object=f"{color} block", color=color, target="white spot",
                                 extra={"bowl_start": bowl_xy.round(5).tolist()})
        return self.params

    def _bowl_moved(self, scene: Scene) -> float:
        return float(np.linalg.norm(scene.body_pose("bowl")[0][:2] - self.params.extra["bowl_start"]))

    def success(self, scene: Scene) -> bool:
        return on_spot(scene, self.params.color) and self._bowl_moved(scene) < BOWL_MOVED

    def dense_reward(self, scene: Scene) -> float:
        if self.success(scene):
            return 1.0
        # the spot reward (kept below 1 when the bowl moved), cut by up to a third as the bowl is pushed away
        return min(spot_reward(scene, self.params.color), 0.9) * (1.0 - min(self._bowl_moved(scene) / 0.1, 1.0) / 3)

    def state(self, scene: Scene) -> np.ndarray:
        pos, quat = scene.body_pose(f"{self.params.color}_block")
        return np.concatenate((pos, quat, scene.spot_pos(), scene.body_pose("bowl")[0]))

    def expert(self, scene: Scene, rng: np.random.Generator, policy_dt: float):
        spot = scene.spot_pos()[:2]

        def arc(block_xy: np.ndarray, quat: np.ndarray) -> list[Waypoint]:
            # A half sine from above the block to above the spot, its top over the bowl (the line's middle).
            points = []
            for t in np.linspace(0.0, 1.0, ARC_POINTS + 2)[1:-1]:
                xy = (1 - t) * block_xy + t * spot
                pos = np.array([*xy, ARC_BASE + ARC_RISE * np.sin(np.pi * t)])
                points.append(Waypoint(lambda s, p=pos: (p, quat), 1.0, speed=0.25, tol=0.03))
            return points

        return carry_to_spot(scene, self.params.color, policy_dt, via=arc)
