"""ZeroMimic trains on human clips only: zero robot demonstrations, and the checkpoint runs on the robot."""
import json

import numpy as np
import pytest

from robot_stack.data.store import EpisodeStore
from robot_stack.human.clips import CLIP_KIND, ClipConfig, make_clip, truth_path, write_clip
from robot_stack.human.perception import WristErrorModel, perceive_store
from robot_stack.human.scene import HumanScene
from robot_stack.policies.base import load_policy
from robot_stack.policies.zeromimic.train import check_human_only, train
from robot_stack.sim.camera import CameraRenderer
from robot_stack.types import Observation, Task
from tests.policies.test_zeromimic import TINY


@pytest.fixture(scope="module")
def human_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("human") / "clips.zarr"
    cfg = ClipConfig(height=96, width=128)
    scene = HumanScene()
    renderer = CameraRenderer(scene, cfg.height, cfg.width)
    store = EpisodeStore.create(out, attrs={"kind": CLIP_KIND})
    truth = EpisodeStore.create(truth_path(out))
    for seed in (1, 2):
        write_clip(store, truth, make_clip(scene, renderer, "drawer_open", seed, cfg), cfg.fps)
    renderer.close()
    store.close()
    truth.close()
    # no SfM here (tests/human covers it): the wrist trajectories in each frame's own camera
    perceive_store(out, errors=WristErrorModel(0.005, 0.03, 0.0, 0.0), sfm=False, progress=False)
    return out


def test_training_reads_human_clips_only_and_the_checkpoint_acts(human_store, tmp_path):
    wrist = human_store.with_name("clips_wrist.zarr")
    result = train("drawer_open", human_store, wrist, tmp_path / "run", steps=3, batch_size=4,
                   overrides=TINY, progress=False)
    assert result["robot_episodes_read"] == 0 and result["clips"] == 2
    manifest = json.loads((tmp_path / "run" / "checkpoint" / "config.json").read_text())["manifest"]
    assert manifest["robot_episodes_read"] == 0 and manifest["human_clips_read"] == [0, 1]
    store = EpisodeStore.open(human_store)
    assert set(store.streams) == {"head_rgb"}        # nothing a robot recorded: no joints, poses or actions
    policy = load_policy(tmp_path / "run" / "checkpoint")
    image = np.zeros((*policy.config.image_hw, 3), np.uint8)
    policy.reset(Task(goal_image=image, camera_pose=np.array([1.0, -0.06, 0.62, 0, 0, 0, 1.0]), skill="drawer_open"))
    chunk = policy.act(Observation(0.0, {"front": image}, np.array([0.45, 0.37, 0.085, 1, 0, 0, 0.0]), 0.02))
    assert chunk.positions.shape == (10, 3) and np.isfinite(chunk.positions).all()


def test_the_affordance_net_trains_on_human_clips_and_an_episode_runs_on_the_ur5e(human_store, tmp_path):
    from robot_stack.policies.zeromimic.affordance import load_affordance, train_affordance
    from robot_stack.policies.zeromimic.deploy import DeployConfig, evaluate
    wrist = human_store.with_name("clips_wrist.zarr")
    result = train_affordance(human_store, wrist, tmp_path / "aff", image_hw=(48, 64), width=8, steps=5)
    assert result["examples"] == 2
    net = load_affordance(tmp_path / "aff")
    assert net.image_hw == (48, 64)
    doc = json.loads((tmp_path / "aff" / "config.json").read_text())
    assert doc["manifest"]["robot_episodes_read"] == 0
    train("drawer_open", human_store, wrist, tmp_path / "run", steps=1, batch_size=4, overrides=TINY, progress=False)
    ckpt = str(tmp_path / "run" / "checkpoint")
    out = evaluate(ckpt, "drawer_open", "ur5e", 1, 0, affordance=str(tmp_path / "aff"),
                   cfg=DeployConfig(skill_steps=2, grasp_steps=20), progress=False)
    assert out["episodes"] == 1 and 0.0 <= out["ci95"][0] <= out["ci95"][1] <= 1.0
    record = out["records"][0]
    assert "pixel" in record or "no grasp found" in record.get("reason", "") or "approach" in record.get("reason", "")
    with pytest.raises(ValueError, match="drawer_open"):
        evaluate(ckpt, "pick_place", "panda", 1, 0, oracle_pixel=True, progress=False)


def test_a_robot_store_is_refused(tmp_path):
    robot = EpisodeStore.create(tmp_path / "robot.zarr")
    writer = robot.begin_episode({"task": "drawer_open"})
    writer.append("front_rgb", np.zeros((8, 8, 3), np.uint8), 0.0)
    writer.append("ee_pose", np.zeros(7), 0.0)
    writer.commit(success=True)
    with pytest.raises(ValueError, match="human video only"):
        check_human_only(robot)
