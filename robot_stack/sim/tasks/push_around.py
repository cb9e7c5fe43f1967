"""push_around (unseen): push a block to the yellow zone along an L, around the bowl that blocks the way.

The push task draws its zone in every direction from the block (any angle in (-pi, pi)), so no push
direction is new; what it never does is change direction: each of its episodes is one straight push. Here
the bowl sits across the straight line from block to zone, and the block must go along two perpendicular
legs, to a corner and then on to the zone, re-approaching it from a new side in between. Success asks that
the bowl has not moved, so pushing straight through it does not count.
"""
from __future__ import annotations

import numpy as np

from robot_stack import transforms as tf
from robot_stack.sim.scene import BLOCK_HALF, BLOCKS, Scene
from robot_stack.sim.tasks.base import (ZONE_RADIUS, CrowdedRegion, Task, TaskParams,
                                        place_clutter, shaped, top_down)
from robot_stack.sim.tasks.push import LinePusher

FIRST_LEG = (0.12, 0.16)        # block to corner (m)
SECOND_LEG = (0.14, 0.18)       # corner to zone
# The bowl's centre this far from each leg's line: rim (7.6 cm) to a pushed block's corner (2.8 cm) is then
# 2 cm or more. And no farther than BLOCKED from the straight line block-zone: a block pushed straight
# meets the rim (7.6 + 2 cm) with 2.6 cm to spare.
LEG_CLEARANCE = (0.125, 0.14)
BLOCKED = 0.07
# The layout spans about 22 x 27 cm with the pusher's standoff; it uses the region of arc_over_bowl.
REGION_LOW = np.array([0.34, -0.28])
REGION_HIGH = np.array([0.64, 0.13])
BOWL_MOVED = 0.02
LEG_DONE = 0.012                # a leg ends with the block this close to level with its goal
FINAL_OK = 0.03                 # ... and the last with the block this close to the zone's centre, or once more
MAX_EXTRA_LEGS = 2
CONTACT = BLOCK_HALF + 0.012    # pusher TCP to block centre while pushing: half a block and a finger


def segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    t = np.clip(np.dot(p - a, b - a) / np.dot(b - a, b - a), 0.0, 1.0)
    return float(np.linalg.norm(p - (a + t * (b - a))))


