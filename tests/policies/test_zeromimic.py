"""ZeroMimic: faithfulness of the wrist-pose maths, the CVAE, deployment on the robot, human-only training."""
import numpy as np
import pytest
import torch

from robot_stack import transforms as tf
from robot_stack.policies.conditioning.base import ConditioningError
from robot_stack.policies.conditioning.wrist_pose import camera_matrix, camera_pose_vector
from robot_stack.policies.errors import BadObservation, MissingConditioning
from robot_stack.policies.zeromimic import poses
from robot_stack.policies.zeromimic.config import ZeroMimicConfig
from robot_stack.policies.zeromimic.model import kl_divergence
from robot_stack.policies.zeromimic.policy import ZeroMimicPolicy
from robot_stack.types import Observation, Task

TINY = dict(image_hw=(48, 64), resnet_width=8, hidden=32, ffn=64, heads=2, enc_layers=1, dec_layers=1, latent=4,
            dropout=0.0, shift_pad=0)


def _random_pose(rng):
    return tf.pose_to_mat(rng.uniform(-0.5, 0.5, 3), tf.normalize(rng.standard_normal(4)))


@pytest.mark.parametrize("mode", ["relative", "absolute"])
def test_chunk_encoding_round_trips(mode):
    rng = np.random.default_rng(0)
    current = _random_pose(rng)
    future = np.stack([_random_pose(rng) for _ in range(10)])
    back = poses.decode_chunk(current, poses.encode_chunk(current, future, mode), mode)
    assert np.allclose(back, future, atol=1e-9)


def test_relative_actions_do_not_depend_on_where_the_motion_happens():
    rng = np.random.default_rng(1)
    current, shift = _random_pose(rng), tf.pose_to_mat([0.3, -0.2, 0.1], [0, 0, 0, 1])
    future = np.stack([current @ tf.pose_to_mat([0.01 * k, 0, 0], [0, 0, 0, 1]) for k in range(1, 4)])
    a = poses.encode_chunk(current, future)
    b = poses.encode_chunk(shift @ current, shift[None] @ future)
    assert np.allclose(a, b)                            # a translated demonstration is the same action
    assert not np.allclose(poses.encode_chunk(current, future, "absolute"),
                           poses.encode_chunk(shift @ current, shift[None] @ future, "absolute"))


def test_a_known_camera_frame_wrist_pose_maps_to_the_expected_tcp_in_base():
    # a camera 1 m up looking straight down (optical z = -base z, x = base x, y = -base y)
    base_T_camera = tf.pose_to_mat([0.5, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0])
    # a wrist 0.9 m in front of the camera, hand frame aligned with the camera's
    camera_T_wrist = tf.pose_to_mat([0.0, 0.0, 0.9], [0, 0, 0, 1])
    offset = ZeroMimicConfig().hand_to_tcp
    tcp = poses.camera_wrists_to_tcp(camera_T_wrist[None], base_T_camera, offset)[0]
    # wrist at base (0.5, 0, 0.1); the TCP 7.5 cm along the fingers (camera x = base x) and 3.5 cm out of the
    # palm (camera z = base -z)
    assert np.allclose(tcp[:3], [0.575, 0.0, 0.065], atol=1e-9)
    # the TCP's z is the palm normal (down), its closing axis y the finger direction (base x)
    r = tf.quat_to_mat(tcp[3:])
    assert np.allclose(r[:, 2], [0, 0, -1], atol=1e-9) and np.allclose(r[:, 1], [1, 0, 0], atol=1e-9)
    # and the robot's TCP read back as a wrist gives the pose it came from
    back = poses.robot_wrist_in_camera(tcp, base_T_camera, offset)
    assert np.allclose(back, camera_T_wrist, atol=1e-9)


def test_kl_term_against_a_hand_computed_value():
    mu = torch.tensor([[0.5, -1.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.0, np.log(2.0)], [np.log(0.5), 0.0]], dtype=torch.float32)
    # KL per dim = 0.5 (var + mu^2 - 1 - log var)
    # row 0: 0.125 + 0.5 (2 + 1 - 1 - ln 2); row 1: 0.5 (0.5 - 1 - ln 0.5) + 2
    row0 = 0.125 + 0.5 * (2 - np.log(2.0))
    row1 = 0.5 * (0.5 - 1 - np.log(0.5)) + 2.0
    assert float(kl_divergence(mu, logvar)) == pytest.approx((row0 + row1) / 2, rel=1e-6)


def _policy(**over):
    config = ZeroMimicConfig(**{**TINY, **over})
    stats = {"pose": {"mean": [0.0] * 9, "std": [1.0] * 9}, "action": {"mean": [0.0] * 6, "std": [0.01] * 6}}
    torch.manual_seed(0)
    return ZeroMimicPolicy(config, stats).eval()


