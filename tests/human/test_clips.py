"""Human clips: the hand does each skill in the robot-free twin, and the clip store holds only a video."""
import numpy as np
import pytest

from robot_stack.cli import main
from robot_stack.data.store import EpisodeStore
from robot_stack.human.clips import ClipConfig, make_clip, truth_path
from robot_stack.human.hand import GRASP_CENTRE
from robot_stack.human.scene import HumanScene
from robot_stack.sim.camera import CameraRenderer

SMALL = ClipConfig(height=120, width=160)


@pytest.fixture(scope="module")
def scene_and_renderer():
    scene = HumanScene()
    renderer = CameraRenderer(scene, SMALL.height, SMALL.width)
    yield scene, renderer
    renderer.close()


def _skin_pixels(frame: np.ndarray) -> int:
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    return int(((r > 170) & (g > 120) & (g < 200) & (b > 90) & (b < 170) & (r - b > 50)).sum())


@pytest.mark.parametrize("skill", ["drawer_open", "drawer_close", "pick_place"])
def test_the_hand_performs_the_skill_under_a_moving_head_camera(scene_and_renderer, skill):
    scene, renderer = scene_and_renderer
    clip = make_clip(scene, renderer, skill, seed=3, cfg=SMALL)
    assert clip.success, skill                       # judged by the robot task's own success predicate
    g, r = clip.truth_meta["grasp_frame"], clip.truth_meta["release_frame"]
    assert 0 < g < r < len(clip.frames)
    assert _skin_pixels(clip.frames[g]) > 50         # the hand is in view when it grasps
    travel = np.linalg.norm(clip.camera_pose[-1][:3, 3] - clip.camera_pose[0][:3, 3])
    assert travel > 0.04                             # the head moved: a baseline for SfM
    steps = np.linalg.norm(np.diff(clip.wrist.pos, axis=0), axis=1)
    assert steps.max() < 0.06                        # 10 Hz, human speeds: no teleporting hand
    assert not any(scene.model.body(i).name.startswith("link") for i in range(scene.model.nbody))


def test_clips_vary_like_people_do(scene_and_renderer):
    scene, renderer = scene_and_renderer
    a = make_clip(scene, renderer, "drawer_open", seed=10, cfg=SMALL)
    b = make_clip(scene, renderer, "drawer_open", seed=11, cfg=SMALL)
    grasp_a = np.array(a.truth_meta["grasp_point"])
    grasp_b = np.array(b.truth_meta["grasp_point"])
    assert len(a.frames) != len(b.frames) or not np.allclose(a.wrist.pos, b.wrist.pos)
    assert np.linalg.norm(grasp_a - grasp_b) > 0.002    # another point on the handle
    assert np.linalg.norm(GRASP_CENTRE) > 0


def test_collect_writes_a_video_and_keeps_the_truth_apart(tmp_path, capsys):
    out = tmp_path / "clips.zarr"
    assert main(["human", "collect", "--skill", "drawer_close", "--clips", "1", "--seed", "5", "--out", str(out),
                 "--no-progress"]) == 0
    assert "clips_per_minute" in capsys.readouterr().out
    store = EpisodeStore.open(out)
    assert set(store.streams) == {"head_rgb"}                 # no robot streams, no poses
    meta = store.metadata(0)
    assert meta["kind"] == "human_clip" and np.array(meta["calibration"]["head"]["k"]).shape == (3, 3)
    assert "extrinsics" not in str(meta) and "base_T_camera" not in str(meta)
    truth = EpisodeStore.open(truth_path(out))
    assert {"camera_pose", "wrist_pose"} <= set(truth.streams) and truth.num_episodes == 1
    # resuming to 2 clips adds one, with the same first clip
    first = store.read_stream(0, "head_rgb")["data"][:3].copy()
    store.close()
    assert main(["human", "collect", "--skill", "drawer_close", "--clips", "2", "--seed", "5", "--out", str(out),
                 "--no-progress"]) == 0
    store = EpisodeStore.open(out)
    assert store.num_episodes == 2 and np.array_equal(store.read_stream(0, "head_rgb")["data"][:3], first)
