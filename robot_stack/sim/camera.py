"""Camera models of the twin: pinhole intrinsics, base-to-camera extrinsics, projection, rendering.

Intrinsics and extrinsics follow the OpenCV/ROS optical convention (z forward, x right,
y down), so the same projection code serves the twin and a RealSense.
"""
from __future__ import annotations

import os

import mujoco
import numpy as np

from robot_stack.sim.scene import Scene

# MuJoCo cameras look along -z with y up; the optical frame looks along +z with y down.
_MJ_TO_OPTICAL = np.diag([1.0, -1.0, -1.0])


def intrinsics(scene: Scene, camera: str, height: int, width: int) -> np.ndarray:
    """3x3 pinhole K for an image of the given size (square pixels, centred principal point)."""
    fovy = np.radians(scene.model.cam(camera).fovy[0])
    f = 0.5 * height / np.tan(fovy / 2)
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def extrinsics(scene: Scene, camera: str) -> np.ndarray:
    """4x4 pose of the camera's optical frame in the base frame (base_T_camera)."""
    cam = scene.model.cam(camera).id
    t = np.eye(4)
    t[:3, :3] = scene.data.cam_xmat[cam].reshape(3, 3) @ _MJ_TO_OPTICAL
    t[:3, 3] = scene.data.cam_xpos[cam]
    return t


def project(points_base: np.ndarray, k: np.ndarray, base_T_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (u, v) of base-frame points and their depth along the optical axis."""
    pts = np.atleast_2d(points_base)
    cam = (pts - base_T_camera[:3, 3]) @ base_T_camera[:3, :3]
    depth = cam[:, 2]
    uv = (cam @ k.T)[:, :2] / depth[:, None]
    return uv, depth


def calibration(scene: Scene, cameras, height: int, width: int) -> dict:
    """Each camera's K and its base-to-camera extrinsic, as an episode's metadata records them (JSON lists), so
    camera projections (RT-Trajectory's hindsight sketches) can be drawn from the store alone. A camera on the
    hand also gets `tcp_T_camera` (its hand-eye transform): its base_T_camera holds for the current frame only."""
    from robot_stack import transforms as tf

    pos, quat = scene.ee_pose()
    base_T_tcp = np.eye(4)
    base_T_tcp[:3, :3], base_T_tcp[:3, 3] = tf.quat_to_mat(quat), pos
    out = {}
    for cam in cameras:
        t = extrinsics(scene, cam)
        entry = {"k": intrinsics(scene, cam, height, width).tolist(), "base_T_camera": t.tolist(),
                 "height": height, "width": width}
        if scene.model.cam(cam).bodyid[0] != 0:          # mounted on a moving body: the wrist camera
            entry["tcp_T_camera"] = (np.linalg.inv(base_T_tcp) @ t).tolist()
        out[cam] = entry
    return out


class CameraRenderer:
    """Renders the twin's named cameras at one image size, reusing one GL context."""

    def __init__(self, scene: Scene, height: int, width: int):
        self.scene = scene
        self.height, self.width = height, width
        model = scene.model
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        try:
            self._renderer = mujoco.Renderer(model, height, width)
        except Exception as exc:   # the GL backend names the missing piece
            raise RuntimeError(
                f"cannot create an off-screen renderer with MUJOCO_GL={os.environ.get('MUJOCO_GL')}: {exc}. "
                "Install libegl1 and libgl1-mesa-dri (or set MUJOCO_GL=osmesa with libosmesa6).") from exc

    def render(self, camera: str) -> np.ndarray:
        self._renderer.update_scene(self.scene.data, camera)
        return self._renderer.render()

    def render_depth(self, camera: str) -> np.ndarray:
        """Depth along the optical axis in metres (HxW float32)."""
        self._renderer.enable_depth_rendering()
        try:
            self._renderer.update_scene(self.scene.data, camera)
            return self._renderer.render().astype(np.float32)
        finally:
            self._renderer.disable_depth_rendering()

    def render_segmentation(self, camera: str) -> np.ndarray:
        """Per-pixel geom ids (-1 for background)."""
        self._renderer.enable_segmentation_rendering()
        try:
            self._renderer.update_scene(self.scene.data, camera)
            seg = self._renderer.render()
        finally:
            self._renderer.disable_segmentation_rendering()
        return np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1)

    def close(self) -> None:
        self._renderer.close()
