"""The gymnasium API over the twin."""
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from robot_stack.sim import make_env
from robot_stack.sim.env import DeltaAction


def test_passes_gymnasium_env_checker():
    env = make_env("lift", "panda", seed=0, cameras=("front", "wrist"), image_size=64)
    check_env(env, skip_render_check=True)


def test_observation_contents():
    env = make_env("push", "ur5e", cameras=("front", "wrist"), image_size=(48, 64))
    obs, info = env.reset(seed=0)
    assert obs["front"].shape == (48, 64, 3) and obs["wrist"].dtype == np.uint8
    assert obs["front"].std() > 5              # a real image, not a blank
    assert obs["joint_pos"].shape == (6,)
    assert obs["ee_pose"].shape == (7,)
    assert abs(np.linalg.norm(obs["ee_pose"][3:]) - 1) < 1e-6
    assert info["instruction"] and info["contact_phase"] == "pre_contact"


def test_absolute_action_moves_the_tcp_there():
    env = make_env("reach", "panda", cameras=())
    obs, _ = env.reset(seed=0)
    target = obs["ee_pose"].copy()
    target[:3] += [0.02, -0.02, -0.03]
    for _ in range(5):
        obs, *_ = env.step(np.concatenate((target, [0.0])))
    np.testing.assert_allclose(obs["ee_pose"][:3], target[:3], atol=2e-3)


def test_bad_action_shape_is_a_clear_error():
    env = make_env("reach", "panda", cameras=())
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(7))
    with pytest.raises(ValueError, match="unknown cameras"):
        make_env("reach", cameras=("side",))


def test_delta_action_wrapper_moves_by_the_scaled_step():
    env = DeltaAction(make_env("reach", "panda", cameras=()), max_translation=0.02)
    obs, _ = env.reset(seed=0)
    start = obs["ee_pose"][:3].copy()
    for _ in range(3):
        obs, *_ = env.step(np.array([1.0, 0, -0.5, 0, 0, 0, -1]))
    obs, *_ = env.step(np.zeros(7))
    np.testing.assert_allclose(obs["ee_pose"][:3] - start, [0.06, 0.0, -0.03], atol=3e-3)
    assert env.action_space.shape == (7,)


def test_sparse_reward_and_termination_on_success():
    env = make_env("reach", "panda", cameras=(), reward="sparse")
    obs, _ = env.reset(seed=0)
    goal = env.unwrapped.scene.target_zone_pos()
    action = np.concatenate((goal, obs["ee_pose"][3:], [0.0]))
    rewards = []
    for _ in range(30):
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        if terminated:
            break
    assert terminated and info["success"]
    assert rewards[-1] == 1.0 and set(rewards[:-1]) <= {0.0}
