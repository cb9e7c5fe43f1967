"""Trajectory-sketch conditioning (RT-Trajectory): a drawing of the path the TCP should take.

Training draws each episode's hindsight sketch once, from its recorded TCP path and commanded gripper,
projected with the camera calibration the store recorded (robot_stack.sketches); the sketch is fixed for
the whole episode. On the graph it arrives latched on /task/sketch (sensor_msgs/Image; an empty image
clears it, an all-black one is refused). `robot-stack eval` builds it three ways: `--sketch expert` (the
scripted expert's path on the same seed), `--sketch FILE.png|DIR` (drawn by a person or another
program; DIR/seed_<N>.png per seed) or `--sketch-waypoints FILE.json|DIR` (base-frame waypoints with
gripper commands, drawn by the same code). A policy's DataSpec.conditioning["sketch"] holds its
SketchStyle (2D or 2.5D, line width, marker size, height range).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from robot_stack.policies.conditioning import register_kind
from robot_stack.policies.conditioning.base import (ConditioningError, ConditioningKind, EpisodeContext, TaskTopic,
                                                    image_msg_or_clear, parse_image_msg)


def _image_type():
    from sensor_msgs.msg import Image
    return Image


def sketch_style(spec):
    from robot_stack.sketches import SketchStyle
    return SketchStyle(**((spec.conditioning or {}).get("sketch", {}) if spec is not None else {}))


def check_sketch(image, what: str = "sketch") -> np.ndarray:
    """A sketch must be an HxWx3 uint8 image with something drawn on it."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ConditioningError(f"{what}: expected an HxWx3 uint8 image, got {image.shape} {image.dtype}")
    if not image.any():
        raise ConditioningError(f"{what}: the image is all black (nothing drawn)")
    return image


def _parse(msg, limits):
    image = parse_image_msg(msg, "sketch", limits)
    return {"sketch": None if image is None else check_sketch(image)}


def episode_sketch(meta: dict, camera: str, path: np.ndarray, gripper: np.ndarray, size: int, style) -> np.ndarray:
    """The hindsight sketch of one recorded episode, from the camera calibration its metadata holds."""
    from robot_stack.sketches import draw_sketch

    cal = (meta.get("cameras") or {}).get(camera)
    if cal is None:
        raise ValueError(f"episode {meta.get('task')} seed {meta.get('seed')}: no calibration of camera {camera!r} "
                         "in its metadata (record it with this build: stores now keep each camera's K and extrinsic)")
    if (cal["height"], cal["width"]) != (size, size):
        raise ValueError(f"camera {camera!r} was calibrated at {cal['width']}x{cal['height']}, the policy reads {size}")
    return draw_sketch(path, gripper, np.array(cal["k"]), np.array(cal["base_T_camera"]), size, size, style)


@register_kind
class Sketch(ConditioningKind):
    name = "sketch"
    fields = {"sketch": "image"}
    batch_keys = ("sketch",)

    def prepare(self, batches, metadata):
        style, spec = sketch_style(batches.spec), batches.spec
        sketches = []
        for i, meta in enumerate(metadata):
            ticks = np.arange(batches.ds.last_tick(i) + 1)
            path = batches.ds.rows_at("ee_pose", i, ticks)[:, :3]
            gripper = batches.ds.rows_at("action_gripper", i, ticks)[:, 0]
            sketches.append(episode_sketch(meta, spec.goal_camera, path, gripper, spec.image_size, style))
        batches.sketches = np.stack(sketches)
        return {"sketch_mode": style.mode}

    def batch(self, batches, samples, rng):
        return {"sketch": torch.from_numpy(batches.sketches[[s.episode for s in samples]])}

    def topics(self):
        return [TaskTopic("task/sketch", _image_type, parse=_parse,
                          build=lambda task, stamp: image_msg_or_clear(task.sketch, stamp, "front_color_optical_frame"))]

    def add_arguments(self, parser):
        parser.add_argument("--sketch", metavar="expert|FILE.png|DIR",
                            help="sketch: the scripted expert's path on each seed, one drawing for every episode, or "
                                 "DIR/seed_<N>.png per seed")
        parser.add_argument("--sketch-waypoints", metavar="FILE.json|DIR",
                            help="sketch: base-frame waypoints [{position: [x,y,z], gripper: 0..1}, ...] drawn as a "
                                 "sketch (DIR/seed_<N>.json per seed)")

    def given(self, options):
        return bool(options.get("sketch") or options.get("sketch_waypoints"))

    def check_options(self, options):
        if bool(options.get("sketch")) == bool(options.get("sketch_waypoints")):
            raise ValueError("sketch conditioning needs exactly one of --sketch expert|FILE.png|DIR and "
                             "--sketch-waypoints FILE.json|DIR")

    def episode_fields(self, ctx: EpisodeContext) -> dict:
        size = ctx.image_size
        source = ctx.options.get("sketch")
        if source == "expert":
            return {"sketch": expert_sketch(ctx, sketch_style(ctx.spec))}
        if source:
            return {"sketch": _read_png(_per_seed(Path(source), ctx.seed, ".png"), size)}
        waypoints = _per_seed(Path(ctx.options["sketch_waypoints"]), ctx.seed, ".json")
        return {"sketch": waypoint_sketch(waypoints, ctx, sketch_style(ctx.spec))}

    def example(self, image_size):
        import cv2
        image = np.zeros((image_size, image_size, 3), np.uint8)
        n = 20
        for t in range(1, n):
            a = (int(image_size * (0.2 + 0.03 * (t - 1))), int(image_size * (0.7 - 0.02 * (t - 1))))
            b = (int(image_size * (0.2 + 0.03 * t)), int(image_size * (0.7 - 0.02 * t)))
            cv2.line(image, a, b, (int(255 * (t + 1) / n), 128, 0), 2, cv2.LINE_AA)
        return {"sketch": image}


