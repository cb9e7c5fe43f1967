"""Trajectory sketches (RT-Trajectory, Gu et al. 2023): a TCP path drawn into a camera image.

The path's base-frame points are projected with the camera's intrinsics and extrinsics and joined by
anti-aliased lines on a black image of the camera's size. Colour grades time: the red channel of point
t of T is (t + 1) / T, so the drawing says which way the path runs. The 2.5D variant writes the TCP
height into the green channel, (h_t - h_min) / (h_max - h_min) with h_min and h_max fixed for a whole
dataset (never per episode, or one height would mean different things in different sketches). Where the
commanded gripper closes a green disc is drawn at the TCP's projection, where it opens a blue one. The
same code draws hindsight sketches from recorded episodes, the expert's path at test time and waypoints
written by a person or another program, so all of them look alike to the policy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLOSE_COLOUR = (0, 255, 0)        # RGB: the paper's green circle where the gripper closes
OPEN_COLOUR = (0, 0, 255)         # blue where it opens
_SHIFT = 4                        # fixed-point bits for OpenCV: sub-pixel line ends


class SketchError(ValueError):
    """A path that cannot be drawn: non-finite, behind the camera, outside the image or the workspace."""


@dataclass(frozen=True)
class SketchStyle:
    mode: str = "2.5d"              # "2d" | "2.5d" (TCP height in the green channel)
    line_width: float = 1 / 64      # of the image side: 2 px at 128
    marker_radius: float = 1 / 32   # of the image side: 4 px at 128
    h_min: float = 0.0              # m above the base: green 0 (dataset-wide)
    h_max: float = 0.4              # m above the base: green 255

    def __post_init__(self):
        if self.mode not in ("2d", "2.5d"):
            raise ValueError(f"sketch mode must be '2d' or '2.5d', got {self.mode!r}")
        if not self.h_max > self.h_min:
            raise ValueError(f"sketch h_max ({self.h_max}) must be above h_min ({self.h_min})")


def gripper_events(gripper_cmd: np.ndarray, threshold: float = 0.5) -> list[tuple[int, str]]:
    """(step, "close" | "open") where the commanded gripper crosses `threshold` (0 open .. 1 closed)."""
    closed = np.asarray(gripper_cmd, dtype=float) >= threshold
    return [(t, "close" if closed[t] else "open") for t in range(1, len(closed)) if closed[t] != closed[t - 1]]


def project_points(points: np.ndarray, k: np.ndarray, base_T_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (u, v) and depth of base-frame points (OpenCV optical frame: z forward, y down)."""
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    t = np.asarray(base_T_camera, dtype=float)
    cam = (pts - t[:3, 3]) @ t[:3, :3]
    depth = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (cam @ np.asarray(k, dtype=float).T)[:, :2] / depth[:, None]
    return uv, depth


def draw_sketch(points: np.ndarray, gripper_cmd: np.ndarray, k: np.ndarray, base_T_camera: np.ndarray,
                height: int, width: int, style: SketchStyle = SketchStyle(),
                margin: float = 0.5) -> np.ndarray:
    """HxWx3 uint8 RGB sketch of a TCP path `points` (T, 3) in the base frame with its commanded gripper (T,).

    Refuses (SketchError) non-finite points, points behind the camera, and paths whose projection leaves
    the image by more than `margin` of its size (a sketch the camera cannot show is a mistake, not a task)."""
    import cv2

    points = np.asarray(points, dtype=float)
    gripper_cmd = np.asarray(gripper_cmd, dtype=float)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) < 2:
        raise SketchError(f"a sketch needs at least two 3D points, got shape {points.shape}")
    if gripper_cmd.shape != (len(points),):
        raise SketchError(f"one gripper command per point: {len(points)} points, {gripper_cmd.shape} commands")
    if not (np.isfinite(points).all() and np.isfinite(gripper_cmd).all()):
        raise SketchError("the path has non-finite points or gripper commands")
    uv, depth = project_points(points, k, base_T_camera)
    if (depth <= 1e-3).any():
        raise SketchError(f"{int((depth <= 1e-3).sum())} path point(s) lie behind the camera")
    size = np.array([width, height])
    if ((uv < -margin * size) | (uv > (1 + margin) * size)).any():
        raise SketchError("the path leaves the camera's view")
    n = len(points)
    red = (np.arange(n) + 1) / n
    green = np.zeros(n) if style.mode == "2d" else np.clip((points[:, 2] - style.h_min) / (style.h_max - style.h_min),
                                                           0.0, 1.0)
    side = min(height, width)
    thickness = max(1, int(round(style.line_width * side)))
    radius = max(1, int(round(style.marker_radius * side)))
    image = np.zeros((height, width, 3), np.uint8)
    fixed = np.round(uv * (1 << _SHIFT)).astype(np.int64)
    for t in range(1, n):          # segment t-1 -> t in point t's colour: later segments are drawn over earlier ones
        colour = (int(round(255 * red[t])), int(round(255 * green[t])), 0)
        cv2.line(image, tuple(map(int, fixed[t - 1])), tuple(map(int, fixed[t])), colour, thickness, cv2.LINE_AA,
                 _SHIFT)
    for t, event in gripper_events(gripper_cmd):
        cv2.circle(image, tuple(map(int, fixed[t])), radius << _SHIFT,
                   CLOSE_COLOUR if event == "close" else OPEN_COLOUR, -1, cv2.LINE_AA, _SHIFT)
    return image


def waypoint_path(waypoints: list[dict], steps_per_metre: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """Waypoints [{"position": [x, y, z], "gripper": 0..1}, ...] -> a densely sampled path and its gripper
    commands (straight segments, ~1 cm apart), as a waypoint generator or a language model would give them."""
    if not isinstance(waypoints, list) or len(waypoints) < 2:
        raise SketchError("a waypoint sketch needs a list of at least two waypoints")
    pts, grip = [], []
    for i, w in enumerate(waypoints):
        try:
            p = np.asarray(w["position"], dtype=float)
            g = float(w.get("gripper", 0.0))
        except (KeyError, TypeError, ValueError) as exc:
            raise SketchError(f"waypoint {i}: needs 'position': [x, y, z] and an optional 'gripper' ({exc})") from exc
        if p.shape != (3,) or not np.isfinite(p).all() or not np.isfinite(g):
            raise SketchError(f"waypoint {i}: position must be 3 finite numbers and gripper finite, got {w!r}")
        pts.append(p)
        grip.append(g)
    path, cmd = [pts[0]], [grip[0]]
    for a, b, g in zip(pts[:-1], pts[1:], grip[1:]):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) * steps_per_metre)))
        for s in range(1, n + 1):
            path.append(a + (b - a) * s / n)
            cmd.append(g if s == n else cmd[-1])
    return np.array(path), np.array(cmd)


def check_in_workspace(points: np.ndarray, low, high, tolerance: float = 0.02) -> None:
    """Refuse paths that leave the arm's workspace box (a sketch the arm may not follow)."""
    points = np.asarray(points, dtype=float)
    out = ((points < np.asarray(low) - tolerance) | (points > np.asarray(high) + tolerance)).any(axis=1)
    if out.any():
        raise SketchError(f"{int(out.sum())} waypoint path point(s) lie outside the workspace "
                          f"{list(low)}..{list(high)}, e.g. {points[out][0].round(3).tolist()}")
