"""push: slide a block into the yellow target zone with closed fingers."""
from __future__ import annotations

import numpy as np

from robot_stack.sim.scene import BLOCK_HALF, BLOCKS, Scene
from robot_stack.sim.tasks.base import (OBJECT_REGION_HIGH, OBJECT_REGION_LOW, ZONE_RADIUS, Expert, Task,
                                        TaskParams, place_block, place_clutter, scatter, shaped, top_down)

PUSH_Z = 0.015          # TCP height while pushing (fingertips just above the table)
HOVER_Z = 0.08
STANDOFF = BLOCK_HALF * np.sqrt(2) + 0.025   # pusher start, behind the block centre


class Push(Task):
    name = "push"
    max_steps = 150
    instructions = (
        "push the {object} to the {target}",
        "slide the {color} block onto the {target}",
        "move the {object} into the {target} by pushing it",
        "nudge the {color} cube over to the {target}",
    )

    def reset(self, scene: Scene, rng: np.random.Generator) -> TaskParams:
        color = BLOCKS[rng.integers(len(BLOCKS))]
        for _ in range(100):
            block_xy = scatter(rng, 1, 0.0)[0]
            angle = rng.uniform(-np.pi, np.pi)
            zone_xy = block_xy + rng.uniform(0.12, 0.2) * np.array([np.cos(angle), np.sin(angle)])
            if np.all(zone_xy >= OBJECT_REGION_LOW) and np.all(zone_xy <= OBJECT_REGION_HIGH):
                break
        place_block(scene, color, block_xy, rng)
        scene.set_target_zone([zone_xy[0], zone_xy[1], 0.0])
        place_clutter(scene, rng, {f"{color}_block": block_xy, "zone": zone_xy, "path": (block_xy + zone_xy) / 2})
        self.params = TaskParams(object=f"{color} block", color=color, target="yellow circle")
        return self.params

    def _distance(self, scene: Scene) -> float:
        return float(np.linalg.norm(scene.block_pos(self.params.color)[:2] - scene.target_zone_pos()[:2]))

    def success(self, scene: Scene) -> bool:
        return self._distance(scene) < ZONE_RADIUS and scene.block_pos(self.params.color)[2] < BLOCK_HALF + 0.005

    def dense_reward(self, scene: Scene) -> float:
        if self.success(scene):
            return 1.0
        reach = shaped(float(np.linalg.norm(scene.ee_pose()[0] - scene.block_pos(self.params.color))))
        return 0.3 * reach + 0.6 * shaped(self._distance(scene), 5.0)

    def state(self, scene: Scene) -> np.ndarray:
        pos, quat = scene.body_pose(f"{self.params.color}_block")
        return np.concatenate((pos, quat, scene.target_zone_pos()))

    def expert(self, scene: Scene, rng: np.random.Generator, policy_dt: float) -> "PushExpert":
        return PushExpert(self.params.color, policy_dt, scene.ee_pose())


class LinePusher(Expert):
    """A closed-loop pusher: line up behind the block, come down, push through its centre, retreat and re-approach
    when it drifts off the line. The commanded TCP `cmd` moves in straight lines at set speeds."""

    def __init__(self, policy_dt: float, start: tuple[np.ndarray, np.ndarray]):
        self.dt = policy_dt
        self.cmd = np.array(start[0], dtype=float)
        self.quat = np.array(start[1], dtype=float)
        self.state = "approach"

    def _toward(self, target: np.ndarray, speed: float) -> bool:
        """One policy step of `cmd` toward `target` at `speed` (m/s); whether it is there."""
        delta = target - self.cmd
        dist = np.linalg.norm(delta)
        step = speed * self.dt
        self.cmd = target.copy() if dist <= step else self.cmd + delta * (step / dist)
        return dist <= step

    def _push_step(self, tcp: np.ndarray, block: np.ndarray, direction: np.ndarray, end: np.ndarray) -> np.ndarray:
        """One step of the cycle against `block` along the unit `direction`, the pusher going no farther than `end`
        (xy); the action."""
        pre = block - direction * STANDOFF
        if self.state == "approach":
            if self._toward(np.array([*pre, HOVER_Z]), 0.3) and np.linalg.norm(tcp[:2] - pre) < 0.01:
                self.state = "descend"
        elif self.state == "descend":
            if self._toward(np.array([*pre, PUSH_Z]), 0.2) and tcp[2] < PUSH_Z + 0.01:
                self.state = "push"
        elif self.state == "push":
            rel = tcp[:2] - block
            lateral = abs(rel[0] * direction[1] - rel[1] * direction[0])
            if lateral > 0.015 or np.dot(rel, direction) > -BLOCK_HALF:
                self.state = "retreat"
            else:
                along = pre + direction * min(np.dot(end - pre, direction), 0.03)
                self._toward(np.array([*along, PUSH_Z]), 0.1)
        elif self.state == "retreat":
            if self._toward(np.array([*self.cmd[:2], HOVER_Z]), 0.2):
                self.state = "approach"
        elif self.state == "done":
            self._toward(np.array([*self.cmd[:2], HOVER_Z]), 0.1)
        return np.concatenate((self.cmd, self.quat, [1.0]))


class PushExpert(LinePusher):
    """Closed-loop pushing: line up behind the block, push through its centre, re-approach when it drifts."""

    def __init__(self, color: str, policy_dt: float, start: tuple[np.ndarray, np.ndarray]):
        self.color = color
        super().__init__(policy_dt, start)

    def act(self, scene: Scene) -> np.ndarray:
        block = scene.block_pos(self.color)[:2]
        goal = scene.target_zone_pos()[:2]
        to_goal = goal - block
        remaining = np.linalg.norm(to_goal)
        direction = to_goal / max(remaining, 1e-6)
        yaw = np.arctan2(direction[1], direction[0])
        yaw = (yaw + np.pi / 2) % np.pi - np.pi / 2           # the closed fingers are symmetric
        self.quat = top_down(yaw)
        tcp = scene.ee_pose()[0]
        if remaining < 0.012:
            self.state = "done"
        return self._push_step(tcp, block, direction, end=goal - direction * STANDOFF)