def _task(policy, **over):
    rng = np.random.default_rng(0)
    h, w = policy.config.image_hw
    from robot_stack.sim.camera import extrinsics
    from robot_stack.sim.scene import Scene
    fields = {"goal_image": rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
              "camera_pose": camera_pose_vector(extrinsics(Scene("panda"), "front")), "skill": "drawer_open"}
    return Task(**{**fields, **over})


def _obs(policy, stamp=0.0):
    h, w = policy.config.image_hw
    image = np.random.default_rng(1).integers(0, 255, (2 * h, 2 * w, 3), dtype=np.uint8)   # resized by the policy
    return Observation(stamp=stamp, images={"front": image}, ee_pose=np.array([0.45, 0.37, 0.085, 1, 0, 0, 0.0]),
                       gripper=0.02)


def test_z_zero_at_inference_gives_deterministic_actions_and_z_matters():
    policy = _policy()
    rng = np.random.default_rng(2)
    image = rng.integers(0, 255, (1, 48, 64, 3), dtype=np.uint8)
    goal = rng.integers(0, 255, (1, 48, 64, 3), dtype=np.uint8)
    pose = torch.zeros(1, 9)
    x, g = policy._images(image, False), policy._images(goal, False)
    with torch.no_grad():
        a, b = policy.net(x, g, pose), policy.net(x, g, pose)
        c = policy.net(x, g, pose, z=torch.ones(1, 4) * 3)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    policy.reset(_task(policy))
    one, two = policy.act(_obs(policy)), policy.act(_obs(policy, 0.1))
    assert np.allclose(one.positions, two.positions) and np.allclose(one.quats, two.quats)


def test_act_runs_on_both_arms_frames_and_holds_the_gripper_closed():
    policy = _policy()
    policy.reset(_task(policy))
    chunk = policy.act(_obs(policy))
    assert chunk.positions.shape == (10, 3) and np.all(chunk.gripper == 1.0)
    assert np.all(np.isfinite(chunk.positions)) and np.linalg.norm(chunk.positions - [0.45, 0.37, 0.085],
                                                                    axis=1).max() < 0.5


def test_bad_input_is_refused_with_a_reason():
    policy = _policy()
    with pytest.raises(BadObservation):
        policy.reset(_task(policy, goal_image=np.zeros((16, 16, 3), np.uint8)))      # a goal far too small
    with pytest.raises(BadObservation):
        policy.reset(_task(policy, goal_image=np.zeros((48, 64, 4), np.uint8)))      # not RGB
    with pytest.raises(ConditioningError, match="drawer_open"):
        policy.reset(_task(policy, skill="pick_place"))                             # another skill
    with pytest.raises(MissingConditioning):
        policy.reset(_task(policy, camera_pose=None))
    with pytest.raises(ConditioningError):
        camera_pose_vector([0, 0, 0, 0, 0, 0, 0])
    assert np.allclose(camera_matrix(camera_pose_vector(np.eye(4))), np.eye(4))


def test_bench_policy_can_time_zeromimic_act():
    """`bench policy` builds every registered policy with its generic stats, square frames and the kinds'
    example task (a square goal): ZeroMimic must take them as they are."""
    from robot_stack.bench.policy import _obs, _stats, _time, example_task
    from robot_stack.policies.base import policy_class
    policy = policy_class("zeromimic").from_config(TINY, _stats()).eval()
    size = policy.data_spec().image_size
    policy.reset(example_task(size))
    obs = _obs(size, 0.0)
    assert _time(lambda: policy.act(obs), 2)["p50_ms"] > 0


def test_the_wrist_pose_kind_round_trips_its_topics_and_builds_eval_fields():
    from robot_stack.policies.conditioning import get_kind
    from robot_stack.policies.conditioning.base import EpisodeContext, InputLimits
    kind = get_kind("wrist_pose")
    pose_topic, skill_topic = kind.topics()
    task = Task(camera_pose=np.array([1.0, -0.06, 0.62, 0.0, 0.0, 0.0, 1.0]), skill="drawer_close")
    parsed = pose_topic.parse(pose_topic.build(task, 1.0), InputLimits())
    assert np.allclose(parsed["camera_pose"], task.camera_pose)
    assert skill_topic.parse(skill_topic.build(task, 1.0), InputLimits()) == {"skill": "drawer_close"}
    assert pose_topic.parse(pose_topic.build(Task(), 1.0), InputLimits()) == {"camera_pose": None}   # cleared
    ctx = EpisodeContext(seed=0, task="drawer_open", robot="ur5e", image_size=64, params={}, options={})
    fields = kind.episode_fields(ctx)
    assert fields["skill"] == "drawer_open" and np.allclose(fields["camera_pose"][:3], [1.0, -0.06, 0.62])
    assert "wrist_pose" in Task(**kind.example(64)).provides()