def _per_seed(path: Path, seed: int, suffix: str) -> Path:
    chosen = path / f"seed_{seed}{suffix}" if path.is_dir() else path
    if not chosen.is_file():
        raise ValueError(f"no sketch file {chosen}")
    return chosen


def _read_png(path: Path, size: int) -> np.ndarray:
    import cv2
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ValueError(f"{path}: not a readable image")
    if raw.ndim != 3 or raw.shape[2] != 3 or raw.dtype != np.uint8:
        raise ValueError(f"{path}: a sketch is an 8-bit RGB PNG, got shape {raw.shape} {raw.dtype}")
    if raw.shape[:2] != (size, size):
        raise ValueError(f"{path}: {raw.shape[1]}x{raw.shape[0]}; the policy camera is {size}x{size}")
    try:
        return check_sketch(np.ascontiguousarray(raw[:, :, ::-1]), str(path))      # OpenCV reads BGR
    except ConditioningError as exc:
        raise ValueError(str(exc)) from exc


def _twin_camera(ctx: EpisodeContext):
    """The twin's camera calibration at the policy's image size (cached per eval)."""
    key = ("twin_calibration", ctx.robot, ctx.goal_camera, ctx.image_size)
    if key not in ctx.cache:
        from robot_stack.sim.camera import calibration
        from robot_stack.sim.scene import Scene
        cal = calibration(Scene(ctx.robot), [ctx.goal_camera], ctx.image_size, ctx.image_size)[ctx.goal_camera]
        ctx.cache[key] = (np.array(cal["k"]), np.array(cal["base_T_camera"]))
    return ctx.cache[key]


def expert_sketch(ctx: EpisodeContext, style) -> np.ndarray:
    """The scripted expert's TCP path and gripper commands on the episode's seed, drawn as a sketch."""
    from robot_stack.sim.env import make_env
    from robot_stack.sim.rollout import expert_steps
    from robot_stack.sketches import draw_sketch

    key = ("expert_env", ctx.task, ctx.robot)
    if key not in ctx.cache:
        ctx.cache[key] = make_env(ctx.task, robot=ctx.robot, cameras=(), image_size=ctx.image_size)
    path, gripper = [], []
    for obs, action, _ in expert_steps(ctx.cache[key], ctx.seed):
        path.append(obs["ee_pose"][:3])
        gripper.append(action[7] if action is not None else 0.0)
    k, base_T_camera = _twin_camera(ctx)
    return draw_sketch(np.array(path), np.array(gripper), k, base_T_camera, ctx.image_size, ctx.image_size, style)


def waypoint_sketch(path: Path, ctx: EpisodeContext, style) -> np.ndarray:
    from robot_stack.sketches import SketchError, check_in_workspace, draw_sketch, waypoint_path

    try:
        waypoints = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON waypoint list ({exc})") from exc
    try:
        points, gripper = waypoint_path(waypoints)
        from robot_stack.control.safety import SafetyLimits
        limits = SafetyLimits()
        check_in_workspace(points, limits.workspace_low, limits.workspace_high)
        k, base_T_camera = _twin_camera(ctx)
        return draw_sketch(points, gripper, k, base_T_camera, ctx.image_size, ctx.image_size, style)
    except SketchError as exc:
        raise ValueError(f"{path}: {exc}") from exc
