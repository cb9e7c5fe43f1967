"""What the human hand does in each skill: keyframes drawn with human-like variation.

Variation, per clip: where the hand starts, the approach direction (from above, from the front or the
side), the hand's tilt, the grasp point along the handle or on the block, the speed of every segment,
pauses, how far the drawer goes, where the block is set down. The drawer skills grasp the handle palm down
with the fingers across it; pick_place grasps the block palm down, fingers and thumb on opposite faces.
"""
from __future__ import annotations

import numpy as np

from robot_stack import transforms as tf
from robot_stack.human.hand import wrist_for_grasp
from robot_stack.human.motion import Keyframe
from robot_stack.human.scene import HumanScene
from robot_stack.sim.tasks.base import grasp_yaw

SKILLS = ("drawer_open", "drawer_close", "pick_place")
# palm down, fingers pointing away from the person (toward base -x): hand x = -base x, hand z = -base z
PALM_DOWN_AWAY = tf.quat_mul(tf.axis_angle_to_quat([0.0, 0.0, np.pi]), tf.axis_angle_to_quat([np.pi, 0.0, 0.0]))


def hand_quat(yaw: float, rng: np.random.Generator, tilt: float = 0.15) -> np.ndarray:
    """Palm down, turned by `yaw` about base z, tilted a little about the hand's own axes."""
    wobble = tf.euler_to_quat(rng.uniform(-tilt, tilt), rng.uniform(-tilt, tilt), 0.0)
    return tf.normalize(tf.quat_mul(tf.axis_angle_to_quat([0.0, 0.0, yaw]), tf.quat_mul(PALM_DOWN_AWAY, wobble)))


def _speed(rng: np.random.Generator) -> float:
    """This clip's tempo: a factor on every duration."""
    return float(rng.uniform(0.75, 1.35))


def _pause(rng: np.random.Generator, p: float = 0.3, longest: float = 0.6) -> float:
    return float(rng.uniform(0.1, longest)) if rng.random() < p else 0.0


def _start(rng: np.random.Generator, near: np.ndarray) -> Keyframe:
    pos = np.array([0.85, 0.0, 0.3]) + rng.uniform([-0.06, -0.12, -0.05], [0.06, 0.12, 0.06])
    pos[:2] = 0.6 * pos[:2] + 0.4 * near[:2]
    return Keyframe(pos, hand_quat(rng.uniform(-0.6, 0.6), rng, 0.3), rng.uniform(0.1, 0.35), 0.0, phase="approach")


def _approach(rng, grasp_point: np.ndarray, quat: np.ndarray, tempo: float) -> list[Keyframe]:
    """Pre-grasp above the object (from above, the front or a side), then down onto it with an open hand."""
    side = rng.uniform(-1, 1, size=2) * 0.04
    above = grasp_point + np.array([side[0], side[1], rng.uniform(0.06, 0.12)])
    return [
        Keyframe(wrist_for_grasp(above, quat), quat, 0.0, tempo * rng.uniform(0.9, 1.5), _pause(rng), phase="approach"),
        Keyframe(wrist_for_grasp(grasp_point, quat), quat, 0.0, tempo * rng.uniform(0.5, 0.9), _pause(rng, 0.2, 0.3),
                 phase="approach"),
        Keyframe(wrist_for_grasp(grasp_point, quat), quat, 1.0, tempo * rng.uniform(0.3, 0.5), 0.1, phase="grasp"),
    ]


def _release_and_retreat(rng, last: Keyframe, tempo: float) -> list[Keyframe]:
    away = last.pos + np.array([rng.uniform(0.0, 0.06), rng.uniform(-0.04, 0.04), rng.uniform(0.07, 0.12)])
    return [
        Keyframe(last.pos, last.quat, 0.0, tempo * rng.uniform(0.3, 0.5), phase="release"),
        Keyframe(away, hand_quat(rng.uniform(-0.4, 0.4), rng, 0.25), rng.uniform(0.1, 0.3),
                 tempo * rng.uniform(0.6, 1.0), _pause(rng, 0.5, 0.5), phase="retreat"),
    ]


