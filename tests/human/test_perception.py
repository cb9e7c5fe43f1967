"""Perception of human clips: SfM camera poses with metric scale, the wrist error model, first-frame trajectories."""
import numpy as np
import pytest

from robot_stack import transforms as tf
from robot_stack.data.store import EpisodeStore
from robot_stack.human.clips import ClipConfig, make_clip, pose7, truth_path, write_clip
from robot_stack.human.perception import (WristErrorModel, clean_wrist, estimate_wrist, perceive_clip,
                                          perceive_store)
from robot_stack.human.scene import HumanScene
from robot_stack.human.sfm import SfmConfig, SfmFailed, metric_scale, pose_errors, reconstruct, relative_poses
from robot_stack.sim.camera import CameraRenderer


@pytest.fixture(scope="module")
def clip():
    scene = HumanScene()
    renderer = CameraRenderer(scene, 240, 320)
    try:
        return make_clip(scene, renderer, "drawer_open", seed=7, cfg=ClipConfig())
    finally:
        renderer.close()


def test_sfm_poses_agree_with_the_true_camera_poses_once_scaled(clip):
    keep = np.arange(0, len(clip.frames), 3)                  # a short clip: every third frame
    result = reconstruct(clip.frames[keep], clip.k, SfmConfig())
    assert result.registered.all()
    truth = relative_poses(clip.camera_pose[keep])
    scale, info = metric_scale(result)
    scaled = pose_errors(relative_poses(result.world_T_camera, scale), truth)
    unscaled = pose_errors(relative_poses(result.world_T_camera, 1.0), truth)
    print("SfM c0_T_ct error, scaled:", scaled, "unscaled:", unscaled, info)
    assert scaled["camera_travel_m"] > 0.04
    assert scaled["translation_mean_m"] < 0.015 and scaled["rotation_mean_deg"] < 1.5
    assert unscaled["translation_mean_m"] > 5 * scaled["translation_mean_m"]
    assert abs(info["camera_height_m"] - np.median(clip.camera_pose[:, 2, 3])) < 0.1


def test_the_error_model_has_the_configured_size_and_the_cleanup_removes_confusions():
    rng = np.random.default_rng(0)
    n = 4000
    truth = np.repeat(np.eye(4)[None], n, axis=0)
    truth[:, :3, 3] = [0.1, 0.0, 0.5]
    errors = WristErrorModel(position_noise=0.01, orientation_noise=0.05, drop=0.1, flip=0.05, depth_factor=2.0)
    est = estimate_wrist(truth, errors, rng)
    seen = ~np.isnan(est[:, 0, 0])
    assert abs(1 - seen.mean() - 0.1) < 0.02
    std = (est[seen, :3, 3] - truth[seen, :3, 3]).std(axis=0)
    assert np.allclose(std, [0.01, 0.01, 0.02], rtol=0.1)
    flipped = np.einsum("tii->t", est[seen, :3, :3]) < 0        # trace < 0: rotated by ~180 degrees
    assert abs(flipped.mean() - 0.05) < 0.015
    cleaned, info = clean_wrist(est)
    assert info["rejected_confusions"] == pytest.approx(flipped.sum(), abs=3)
    assert not np.isnan(cleaned).any()
    assert (np.einsum("tii->t", cleaned[:, :3, :3]) > 1.5).all()   # no flipped hand survives
    doubled = errors.scaled(2.0)
    assert doubled.position_noise == 0.02 and doubled.orientation_noise == 0.1


def _truth(clip):
    return {"camera_pose": np.stack([pose7(t) for t in clip.camera_pose]),
            "wrist_pose": np.concatenate((clip.wrist.pos, clip.wrist.quat), axis=1), "meta": clip.truth_meta}


def test_without_sfm_a_moving_head_reads_as_hand_motion(clip):
    exact = WristErrorModel(0.0, 0.0, 0.0, 0.0, contact_jitter=0)
    raw = perceive_clip(clip.frames, clip.k, _truth(clip), exact, np.random.default_rng(0), sfm=False)
    # the truth in the first camera frame, against which both are measured
    c0 = np.linalg.inv(clip.camera_pose[0])
    true = np.array([c0 @ tf.pose_to_mat(p, q) for p, q in zip(clip.wrist.pos, clip.wrist.quat)])
    raw_err = np.linalg.norm(raw["c0_T_wrist"][:, :3, 3] - true[:, :3, 3], axis=1)
    assert raw_err[0] < 1e-9 and raw_err.max() > 0.03           # the head's drift shows up as hand motion
    assert raw["grasp_frame"] == clip.truth_meta["grasp_frame"]
    u, v = raw["contact_px"]
    assert 0 <= u < 320 and 0 <= v < 240                       # the grasped handle is in the first frame


def test_a_clip_sfm_cannot_reconstruct_is_skipped_and_counted(clip, tmp_path):
    out = tmp_path / "clips.zarr"
    store, truth = EpisodeStore.create(out), EpisodeStore.create(truth_path(out))
    short = ClipConfig()
    blank = type(clip)(np.full_like(clip.frames[:12], 128), clip.k, clip.camera_pose[:12], clip.wrist, True,
                       clip.truth_meta | {"grasp_frame": 3, "release_frame": 8})
    blank.wrist = type(clip.wrist)(*(getattr(clip.wrist, f)[:12] for f in ("times", "pos", "quat", "closure",
                                                                            "holding")), clip.wrist.phase[:12])
    write_clip(store, truth, blank, short.fps)
    store.close()
    truth.close()
    with pytest.raises(SfmFailed):
        reconstruct(blank.frames, clip.k)
    summary = perceive_store(out, progress=False)
    assert summary["skipped"] == 1 and summary["usable"] == 0
    assert EpisodeStore.open(tmp_path / "clips_wrist.zarr").num_episodes == 0
