"""From a human clip to a wrist trajectory in the clip's first camera frame (ZeroMimic's training data).

Per clip: camera poses by SfM with metric scale (sfm.py); the wrist pose in each frame's camera frame from
the HaMeR stand-in (`WristErrorModel`: HaMeR cannot be downloaded here, so the twin's true wrist pose is
corrupted by position and orientation noise, dropped frames and left/right confusions, sizes configurable
and reported); a clean-up that treats implausible orientation jumps (a left/right confusion) as dropped
frames and fills dropped frames by interpolation; then every wrist pose moved into the first frame's
camera frame with the SfM poses, so head motion does not read as hand motion.

The grasp and release frames stand in for a hand-object contact detector: the truth's, moved by up to
`contact_jitter` frames.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from robot_stack import transforms as tf
from robot_stack.human.clips import IMAGE_STREAM, mat4, truth_path
from robot_stack.human.hand import GRASP_CENTRE
from robot_stack.human.sfm import SfmConfig, SfmFailed, metric_scale, pose_errors, reconstruct, relative_poses

FLIP_ANGLE = np.radians(100)     # an orientation this far from the last accepted one is a confusion


@dataclass
class WristErrorModel:
    """The HaMeR stand-in's errors, per frame, in the camera frame."""

    position_noise: float = 0.01         # m, std per axis across the image
    orientation_noise: float = 0.08      # rad, std of a random rotation vector per axis
    drop: float = 0.05                   # probability that a frame has no detection
    flip: float = 0.02                   # probability of a left/right confusion (palm flipped about the fingers)
    depth_factor: float = 2.0            # depth (camera z) noise is this many times the lateral noise
    contact_jitter: int = 1              # frames of error in the detected grasp / release frame

    def scaled(self, factor: float) -> "WristErrorModel":
        return WristErrorModel(self.position_noise * factor, self.orientation_noise * factor, self.drop,
                               self.flip, self.depth_factor, self.contact_jitter)


def estimate_wrist(camera_T_wrist: np.ndarray, errors: WristErrorModel, rng: np.random.Generator) -> np.ndarray:
    """Per-frame wrist estimates (T, 4, 4) from the true camera-frame poses; NaN where the detector missed."""
    out = camera_T_wrist.copy()
    n = len(out)
    sigma = errors.position_noise * np.array([1.0, 1.0, errors.depth_factor])
    out[:, :3, 3] += rng.standard_normal((n, 3)) * sigma
    for i in range(n):
        noise = tf.quat_to_mat(tf.axis_angle_to_quat(rng.standard_normal(3) * errors.orientation_noise))
        out[i, :3, :3] = out[i, :3, :3] @ noise
        if rng.random() < errors.flip:       # the mirrored hand: palm normal flipped about the finger axis
            out[i, :3, :3] = out[i, :3, :3] @ np.diag([1.0, -1.0, -1.0])
    out[rng.random(n) < errors.drop] = np.nan
    return out