def _drawer(scene: HumanScene, rng: np.random.Generator, opening_to: float) -> list[Keyframe]:
    tempo = _speed(rng)
    grasp = scene.handle_pos() + np.array([0.0, rng.uniform(-0.04, 0.04), 0.0])
    quat = hand_quat(rng.uniform(-0.3, 0.3), rng)
    frames = [_start(rng, grasp), *_approach(rng, grasp, quat, tempo)]
    travel = opening_to - scene.drawer_opening          # the drawer slides along base -x as it opens
    speed = rng.uniform(0.08, 0.18)
    end = grasp + np.array([-travel, rng.uniform(-0.006, 0.006), rng.uniform(-0.004, 0.006)])
    turn = tf.quat_mul(tf.axis_angle_to_quat(rng.uniform(-0.08, 0.08, size=3)), quat)
    if rng.random() < 0.3:                               # a hesitation half way
        mid = grasp + 0.5 * (end - grasp)
        frames.append(Keyframe(wrist_for_grasp(mid, quat), quat, 1.0, tempo * abs(travel) / 2 / speed,
                               rng.uniform(0.1, 0.4), holding=True, phase="skill"))
    frames.append(Keyframe(wrist_for_grasp(end, turn), turn, 1.0, tempo * max(abs(travel) / speed, 0.4),
                           _pause(rng, 0.3, 0.3), holding=True, phase="skill"))
    return frames + _release_and_retreat(rng, frames[-1], tempo)


def drawer_open(scene: HumanScene, rng: np.random.Generator) -> list[Keyframe]:
    return _drawer(scene, rng, rng.uniform(0.135, 0.155))


def drawer_close(scene: HumanScene, rng: np.random.Generator) -> list[Keyframe]:
    return _drawer(scene, rng, rng.uniform(0.0, 0.006))


def pick_place(scene: HumanScene, rng: np.random.Generator, color: str) -> list[Keyframe]:
    tempo = _speed(rng)
    block, block_quat = scene.body_pose(f"{color}_block")
    grasp = block + np.array([*rng.uniform(-0.005, 0.005, size=2), 0.0])
    quat = hand_quat(np.pi + grasp_yaw(block_quat) + rng.uniform(-0.12, 0.12), rng, 0.12)
    frames = [_start(rng, grasp), *_approach(rng, grasp, quat, tempo)]
    carry = rng.uniform(0.11, 0.2)
    bowl = scene.body_pose("bowl")[0] + np.array([*rng.uniform(-0.02, 0.02, size=2), 0.0])
    lift = grasp + np.array([rng.uniform(-0.02, 0.02), rng.uniform(-0.02, 0.02), carry])
    over = np.array([bowl[0], bowl[1], carry + rng.uniform(-0.02, 0.02)])
    down = np.array([bowl[0], bowl[1], rng.uniform(0.06, 0.08)])
    turn = tf.quat_mul(tf.axis_angle_to_quat([0.0, 0.0, rng.uniform(-0.3, 0.3)]), quat)
    frames += [
        Keyframe(wrist_for_grasp(lift, quat), quat, 1.0, tempo * rng.uniform(0.6, 0.9), _pause(rng, 0.2, 0.3),
                 holding=True, phase="skill"),
        Keyframe(wrist_for_grasp(over, turn), turn, 1.0, tempo * rng.uniform(0.8, 1.3), _pause(rng, 0.3, 0.4),
                 holding=True, phase="skill"),
        Keyframe(wrist_for_grasp(down, turn), turn, 1.0, tempo * rng.uniform(0.5, 0.8), 0.1, holding=True,
                 phase="skill"),
    ]
    return frames + _release_and_retreat(rng, frames[-1], tempo)
