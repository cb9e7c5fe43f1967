"""Camera poses of a clip by structure from motion (COLMAP through pycolmap), with metric scale fixed.

ZeroMimic expresses every wrist pose of a clip in one camera frame, so a moving head does not show up as
hand motion; its camera poses come from COLMAP (EPIC-Fields). Here: SIFT on every frame, sequential
matching, incremental mapping with the clip's known pinhole intrinsics held fixed. SfM recovers poses up to
an unknown scale; `metric_scale` fixes it from the table plane and the cabinet's known height above it
(0.12 m, a "known object size"): the two largest parallel planes of the sparse point cloud.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CABINET_HEIGHT = 0.12     # m, table top to cabinet top (scene.xml)


class SfmFailed(RuntimeError):
    """The clip could not be reconstructed well enough to use (it is skipped and counted)."""


@dataclass
class SfmConfig:
    max_features: int = 2000
    overlap: int = 6                   # sequential matching: each frame against the next `overlap` frames
    min_registered: float = 0.8        # fraction of frames that must get a pose
    threads: int = 1
    seed: int = 0


@dataclass
class SfmResult:
    world_T_camera: np.ndarray         # (T, 4, 4) in SfM units; NaN for frames not registered
    registered: np.ndarray             # (T,) bool
    points: np.ndarray                 # (N, 3) sparse points, SfM units
    seconds: float
    stats: dict = field(default_factory=dict)


def reconstruct(frames: np.ndarray, k: np.ndarray, cfg: SfmConfig | None = None, workdir: str | Path | None = None
                ) -> SfmResult:
    """Camera poses of `frames` (T, H, W, 3) uint8 with intrinsics `k`; raises SfmFailed."""
    import cv2
    import pycolmap

    cfg = cfg or SfmConfig()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        images = tmp / "images"
        images.mkdir()
        names = [f"{i:05d}.png" for i in range(len(frames))]
        for name, frame in zip(names, frames):
            cv2.imwrite(str(images / name), np.ascontiguousarray(frame[..., ::-1]))
        database = tmp / "database.db"
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = "PINHOLE"
        reader.camera_params = ",".join(str(float(v)) for v in (k[0, 0], k[1, 1], k[0, 2], k[1, 2]))
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.num_threads = cfg.threads
        extraction.sift.max_num_features = cfg.max_features
        pycolmap.set_random_seed(cfg.seed)
        pycolmap.extract_features(database, images, image_names=names, camera_mode=pycolmap.CameraMode.SINGLE,
                                  reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu)
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = cfg.threads
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = cfg.overlap
        pairing.loop_detection = False
        pycolmap.match_sequential(database, matching_options=matching, pairing_options=pairing,
                                  device=pycolmap.Device.cpu)
        options = pycolmap.IncrementalPipelineOptions()
        options.ba_refine_focal_length = False
        options.ba_refine_principal_point = False
        options.ba_refine_extra_params = False
        options.num_threads = cfg.threads
        options.random_seed = cfg.seed
        options.multiple_models = False
        models = pycolmap.incremental_mapping(database, images, tmp / "sparse", options=options)
        if not models:
            raise SfmFailed("no reconstruction (too few matches)")
        rec = max(models.values(), key=lambda r: r.num_reg_images())
        poses = np.full((len(frames), 4, 4), np.nan)
        for image in rec.images.values():
            if not image.has_pose:
                continue
            i = names.index(image.name)
            cam_from_world = image.cam_from_world()
            t = np.eye(4)
            t[:3, :3] = cam_from_world.rotation.matrix()
            t[:3, 3] = cam_from_world.translation
            poses[i] = np.linalg.inv(t)
        points = np.array([p.xyz for p in rec.points3D.values()]) if rec.num_points3D() else np.zeros((0, 3))
        registered = ~np.isnan(poses[:, 0, 0])
        stats = {"registered": int(registered.sum()), "frames": len(frames), "points": int(len(points)),
                 "mean_reprojection_px": float(rec.compute_mean_reprojection_error())}
    if registered.mean() < cfg.min_registered:
        raise SfmFailed(f"only {registered.sum()} of {len(frames)} frames registered")
    return SfmResult(poses, registered, points, time.monotonic() - start, stats)


def fit_plane(points: np.ndarray, threshold: float, rng: np.random.Generator, iters: int = 300,
              normal: np.ndarray | None = None) -> tuple[np.ndarray, float, np.ndarray]:
    """RANSAC plane n.x = d (unit n) with the most inliers within `threshold`; with `normal` given, only
    planes within 8 degrees of parallel to it. Returns (n, d, inlier mask)."""
    best = (np.array([0.0, 0.0, 1.0]), 0.0, np.zeros(len(points), bool))
    if len(points) < 3:
        return best
    for _ in range(iters):
        a, b, c = points[rng.choice(len(points), 3, replace=False)]
        n = np.cross(b - a, c - a)
        if np.linalg.norm(n) < 1e-12:
            continue
        n = n / np.linalg.norm(n)
        if normal is not None:
            if abs(n @ normal) < np.cos(np.radians(8)):
                continue
            n = normal
        d = n @ a
        inliers = np.abs(points @ n - d) < threshold
        if inliers.sum() > best[2].sum():
            best = (n, float(d), inliers)
    n, d, inliers = best
    if inliers.sum() >= 3 and normal is None:       # refine by least squares on the inliers
        p = points[inliers]
        centre = p.mean(axis=0)
        n = np.linalg.svd(p - centre)[2][-1]
        n = n * np.sign(n @ best[0])
        d = float(n @ centre)
        inliers = np.abs(points @ n - d) < threshold
    return n, d, inliers


def metric_scale(result: SfmResult, seed: int = 0, known_height: float = CABINET_HEIGHT) -> tuple[float, dict]:
    """Metres per SfM unit from the table plane (the largest plane) and the cabinet top (the largest plane
    parallel to it between 0.1 and 0.4 of the cameras' height above the table: a person standing at a table
    has the eyes 0.4-0.8 m above it, so a 0.12 m cabinet falls in that band and nothing overhead does)."""
    rng = np.random.default_rng(seed)
    pts = result.points
    if len(pts) < 50:
        raise SfmFailed(f"{len(pts)} points: too few to find the table")
    centres = result.world_T_camera[result.registered][:, :3, 3]
    spread = np.linalg.norm(pts - np.median(pts, axis=0), axis=1)
    unit = float(np.median(spread))                         # the cloud's size, for thresholds
    pts = pts[spread < 5 * unit]                            # far outliers out
    n, d, table = fit_plane(pts, 0.01 * unit, rng)
    if np.mean(centres @ n - d) < 0:                        # normal toward the cameras: up
        n, d = -n, -d
    heights = pts @ n - d
    eye = float(np.median(centres @ n - d))
    # a standing person's eyes are 0.4-0.8 m above the table: the cabinet top lies 0.1-0.4 of that up
    above = (heights > 0.1 * eye) & (heights < 0.4 * eye) & ~table
    if above.sum() < 10:
        raise SfmFailed("no second plane above the table")
    n2, d2, top = fit_plane(pts[above], 0.01 * unit, rng, normal=n)
    height = d2 - d
    if top.sum() < 10 or height <= 0:
        raise SfmFailed("no cabinet top parallel to the table")
    scale = known_height / height
    return scale, {"table_points": int(table.sum()), "top_points": int(top.sum()), "scale": scale,
                   "camera_height_m": float(np.median(centres @ n - d) * scale)}


def relative_poses(world_T_camera: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Each camera's pose in the first camera's frame (c0_T_ct), translations scaled to metres."""
    first = np.linalg.inv(world_T_camera[0])
    out = np.einsum("ij,tjk->tik", first, world_T_camera)
    out[:, :3, 3] *= scale
    return out


def pose_errors(estimated: np.ndarray, truth: np.ndarray) -> dict:
    """Translation (m) and rotation (deg) error of c0_T_ct against the truth's, over the frames both have."""
    ok = ~np.isnan(estimated[:, 0, 0])
    t_err = np.linalg.norm(estimated[ok, :3, 3] - truth[ok, :3, 3], axis=1)
    r_rel = np.einsum("tji,tjk->tik", estimated[ok, :3, :3], truth[ok, :3, :3])
    angle = np.degrees(np.arccos(np.clip((np.trace(r_rel, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    travel = np.linalg.norm(truth[ok, :3, 3], axis=1).max()
    return {"translation_mean_m": float(t_err.mean()), "translation_max_m": float(t_err.max()),
            "rotation_mean_deg": float(angle.mean()), "camera_travel_m": float(travel)}
