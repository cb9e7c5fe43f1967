"""RT-Trajectory: the sketch as the paper draws it, early fusion, action tokens, and the policy end to end."""
import json

import numpy as np
import pytest
import torch

from robot_stack.policies.conditioning import ConditioningError, get_kind
from robot_stack.policies.errors import BadObservation, MissingConditioning
from robot_stack.policies.rt_trajectory.config import RTTrajectoryConfig
from robot_stack.policies.rt_trajectory.policy import RTTrajectoryPolicy
from robot_stack.policies.rt_trajectory.tokens import from_bins, to_bins
from robot_stack.sketches import SketchError, SketchStyle, draw_sketch, gripper_events, project_points, waypoint_path
from robot_stack.types import Observation, Task

SIZE = 64
K = np.array([[60.0, 0, 31.5], [0, 60.0, 31.5], [0, 0, 1]])
# a camera 1 m above the base looking straight down (optical z = -base z, optical x = base y, optical y = base x)
CAM = np.array([[0.0, 1, 0, 0.45], [1, 0, 0, 0.0], [0, 0, -1, 1.0], [0, 0, 0, 1]])


def path(height=0.1, n=30):
    t = np.linspace(0, 1, n)
    return np.stack([0.35 + 0.2 * t, -0.15 + 0.3 * t, np.full(n, height)], 1)


def test_colour_grades_time_monotonically_along_the_path():
    pts = path(n=8)
    k = K * np.array([[2, 1, 2], [1, 2, 2], [1, 1, 1]])             # 128 px: lines 2 px wide
    image = draw_sketch(pts, np.zeros(len(pts)), k, CAM, 128, 128, SketchStyle(mode="2d"))
    uv, _ = project_points(pts, k, CAM)
    middles = (uv[1:] + uv[:-1]) / 2                                 # segment t-1 -> t carries point t's colour
    reds = [int(image[int(round(v)), int(round(u)), 0]) for u, v in middles]
    assert reds == sorted(reds) and len(set(reds)) == 7
    assert reds[-1] == 255 and abs(reds[0] - round(255 * 2 / 8)) <= 2  # R_t = (t + 1) / T
    assert not image[..., 2].any()                                   # no gripper event: no blue anywhere


def test_markers_sit_exactly_at_the_gripper_transitions():
    pts = path()
    cmd = np.zeros(len(pts))
    cmd[10:20] = 1.0
    assert gripper_events(cmd) == [(10, "close"), (20, "open")]
    image = draw_sketch(pts, cmd, K, CAM, SIZE, SIZE, SketchStyle(mode="2d"))
    uv, _ = project_points(pts, K, CAM)
    u, v = np.round(uv[10]).astype(int)
    assert tuple(image[v, u]) == (0, 255, 0)                         # closing: green disc centred on step 10
    u, v = np.round(uv[20]).astype(int)
    assert tuple(image[v, u]) == (0, 0, 255)                         # opening: blue disc centred on step 20


def test_the_2_5d_sketch_encodes_height_where_the_2d_one_cannot():
    low, high = path(0.05), path(0.3)
    cmd = np.zeros(len(low))
    # seen from straight above, the two paths project to the same pixels
    flat = [draw_sketch(p, cmd, K, CAM @ np.diag([1, 1, 1, 1.0]), SIZE, SIZE, SketchStyle(mode="2d")) for p in (low, low)]
    np.testing.assert_array_equal(*flat)
    style = SketchStyle(mode="2.5d", h_min=0.0, h_max=0.4)
    low_2_5d, high_2_5d = (draw_sketch(p, cmd, K, CAM, SIZE, SIZE, style) for p in (low, high))
    assert high_2_5d[..., 1].max() > low_2_5d[..., 1].max() + 100     # green = height over the dataset-wide range