def l_layout(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Block, corner, zone and bowl: legs along the base axes, the bowl inside the L's bend, across the
    straight line. About one draw in sixty fits the region."""
    axes = (np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    for _ in range(20000):
        k = rng.integers(2)
        first, second = axes[k] * rng.choice([-1, 1]), axes[1 - k] * rng.choice([-1, 1])
        corner = rng.uniform(REGION_LOW, REGION_HIGH)
        block = corner - rng.uniform(*FIRST_LEG) * first
        zone = corner + rng.uniform(*SECOND_LEG) * second
        bowl = corner - rng.uniform(*LEG_CLEARANCE) * first + rng.uniform(*LEG_CLEARANCE) * second
        inside = all(np.all(p >= REGION_LOW) and np.all(p <= REGION_HIGH) for p in (block, corner, zone, bowl))
        if inside and segment_distance(bowl, block, zone) <= BLOCKED:
            return block, corner, zone, bowl
    raise RuntimeError("no L-shaped layout fits the region")


class PushAround(Task):
    name = "push_around"
    max_steps = 200
    instructions = (
        "push the {object} around the bowl to the {target}",
        "slide the {color} block to the {target} without hitting the bowl",
        "push the {object} to the {target}, going around the bowl",
        "nudge the {color} cube around the bowl onto the {target}",
    )

    def reset(self, scene: Scene, rng: np.random.Generator) -> TaskParams:
        color = BLOCKS[rng.integers(len(BLOCKS))]
        for _ in range(20):
            block_xy, corner, zone_xy, bowl_xy = l_layout(rng)
            try:     # the other blocks keep off both legs; a layout that leaves them no room is drawn again
                place_clutter(scene, rng, {f"{color}_block": block_xy, "corner": corner, "zone": zone_xy,
                                           "bowl": bowl_xy, "leg1": (block_xy + corner) / 2,
                                           "leg2": (corner + zone_xy) / 2})
                break
            except CrowdedRegion:
                continue
        else:
            raise CrowdedRegion("no push_around layout left room for the other blocks in 20 draws")
        # The block's faces along the legs (within 6 degrees): a block turned by up to 45 degrees, as the other
        # tasks draw it, slides sideways off a straight push by 3-4 cm over a 15 cm leg, into the bowl's way.
        yaw = rng.uniform(-0.1, 0.1)
        scene.set_free_body(f"{color}_block", [*block_xy, BLOCK_HALF], tf.axis_angle_to_quat([0.0, 0.0, yaw]))
        scene.set_free_body("bowl", [bowl_xy[0], bowl_xy[1], 0.0])
        scene.set_target_zone([zone_xy[0], zone_xy[1], 0.0])
        self.params = TaskParams(object=f"{color} block", color=color, target="yellow circle",
                                 extra={"corner": corner.round(5).tolist(), "bowl_start": bowl_xy.round(5).tolist()})
        return self.params

    def _distance(self, scene: Scene) -> float:
        return float(np.linalg.norm(scene.block_pos(self.params.color)[:2] - scene.target_zone_pos()[:2]))

    def _bowl_moved(self, scene: Scene) -> float:
        return float(np.linalg.norm(scene.body_pose("bowl")[0][:2] - self.params.extra["bowl_start"]))

    def success(self, scene: Scene) -> bool:
        on_table = scene.block_pos(self.params.color)[2] < BLOCK_HALF + 0.005
        return self._distance(scene) < ZONE_RADIUS and on_table and self._bowl_moved(scene) < BOWL_MOVED

    def dense_reward(self, scene: Scene) -> float:
        if self.success(scene):
            return 1.0
        reach = shaped(float(np.linalg.norm(scene.ee_pose()[0] - scene.block_pos(self.params.color))))
        bowl_kept = 1.0 - min(self._bowl_moved(scene) / 0.1, 1.0)
        return (0.3 * reach + 0.6 * shaped(self._distance(scene), 5.0)) * (2 + bowl_kept) / 3

    def state(self, scene: Scene) -> np.ndarray:
        pos, quat = scene.body_pose(f"{self.params.color}_block")
        return np.concatenate((pos, quat, scene.target_zone_pos(), scene.body_pose("bowl")[0]))

    def expert(self, scene: Scene, rng: np.random.Generator, policy_dt: float) -> "LPushExpert":
        goals = [np.array(self.params.extra["corner"]), scene.target_zone_pos()[:2]]
        return LPushExpert(self.params.color, goals, policy_dt, scene.ee_pose())


class LPushExpert(LinePusher):
    """push.py's closed-loop pusher (line up behind the block, push through its centre, re-approach when it
    drifts) over a list of goals, one straight leg each.

    Each leg pushes along one fixed axis, from where the block was when the leg began to its goal, the
    pusher kept behind the block's centre, and ends when the block is level with the goal. Steering a pushed
    block back onto a line (pure pursuit), or aiming at the goal afresh each step as push.py does, pushes
    it off-centre, turns it and made it drift more: 4 cm over a 15 cm leg, and the next approach came down
    on the bowl's rim. A block that ends the last leg more than FINAL_OK from the zone's centre gets one
    more leg straight at it, from the side it drifted to."""

    def __init__(self, color: str, goals: list[np.ndarray], policy_dt: float, start: tuple[np.ndarray, np.ndarray]):
        self.color = color
        self.goals = list(goals)
        self.leg = 0
        self.axis: np.ndarray | None = None     # this leg's push direction, fixed when it begins
        self.extra_legs = 0
        super().__init__(policy_dt, start)

    def _next_leg(self, block: np.ndarray) -> None:
        """The leg after this one (or a corrective one at the zone, or done); lift off and come at the block
        from its new side."""
        zone = self.goals[-1]
        if self.leg + 1 < len(self.goals):
            self.leg += 1
        elif np.linalg.norm(zone - block) > FINAL_OK and self.extra_legs < MAX_EXTRA_LEGS:
            self.extra_legs += 1
        else:
            self.state = "done"
            return
        self.axis = None
        self.state = "retreat"

    def act(self, scene: Scene) -> np.ndarray:
        block = scene.block_pos(self.color)[:2]
        goal = self.goals[self.leg]
        if self.axis is None:
            self.axis = (goal - block) / max(float(np.linalg.norm(goal - block)), 1e-6)
        remaining = float(np.dot(goal - block, self.axis))
        if remaining < LEG_DONE and self.state not in ("done", "retreat"):
            self._next_leg(block)
            if self.axis is None:
                goal = self.goals[self.leg]
                self.axis = (goal - block) / max(float(np.linalg.norm(goal - block)), 1e-6)
                remaining = float(np.dot(goal - block, self.axis))
        direction = self.axis
        yaw = (np.arctan2(direction[1], direction[0]) + np.pi / 2) % np.pi - np.pi / 2   # symmetric fingers
        if self.state == "approach":
            self.quat = top_down(yaw)
        # push.py stops the pusher a standoff short of the goal, which leaves the block 2-3 cm short: enough for
        # its 5 cm zone, not for a corner that the next leg starts from
        return self._push_step(scene.ee_pose()[0], block, direction, end=block + direction * (remaining - CONTACT))