def _interpolate(poses: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Fill poses where not `ok` from the nearest good neighbours (linear position, slerp orientation)."""
    good = np.flatnonzero(ok)
    if len(good) == 0:
        raise ValueError("no good frame to interpolate from")
    out = poses.copy()
    for i in np.flatnonzero(~ok):
        after = good[good > i]
        before = good[good < i]
        if len(before) == 0 or len(after) == 0:
            out[i] = poses[after[0] if len(before) == 0 else before[-1]]
            continue
        a, b = before[-1], after[0]
        s = (i - a) / (b - a)
        out[i] = np.eye(4)
        out[i, :3, 3] = (1 - s) * poses[a, :3, 3] + s * poses[b, :3, 3]
        qa, qb = tf.mat_to_quat(poses[a, :3, :3]), tf.mat_to_quat(poses[b, :3, :3])
        out[i, :3, :3] = tf.quat_to_mat(tf.slerp(qa, qb, s))
    return out


def clean_wrist(estimates: np.ndarray) -> tuple[np.ndarray, dict]:
    """Reject confusions (an orientation jump of more than 100 degrees from the last accepted frame) and fill
    every missing frame by interpolation; returns the poses and what was done."""
    ok = ~np.isnan(estimates[:, 0, 0])
    missing = int((~ok).sum())
    rejected = 0
    last = None
    for i in np.flatnonzero(ok):
        if last is not None:
            rel = estimates[last, :3, :3].T @ estimates[i, :3, :3]
            angle = np.arccos(np.clip((np.trace(rel) - 1) / 2, -1, 1))
            if angle > FLIP_ANGLE:
                ok[i] = False
                rejected += 1
                continue
        last = i
    return _interpolate(estimates, ok), {"missing": missing, "rejected_confusions": rejected}


def interpolate_cameras(world_T_camera: np.ndarray, registered: np.ndarray) -> np.ndarray:
    return _interpolate(world_T_camera, registered)


def pose_to_vec(t: np.ndarray) -> np.ndarray:
    """(..., 4, 4) -> (..., 7) position and (x, y, z, w) quaternion."""
    flat = t.reshape(-1, 4, 4)
    out = np.array([np.concatenate((p[:3, 3], tf.mat_to_quat(p[:3, :3]))) for p in flat])
    return out.reshape(*t.shape[:-2], 7)


def perceive_clip(frames: np.ndarray, k: np.ndarray, truth: dict, errors: WristErrorModel, rng: np.random.Generator,
                  scale: str = "cabinet", sfm: bool = True, sfm_cfg: SfmConfig | None = None, frame_step: int = 3
                  ) -> dict:
    """Wrist poses (T, 4, 4) in the first frame's camera frame, the grasp / release frames, the contact pixel
    in the first frame, and a report that compares each step with the truth. `truth` holds camera_pose and
    wrist_pose (T, 7, base frame) and the clip's truth metadata. SfM runs on every `frame_step`-th frame;
    the poses between are interpolated."""
    n = len(frames)
    base_T_camera = np.stack([mat4(p) for p in truth["camera_pose"]])
    base_T_wrist = np.stack([mat4(p) for p in truth["wrist_pose"]])
    camera_T_wrist = np.linalg.inv(base_T_camera) @ base_T_wrist
    estimates, cleaning = clean_wrist(estimate_wrist(camera_T_wrist, errors, rng))
    report: dict = {"wrist_cleaning": cleaning}
    true_c0_T_ct = relative_poses(base_T_camera)
    if sfm:
        keep = np.arange(0, n, frame_step)
        if keep[-1] != n - 1:
            keep = np.append(keep, n - 1)
        result = reconstruct(frames[keep], k, sfm_cfg)
        world_T_camera = np.full((n, 4, 4), np.nan)
        world_T_camera[keep] = result.world_T_camera
        world_T_camera = interpolate_cameras(world_T_camera, ~np.isnan(world_T_camera[:, 0, 0]))
        report["sfm"] = {**result.stats, "seconds": round(result.seconds, 1)}
        if scale == "cabinet":
            metres, info = metric_scale(result)
            report["scale"] = info
        else:
            metres = 1.0
        c0_T_ct = relative_poses(world_T_camera, metres)
        report["camera_error"] = pose_errors(c0_T_ct, true_c0_T_ct)
        # the comparison: the same poses in SfM's own unit, and the wrist trajectory they would give
        unscaled = relative_poses(world_T_camera, 1.0)
        report["camera_error_unscaled"] = pose_errors(unscaled, true_c0_T_ct)
        wrong = (unscaled @ estimates)[:, :3, 3] - (true_c0_T_ct @ camera_T_wrist)[:, :3, 3]
        report["wrist_error_mean_m_unscaled"] = float(np.linalg.norm(wrong, axis=1).mean())
    else:                                   # the ablation: each frame's own camera taken as the first one
        c0_T_ct = np.repeat(np.eye(4)[None], n, axis=0)
    c0_T_wrist = c0_T_ct @ estimates
    true_c0_T_wrist = true_c0_T_ct @ camera_T_wrist
    err = np.linalg.norm(c0_T_wrist[:, :3, 3] - true_c0_T_wrist[:, :3, 3], axis=1)
    report["wrist_error_mean_m"] = float(err.mean())
    meta = truth["meta"]
    def jitter(frame: int) -> int:
        return int(np.clip(frame + rng.integers(-errors.contact_jitter, errors.contact_jitter + 1), 1, n - 2))
    grasp = jitter(meta["grasp_frame"])
    release = max(jitter(meta["release_frame"]), grasp + 1)
    contact = c0_T_wrist[grasp, :3, :3] @ GRASP_CENTRE + c0_T_wrist[grasp, :3, 3]
    uv = k @ contact
    return {"c0_T_wrist": c0_T_wrist, "grasp_frame": grasp, "release_frame": release,
            "contact_px": (uv[:2] / uv[2]).tolist(), "report": report}


def perceive_store(store_path: str | Path, out: str | Path | None = None, errors: WristErrorModel | None = None,
                   scale: str = "cabinet", sfm: bool = True, seed: int = 0, progress: bool = True,
                   limit: int | None = None) -> dict:
    """Every clip of a clip store through perception into a wrist store (`<store>_wrist`, resumable): one
    episode per usable clip with the stream `wrist_pose` (T, 7) and metadata naming its clip. Clips SfM
    cannot reconstruct are skipped and counted, never used with identity poses."""
    from tqdm import tqdm

    from robot_stack.data.store import EpisodeStore
    errors = errors or WristErrorModel()
    store_path = Path(store_path)
    out = Path(out) if out else store_path.with_name(store_path.name.removesuffix(".zarr") + "_wrist.zarr")
    clips = EpisodeStore.open(store_path)
    truth = EpisodeStore.open(truth_path(store_path))
    report_path = out.with_suffix(".report.json")
    record = json.loads(report_path.read_text()) if report_path.exists() and out.exists() else \
        {"clips": {}, "errors": asdict(errors), "scale": scale, "sfm": sfm}
    wrist = EpisodeStore.open(out, "a") if out.exists() else EpisodeStore.create(out, attrs={
        "kind": "human_wrist", "clips": str(store_path), "errors": asdict(errors), "scale": scale, "sfm": sfm})
    total = clips.num_episodes if limit is None else min(limit, clips.num_episodes)
    start, made = time.monotonic(), 0
    try:
        for i in tqdm(range(total), desc=f"perceive {store_path.name}", unit="clip", disable=not progress):
            if str(i) in record["clips"]:
                continue
            rng = np.random.default_rng([seed, i])
            meta = clips.metadata(i)
            frames = clips.read_stream(i, IMAGE_STREAM)["data"]
            k = np.array(meta["calibration"]["head"]["k"])
            t = {"camera_pose": truth.read_stream(i, "camera_pose")["data"],
                 "wrist_pose": truth.read_stream(i, "wrist_pose")["data"], "meta": truth.metadata(i)}
            try:
                result = perceive_clip(frames, k, t, errors, rng, scale=scale, sfm=sfm)
            except (SfmFailed, ValueError) as exc:
                record["clips"][str(i)] = {"skipped": str(exc)}
            else:
                stamps = np.arange(len(frames)) / meta["fps"]
                writer = wrist.begin_episode({"kind": "human_wrist", "clip": i, "skill": meta["skill"],
                                              "fps": meta["fps"], "grasp_frame": result["grasp_frame"],
                                              "release_frame": result["release_frame"],
                                              "contact_px": result["contact_px"],
                                              "k": meta["calibration"]["head"]["k"]})
                writer.append_many("wrist_pose", pose_to_vec(result["c0_T_wrist"]), stamps)
                writer.commit(success=True)
                record["clips"][str(i)] = result["report"]
                made += 1
            report_path.write_text(json.dumps(record, indent=1))
    finally:
        wrist.close()
    minutes = (time.monotonic() - start) / 60
    reports = [r for r in record["clips"].values() if "skipped" not in r]
    summary = {"store": str(out), "clips": total, "usable": len(reports),
               "skipped": sum("skipped" in r for r in record["clips"].values()),
               "clips_per_minute": round(made / minutes, 2) if minutes > 0 and made else None,
               "wrist_error_mean_m": float(np.mean([r["wrist_error_mean_m"] for r in reports])) if reports else None}
    if reports and sfm:
        summary["camera_translation_error_mean_m"] = float(np.mean([r["camera_error"]["translation_mean_m"]
                                                                    for r in reports]))
        summary["camera_rotation_error_mean_deg"] = float(np.mean([r["camera_error"]["rotation_mean_deg"]
                                                                   for r in reports]))
    record["summary"] = summary
    report_path.write_text(json.dumps(record, indent=1))
    return summary
