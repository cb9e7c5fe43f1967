"""ZeroMimic's grasp stage: affordance heatmaps and antipodal grasps from the robot's depth image."""
import numpy as np
import pytest
import torch

from robot_stack import transforms as tf
from robot_stack.policies.zeromimic.grasp import (AffordanceNet, NoGraspFound, affordance_loss, antipodal_grasp,
                                                  approach_waypoints, heatmap_target, predict_pixel)
from robot_stack.sim.camera import CameraRenderer, extrinsics, intrinsics, project
from robot_stack.sim.scene import Scene
from robot_stack.sim.tasks import make_task


@pytest.fixture(scope="module")
def pick_scene():
    scene = Scene("panda")
    task = make_task("pick_place")
    task.reset(scene, np.random.default_rng(3))
    import mujoco
    mujoco.mj_forward(scene.model, scene.data)
    renderer = CameraRenderer(scene, 240, 240)
    depth = renderer.render_depth("front")
    renderer.close()
    return scene, task, depth, intrinsics(scene, "front", 240, 240), extrinsics(scene, "front")


def test_an_antipodal_grasp_lands_on_the_block_at_the_affordance(pick_scene):
    scene, task, depth, k, base_T_camera = pick_scene
    block = scene.block_pos(task.params.color)
    uv, _ = project(block + [0, 0, 0.02], k, base_T_camera)       # the top face's centre
    pos, quat, width = antipodal_grasp(depth, k, base_T_camera, uv[0])
    assert np.linalg.norm(pos[:2] - block[:2]) < 0.02 and 0.0 < pos[2] < 0.05
    assert 0.04 < width < 0.06                                   # across the 4 cm block (+ 1 cm clearance)
    r = tf.quat_to_mat(quat)
    assert abs(r[2, 1]) < 0.3 and r[2, 2] < -0.7                 # closing axis level, approach from above
    path = approach_waypoints(pos, quat)
    assert np.allclose(path[-1, :3], pos) and path[0, 2] > pos[2] + 0.05


def test_no_valid_depth_near_the_affordance_is_a_clear_refusal(pick_scene):
    _, _, depth, k, base_T_camera = pick_scene
    holed = depth.copy()
    holed[100:140, 100:140] = 0.0
    with pytest.raises(NoGraspFound, match="no valid depth"):
        antipodal_grasp(holed, k, base_T_camera, np.array([120.0, 120.0]))
    with pytest.raises(NoGraspFound):
        antipodal_grasp(np.zeros_like(depth), k, base_T_camera, np.array([120.0, 120.0]))


def test_the_affordance_heatmap_learns_where_the_hand_touched():
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    size = 32
    images, targets, pixels = [], [], []
    for _ in range(48):                          # a red square marks the touched object
        u, v = rng.integers(6, size - 6, 2)
        img = np.full((size, size, 3), 90, np.uint8)
        img[v - 3:v + 3, u - 3:u + 3] = (220, 30, 30)
        images.append(img)
        pixels.append((u, v))
        targets.append(heatmap_target(np.array([u, v], float), size // 4))
    x = (torch.as_tensor(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.25
    t = torch.as_tensor(np.stack(targets))
    net = AffordanceNet(width=8)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    for _ in range(80):
        loss = affordance_loss(net(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    err = [np.linalg.norm(predict_pixel(net, images[i]) - pixels[i]) for i in range(16)]
    assert np.median(err) < 4.0, err


@pytest.mark.parametrize("robot", ["panda", "ur5e"])
def test_a_zeromimic_episode_grasps_the_handle_then_runs_the_skill_policy(robot):
    from robot_stack.policies.zeromimic.deploy import DeployConfig, run_episode
    from robot_stack.sim.env import make_env
    from tests.policies.test_zeromimic import _policy

    policy = _policy()
    env = make_env("drawer_open", robot=robot, cameras=("front",), image_size=(48, 64))
    env.reset(seed=0)
    h, w = DeployConfig().depth_hw
    uv, _ = project(env.scene.handle_pos(), intrinsics(env.scene, "front", h, w), extrinsics(env.scene, "front"))
    assert 0 <= uv[0, 0] < w and 0 <= uv[0, 1] < h             # the handle is in the wide front view
    record = run_episode(env, policy, 0, np.zeros((48, 64, 3), np.uint8), pixel=uv[0],
                         cfg=DeployConfig(skill_steps=6))
    assert "reason" not in record, record
    assert np.linalg.norm(np.array(record["grasp"]) - env.scene.handle_pos()) < 0.05 or record["skill_steps"] > 0
    assert record["skill_steps"] >= 1 or record["released"]
    # a depth hole where the affordance points: the episode stops with the reason, the arm never moved
    bad = run_episode(env, policy, 0, np.zeros((48, 64, 3), np.uint8), pixel=np.array([-50.0, -50.0]))
    assert not bad["success"] and "no grasp found" in bad["reason"]
    env.close()