def test_bad_paths_are_refused_with_the_reason():
    pts = path()
    with pytest.raises(SketchError, match="non-finite"):
        draw_sketch(np.where(np.arange(30)[:, None] == 3, np.nan, pts), np.zeros(30), K, CAM, SIZE, SIZE)
    behind = pts.copy()
    behind[:, 2] = 1.5                                                # above the camera: behind it
    with pytest.raises(SketchError, match="behind the camera"):
        draw_sketch(behind, np.zeros(30), K, CAM, SIZE, SIZE)
    with pytest.raises(SketchError, match="position must be 3 finite"):
        waypoint_path([{"position": [0.4, 0, 0.1]}, {"position": [np.nan, 0, 0.1]}])
    with pytest.raises(ConditioningError, match="all black"):
        get_kind("sketch").topics()[0].parse(_image_msg(np.zeros((SIZE, SIZE, 3), np.uint8)), _limits())


def _limits():
    from robot_stack.policies.conditioning import InputLimits
    return InputLimits()


def _image_msg(image):
    from robot_stack.ros import convert
    return convert.image_msg(image, 0.0, "front")


def test_action_tokens_round_trip_within_half_a_bin():
    x = torch.linspace(-1, 1, 10001)
    for bins in (256, 7):
        back = from_bins(to_bins(x, bins), bins)
        assert (back - x).abs().max() <= 1.0 / bins + 1e-6           # half a bin = (2 / bins) / 2
    assert to_bins(torch.tensor([-5.0, 5.0]), 256).tolist() == [0, 255]


def tiny(**kw):
    from robot_stack.policies.actions import compute_stats
    rng = np.random.default_rng(0)
    stats = {"action": compute_stats(0.02 * rng.normal(size=(100, 7))), "proprio": compute_stats(rng.normal(size=(100, 8)))}
    cfg = RTTrajectoryConfig(image_size=32, channels=(8, 16), tokens_per_frame=4, width=32, layers=1, heads=2,
                             obs_horizon=2, action_horizon=2, **kw)
    return RTTrajectoryPolicy(cfg, stats)


def test_the_sketch_is_fused_early_and_there_is_no_language_path():
    p = tiny()
    assert p.net.trunk.first_conv.in_channels == 6                   # RGB + sketch, before the first convolution
    assert p.conditioning == {"sketch"}
    assert not any("lang" in n or "text" in n or "film" in n for n, _ in p.named_parameters())
    with pytest.raises(MissingConditioning):
        p.reset(Task(instruction="pick up the red block"))
    with pytest.raises(BadObservation, match="sketch"):
        p.reset(Task(sketch=np.full((48, 48, 3), 9, np.uint8)))       # the wrong size
    # from an RGB-only trunk the sketch channels start at zero, the RGB ones keep their weights
    rgb = torch.randn(8, 3, 4, 4)
    adapted = p.adapt_init_weights({"net.trunk.net.0.weight": rgb})["net.trunk.net.0.weight"]
    assert adapted.shape == (8, 6, 4, 4) and torch.equal(adapted[:, :3], rgb) and not adapted[:, 3:].any()


def test_swapping_the_sketch_changes_the_actions_and_it_stays_fixed_through_an_episode():
    """Trained briefly where only the sketch says which way to go (the frames are identical), the policy's actions
    follow the sketch: the open-loop probe's swap moves them, and a sketch given at reset holds for the episode."""
    from robot_stack.policies.probe import sensitivity

    torch.manual_seed(0)
    p = tiny(shift_pad=0, dropout=0.0)
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    left, right = np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8)
    left[:, :8, 0], right[:, 24:, 0] = 255, 255

    def batch(n=16):
        which = torch.arange(n) % 2
        return {"images": {"front": torch.from_numpy(frame).expand(n, 2, 32, 32, 3).clone()},
                "sketch": torch.from_numpy(np.stack([left, right]))[which],
                "action": (which.float() * 1.2 - 0.6)[:, None, None].expand(n, 2, 7).clone(),
                "action_is_pad": torch.zeros(n, 2, dtype=torch.bool), "proprio": torch.zeros(n, 2, 8)}
    opt = torch.optim.AdamW(p.parameters(), 3e-3)
    for _ in range(60):
        loss, _ = p.loss(batch())
        opt.zero_grad()
        loss.backward()
        opt.step()
    p.eval()
    assert sensitivity(p, batch(8))["swapped_mm"]["sketch"] > 1.0     # the probe: swapping sketches moves the targets
    obs = Observation(stamp=1.0, images={"front": frame}, ee_pose=np.array([0.4, 0.0, 0.2, 1.0, 0.0, 0.0, 0.0]),
                      gripper=0.08)
    p.reset(Task(sketch=left))
    first = p.act(obs)
    obs.stamp = 1.1
    again = p.act(obs)
    assert p.task.sketch is left and np.allclose(first.positions - first.positions[0], again.positions - again.positions[0])
    p.reset(Task(sketch=right))
    other = p.act(obs)
    assert np.abs(other.positions - again.positions).max() > 1e-3


