"""The twin's tabletop with a human in it instead of a robot: the scene human clips are filmed in.

It is the robot scene's `scene.xml` (table, blocks, bowl, drawer) compiled without any arm, plus the
floating hand and a mocap "head" carrying the egocentric camera. Surfaces get a mottled texture of the
same mean colour: a real kitchen has texture that structure from motion locks onto, our flat-shaded table
has none. The texture is fine-grained, so at the policy's image size it averages to the robot scene's colour.

`HumanScene` answers the questions the twin's task modules ask of a scene (drawer opening, block poses,
what touches what), so `drawer_open`, `drawer_close` and `pick_place` reset and judge human clips with the
same code as robot episodes.
"""
from __future__ import annotations

import mujoco
import numpy as np

from robot_stack import transforms as tf
from robot_stack.human.hand import Hand, add_hand
from robot_stack.sim.scene import ASSETS, Scene

HEAD = "head"            # the mocap body and its camera
HEAD_FOVY = 50.0
TEXTURE_SIZE = 512


def _mottled(rng: np.random.Generator, rgb: tuple[float, float, float], contrast: float) -> np.ndarray:
    """A texture of blobs at several scales around `rgb` (0-1), as uint8 (H, W, 3)."""
    img = np.zeros((TEXTURE_SIZE, TEXTURE_SIZE))
    for cells, weight in ((8, 0.5), (32, 0.8), (128, 1.0)):
        coarse = rng.standard_normal((cells, cells))
        reps = TEXTURE_SIZE // cells
        img += weight * np.kron(coarse, np.ones((reps, reps)))[:TEXTURE_SIZE, :TEXTURE_SIZE]
    img = (img - img.mean()) / img.std()
    shade = 1.0 + contrast * np.clip(img, -2.5, 2.5) / 2.5
    out = np.clip(np.asarray(rgb)[None, None, :] * shade[..., None], 0, 1)
    return (out * 255).astype(np.uint8)


def _texture(spec: mujoco.MjSpec, name: str, rgb, contrast: float, repeat: float, seed: int) -> str:
    data = _mottled(np.random.default_rng(seed), rgb, contrast)
    tex = spec.add_texture(name=f"{name}_tex", type=mujoco.mjtTexture.mjTEXTURE_2D, width=TEXTURE_SIZE,
                           height=TEXTURE_SIZE, nchannel=3)
    tex.data = data.tobytes()
    spec.add_material(name=f"{name}_mat", textures=["", f"{name}_tex"], texrepeat=[repeat, repeat],
                      texuniform=True)
    return f"{name}_mat"


def build_spec(texture_seed: int = 0) -> mujoco.MjSpec:
    """The robot-free scene with hand and head camera, as an MjSpec (compiled by HumanScene)."""
    spec = mujoco.MjSpec.from_file(str(ASSETS / "scene.xml"))
    spec.visual.global_.offwidth = 640
    spec.visual.global_.offheight = 480
    table = _texture(spec, "table", (0.72, 0.6, 0.45), 0.22, 3.0, texture_seed)
    wood = _texture(spec, "wood", (0.45, 0.32, 0.22), 0.25, 6.0, texture_seed + 1)
    for geom in spec.geoms:
        if geom.name == "table":
            geom.material = table
        elif geom.classname.name == "cabinet" and geom.name.startswith("cabinet"):
            geom.material = wood
            geom.rgba = [1, 1, 1, 1]
    add_hand(spec)
    head = spec.worldbody.add_body(name=HEAD, mocap=True, pos=[1.1, 0.0, 0.6])
    head.add_camera(name=HEAD, fovy=HEAD_FOVY)
    return spec


class HumanScene:
    """Model, data, the hand and the head camera; task-facing queries borrowed from the robot Scene."""

    def __init__(self, texture_seed: int = 0):
        self.model = build_spec(texture_seed).compile()
        self.data = mujoco.MjData(self.model)
        self.hand = Hand(self.model, self.data)
        self.gripper_geoms = self.hand.geoms           # what the tasks' "released" checks look at
        self.head_mocap = self.model.body(HEAD).mocapid[0]
        self.drawer_qpos = self.model.joint("drawer").qposadr[0]
        self.drawer_dof = self.model.joint("drawer").dofadr[0]
        mujoco.mj_forward(self.model, self.data)

    # the robot Scene's object queries only use model, data and each other
    _is_descendant = Scene._is_descendant
    body_pose = Scene.body_pose
    block_pos = Scene.block_pos
    set_free_body = Scene.set_free_body
    drawer_opening = Scene.drawer_opening
    set_drawer = Scene.set_drawer
    handle_pos = Scene.handle_pos
    body_geoms = Scene.body_geoms
    touching = Scene.touching

    def reset(self) -> None:
        mujoco.mj_resetData(self.model, self.data)
        mujoco.mj_forward(self.model, self.data)

    def set_head(self, pos: np.ndarray, quat: np.ndarray) -> None:
        """Pose of the head camera's body; the camera looks along its -z with y up (MuJoCo's convention)."""
        self.data.mocap_pos[self.head_mocap] = pos
        self.data.mocap_quat[self.head_mocap] = tf.to_mj(quat)

    def forward(self) -> None:
        mujoco.mj_forward(self.model, self.data)
