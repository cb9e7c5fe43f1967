"""Wrist-pose conditioning (ZeroMimic): the frame a camera-frame wrist trajectory lives in, and the skill.

A policy trained on human video predicts wrist poses in the camera's optical frame. To act it needs that
camera's pose in the robot's base frame (`camera_pose`, 7 numbers: position and x, y, z, w quaternion; the
extrinsic calibration of the camera it sees through) and which skill it is asked to do (`skill`: a
checkpoint is one skill, and a request for another is refused rather than acted on).

Training relabels in hindsight from a robot store's calibration metadata (the goal camera's
`base_T_camera`); human clips carry no extrinsics, so ZeroMimic's own trainer works in the first frame's
camera and never needs this field. On the graph the pose arrives latched on /task/camera_pose (PoseStamped
in `base`) and the skill on /task/skill; `robot-stack eval` takes the twin's front camera pose and the
evaluated task's name.
"""
from __future__ import annotations

import numpy as np
import torch

from robot_stack import transforms as tf
from robot_stack.policies.conditioning import register_kind
from robot_stack.policies.conditioning.base import ConditioningError, ConditioningKind, EpisodeContext, TaskTopic, \
    check_text


def _pose_type():
    from geometry_msgs.msg import PoseStamped
    return PoseStamped


def _string_type():
    from std_msgs.msg import String
    return String


def camera_pose_vector(base_T_camera) -> np.ndarray:
    """A 4x4 base_T_camera (or 7 numbers) as position + unit quaternion (7,), validated."""
    t = np.asarray(base_T_camera, dtype=np.float64)
    if t.shape == (4, 4):
        t = np.concatenate((t[:3, 3], tf.mat_to_quat(t[:3, :3])))
    if t.shape != (7,) or not np.isfinite(t).all():
        raise ConditioningError(f"camera_pose: expected 7 finite numbers or a 4x4 transform, got shape {t.shape}")
    if abs(np.linalg.norm(t[3:]) - 1.0) > 1e-3:
        raise ConditioningError(f"camera_pose: quaternion norm {np.linalg.norm(t[3:]):.4f}, not 1")
    return t


def camera_matrix(camera_pose) -> np.ndarray:
    """base_T_camera (4, 4) from the 7-number field."""
    p = camera_pose_vector(camera_pose)
    return tf.pose_to_mat(p[:3], p[3:])


def _parse_pose(msg, limits) -> dict:
    from robot_stack.ros import convert
    try:
        pos, quat, _ = convert.parse_pose(msg, "base")
    except convert.MessageError as exc:
        raise ConditioningError(f"camera pose: {exc}") from exc
    return {"camera_pose": camera_pose_vector(np.concatenate((pos, quat)))}


def _build_pose(task, stamp):
    from robot_stack.ros import convert
    if task.camera_pose is None:                      # an all-zero quaternion clears it (refused as a pose)
        return convert.pose_msg(np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]), stamp, "")
    p = camera_pose_vector(task.camera_pose)
    return convert.pose_msg(p[:3], p[3:], stamp, "base")


def _parse_clearable_pose(msg, limits) -> dict:
    if msg.header.frame_id == "":
        return {"camera_pose": None}
    return _parse_pose(msg, limits)


@register_kind
class WristPose(ConditioningKind):
    name = "wrist_pose"
    fields = {"camera_pose": "array", "skill": "text"}
    required = ("camera_pose",)
    batch_keys = ("camera_pose",)

    def prepare(self, batches, metadata):
        cam = batches.spec.goal_camera
        poses = []
        for i, meta in enumerate(metadata):
            cal = (meta.get("calibration") or {}).get(cam)
            if cal is None or "base_T_camera" not in cal:
                raise ConditioningError(f"episode {i} has no calibration of camera {cam!r}: wrist_pose needs its "
                                        "base_T_camera")
            poses.append(camera_pose_vector(cal["base_T_camera"]))
        batches.camera_poses = np.stack(poses).astype(np.float32)
        return {}

    def batch(self, batches, samples, rng):
        return {"camera_pose": torch.from_numpy(batches.camera_poses[[s.episode for s in samples]])}

    def topics(self):
        def parse_skill(msg, limits):
            return {"skill": check_text(msg.data, "skill", limits) or None}
        return [TaskTopic("task/camera_pose", _pose_type, parse=_parse_clearable_pose, build=_build_pose),
                TaskTopic("task/skill", _string_type, parse=parse_skill,
                          build=lambda task, stamp: _string_type()(data=task.skill or ""))]

    def add_arguments(self, parser):
        parser.add_argument("--skill", help="wrist_pose: the skill asked of the policy (default: the evaluated task)")

    def given(self, options):
        return bool(options.get("skill"))

    def episode_fields(self, ctx: EpisodeContext) -> dict:
        key = ("front_camera_pose", ctx.robot, ctx.goal_camera)
        if key not in ctx.cache:
            from robot_stack.sim.camera import extrinsics
            from robot_stack.sim.scene import Scene
            ctx.cache[key] = camera_pose_vector(extrinsics(Scene(ctx.robot), ctx.goal_camera))
        return {"camera_pose": ctx.cache[key], "skill": ctx.options.get("skill") or ctx.task}

    def example(self, image_size):
        return {"camera_pose": np.array([1.0, -0.06, 0.62, 0.0, 0.0, 0.0, 1.0]), "skill": "drawer_open"}