def test_rt_trajectory_trains_on_hindsight_sketches_and_runs_closed_loop(tmp_path):
    """A small store of expert episodes -> hindsight sketches (constant per episode) -> a few training steps ->
    one closed-loop episode with the expert's sketch and one with a waypoint file."""
    from robot_stack.evaluate import run_eval
    from robot_stack.policies import load_policy
    from robot_stack.policies.batches import PolicyBatches
    from robot_stack.policies.probe import sensitivity
    from robot_stack.policies.train import train, train_config
    from robot_stack.sim.expert_data import generate

    store = tmp_path / "reach.zarr"
    assert generate("reach", "panda", 3, seed=1000, out=str(store), image_size=32)["episodes"] == 3
    arch = ["policy.image_size=32", "policy.channels=[8,16]", "policy.tokens_per_frame=4", "policy.width=32",
            "policy.layers=1", "policy.heads=2", "policy.obs_horizon=2", "policy.action_horizon=2"]
    cfg = train_config(["policy=rt_trajectory", f"data={store}", "task=reach", f"out={tmp_path}/run", "steps=6",
                        "batch_size=8", "threads=1", "val_fraction=0", "log_every=3", *arch])
    train(cfg)
    policy = load_policy(tmp_path / "run" / "checkpoint")
    batches = PolicyBatches(store, policy.data_spec(), [0, 1, 2], stats=policy.stats, conditioning=policy.conditioning)
    b = batches.batch(np.arange(len(batches)), np.random.default_rng(0))
    eps = [batches.ds.window(j)[0] for j in range(len(batches))]
    for e in set(eps):                                                # the hindsight sketch: one per episode
        rows = b["sketch"][[j for j, x in enumerate(eps) if x == e]]
        assert (rows == rows[0]).all() and rows[0].any()
    assert not torch.equal(b["sketch"][eps.index(0)], b["sketch"][eps.index(1)])
    assert set(sensitivity(policy, b)["swapped_mm"]) >= {"sketch", "camera front"}
    report = run_eval(str(tmp_path / "run" / "checkpoint"), "reach", "panda", 1, seed=3, backend="sim",
                      options={"sketch": "expert"})
    assert report["conditioning"] == "sketch" and report["episodes"] == 1
    waypoints = tmp_path / "wp.json"
    waypoints.write_text(json.dumps([{"position": [0.4, 0.0, 0.3], "gripper": 0}, {"position": [0.5, 0.1, 0.15]}]))
    report = run_eval(str(tmp_path / "run" / "checkpoint"), "reach", "panda", 1, seed=3, backend="sim",
                      options={"sketch_waypoints": str(waypoints)})
    assert report["episodes"] == 1
    waypoints.write_text(json.dumps([{"position": [0.4, 0.0, 0.3]}, {"position": [2.0, 0.1, 0.15]}]))
    with pytest.raises(ValueError, match="outside the workspace"):
        run_eval(str(tmp_path / "run" / "checkpoint"), "reach", "panda", 1, seed=3, backend="sim",
                 options={"sketch_waypoints": str(waypoints)})
