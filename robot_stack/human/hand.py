"""A floating human hand for the twin: a mocap wrist with a palm, four two-segment fingers and a thumb.

The hand is the actor of the human clips (the offline stand-in for web video), so it has to look like a
hand to a camera and nothing more: its geoms never collide (the clip script moves what it holds), and its
fingers curl with one number, the closure (0 open, 1 fist).

Hand frame (the "wrist pose" the perception estimates): origin at the wrist, x along the fingers, z out of
the palm (the side that grasps), y = z cross x.
"""
from __future__ import annotations

import mujoco
import numpy as np

from robot_stack import transforms as tf

SKIN = (0.87, 0.67, 0.55, 1.0)
BODY = "human_hand"
# Where a grasped object's centre sits in the hand frame: under the palm, between fingers and thumb.
GRASP_CENTRE = np.array([0.075, 0.0, 0.035])
# finger: (name, base y in the hand frame, proximal length, distal length)
FINGERS = (("index", 0.028, 0.042, 0.034), ("middle", 0.009, 0.046, 0.037),
           ("ring", -0.010, 0.043, 0.034), ("little", -0.028, 0.034, 0.027))
FINGER_RADIUS = 0.0085
PALM_HALF = (0.045, 0.04, 0.012)
MAX_FLEX = (1.35, 1.2)     # rad at closure 1: proximal, distal joints


def _capsule(body, name: str, length: float, radius: float) -> None:
    """A capsule from the body origin along its +x."""
    body.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_CAPSULE, size=[radius, 0, 0],
                  fromto=[0, 0, 0, length, 0, 0], rgba=list(SKIN), contype=0, conaffinity=0, mass=0.01)


def add_hand(spec: mujoco.MjSpec) -> None:
    """Add the hand (mocap body `human_hand` and its finger joints) to a scene spec."""
    hand = spec.worldbody.add_body(name=BODY, mocap=True, pos=[0.8, 0.0, 0.4])
    hand.add_geom(name="palm", type=mujoco.mjtGeom.mjGEOM_BOX, size=list(PALM_HALF), pos=[PALM_HALF[0], 0, 0],
                  rgba=list(SKIN), contype=0, conaffinity=0, mass=0.2)
    hand.add_geom(name="forearm", type=mujoco.mjtGeom.mjGEOM_CAPSULE, size=[0.027, 0, 0],
                  fromto=[-0.12, 0, -0.004, 0.0, 0, 0], rgba=list(SKIN), contype=0, conaffinity=0, mass=0.3)
    for name, y, proximal, distal in FINGERS:
        base = hand.add_body(name=f"{name}_proximal", pos=[2 * PALM_HALF[0], y, 0.0])
        base.add_joint(name=f"{name}_1", type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, -1, 0], damping=1.0)
        _capsule(base, f"{name}_proximal", proximal, FINGER_RADIUS)
        tip = base.add_body(name=f"{name}_distal", pos=[proximal, 0, 0])
        tip.add_joint(name=f"{name}_2", type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, -1, 0], damping=1.0)
        _capsule(tip, f"{name}_distal", distal, FINGER_RADIUS * 0.92)
    # the thumb leaves the palm's thumb side (+y) forward and down, and curls toward the fingers
    thumb = hand.add_body(name="thumb_proximal", pos=[0.02, PALM_HALF[1], 0.006],
                          quat=tf.to_mj(tf.euler_to_quat(0.6, -0.35, 0.75)).tolist())
    thumb.add_joint(name="thumb_1", type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 0, -1], damping=1.0)
    _capsule(thumb, "thumb_proximal", 0.04, FINGER_RADIUS * 1.1)
    thumb_tip = thumb.add_body(name="thumb_distal", pos=[0.04, 0, 0])
    thumb_tip.add_joint(name="thumb_2", type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 0, -1], damping=1.0)
    _capsule(thumb_tip, "thumb_distal", 0.03, FINGER_RADIUS)


class Hand:
    """Poses the hand of a compiled scene: wrist pose (base frame) and closure."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData):
        self.model, self.data = model, data
        self.mocap = model.body(BODY).mocapid[0]
        joints = [model.joint(f"{f}_{i}") for f, *_ in FINGERS for i in (1, 2)]
        self.finger_qpos = np.array([j.qposadr[0] for j in joints])
        self.finger_dof = np.array([j.dofadr[0] for j in joints])
        self.thumb_qpos = np.array([model.joint(f"thumb_{i}").qposadr[0] for i in (1, 2)])
        self.thumb_dof = np.array([model.joint(f"thumb_{i}").dofadr[0] for i in (1, 2)])
        self.geoms = frozenset(g for g in range(model.ngeom) if self._on_hand(model.geom_bodyid[g]))

    def _on_hand(self, body: int) -> bool:
        hand = self.model.body(BODY).id
        while body > 0:
            if body == hand:
                return True
            body = self.model.body_parentid[body]
        return False

    def set(self, pos: np.ndarray, quat: np.ndarray, closure: float) -> None:
        """Place the wrist at `pos` with orientation `quat` (x, y, z, w) and curl the fingers."""
        d = self.data
        d.mocap_pos[self.mocap] = pos
        d.mocap_quat[self.mocap] = tf.to_mj(quat)
        c = float(np.clip(closure, 0.0, 1.0))
        d.qpos[self.finger_qpos] = np.tile([MAX_FLEX[0] * c, MAX_FLEX[1] * c], len(FINGERS))
        d.qpos[self.thumb_qpos] = [0.9 * c, 0.7 * c]
        d.qvel[self.finger_dof] = 0.0
        d.qvel[self.thumb_dof] = 0.0

    def pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The wrist pose set last: position and (x, y, z, w) quaternion in the base frame."""
        return self.data.mocap_pos[self.mocap].copy(), tf.from_mj(self.data.mocap_quat[self.mocap])


def grasp_centre(pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
    """Where a held object's centre is for a wrist at (pos, quat)."""
    return np.asarray(pos) + tf.quat_to_mat(quat) @ GRASP_CENTRE


def wrist_for_grasp(centre: np.ndarray, quat: np.ndarray) -> np.ndarray:
    """The wrist position that puts the grasp centre at `centre` with the hand at orientation `quat`."""
    return np.asarray(centre) - tf.quat_to_mat(quat) @ GRASP_CENTRE
