"""out_of_bowl (unseen): take a block out of the bowl and set it down on the marked spot.

Every training task that touches the bowl puts something into it; none reaches into it and takes
something out. The block starts on the bowl's floor (inside its rim, turned at random), and the spot is
drawn on the table clear of the bowl, as for place_at.
"""
from __future__ import annotations

import numpy as np

from robot_stack import transforms as tf
from robot_stack.sim.scene import BLOCK_HALF, BLOCKS, Scene
from robot_stack.sim.tasks.base import BOWL_CLEARANCE, TaskParams, place_clutter, scatter
from robot_stack.sim.tasks.place_at import SPOT_KEEP_OUT, PlaceAt

BOWL_FLOOR = 0.004          # top of the bowl's base (scene.xml: a 2 mm half-height disc at 2 mm)
IN_BOWL_OFFSET = 0.015      # the block's centre within this of the bowl's: its corners clear the wall (6.4 cm)


class OutOfBowl(PlaceAt):
    """place_at's goal (the block on the spot), its success, reward and carry; only the start differs."""

    name = "out_of_bowl"
    max_steps = 150
    instructions = (
        "take the {object} out of the bowl and put it on the {target}",
        "lift the {color} block out of the bowl onto the {target}",
        "remove the {object} from the bowl and place it on the {target}",
        "get the {color} cube out of the bowl and set it down on the {target}",
    )

    def reset(self, scene: Scene, rng: np.random.Generator) -> TaskParams:
        color = BLOCKS[rng.integers(len(BLOCKS))]
        # the spot as far from the bowl as pick_place keeps block and bowl apart: a real carry, and open
        # fingers setting the block down never touch the rim
        bowl_xy, spot_xy = scatter(rng, 2, BOWL_CLEARANCE, keep_out=SPOT_KEEP_OUT)
        scene.set_free_body("bowl", [bowl_xy[0], bowl_xy[1], 0.0])
        angle, r = rng.uniform(-np.pi, np.pi), rng.uniform(0.0, IN_BOWL_OFFSET)
        block_xy = bowl_xy + r * np.array([np.cos(angle), np.sin(angle)])
        yaw = tf.axis_angle_to_quat([0.0, 0.0, rng.uniform(-np.pi / 4, np.pi / 4)])
        scene.set_free_body(f"{color}_block", [block_xy[0], block_xy[1], BOWL_FLOOR + BLOCK_HALF], yaw)
        scene.set_spot([spot_xy[0], spot_xy[1], 0.0])
        place_clutter(scene, rng, {f"{color}_block": block_xy, "bowl": bowl_xy, "spot": spot_xy})
        self.params = TaskParams(object=f"{color} block", color=color, target="white spot")
        return self.params

    def state(self, scene: Scene) -> np.ndarray:
        return np.concatenate((super().state(scene), scene.body_pose("bowl")[0]))
