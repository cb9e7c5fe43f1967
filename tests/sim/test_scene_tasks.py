"""Scene cameras, task predicates and rewards."""
import mujoco
import numpy as np
import pytest

from robot_stack.sim import camera
from robot_stack.sim.env import make_env
from robot_stack.sim.scene import BLOCK_HALF, Scene
from robot_stack.sim.tasks import TASKS, make_task


@pytest.mark.parametrize("cam", ["front", "wrist"])
def test_projection_lands_on_the_block_in_the_rendered_image(cam):
    scene = Scene("panda")
    scene.set_free_body("red_block", [0.42, -0.05, BLOCK_HALF])
    scene.set_q(scene.q)
    renderer = camera.CameraRenderer(scene, 120, 160)
    k = camera.intrinsics(scene, cam, 120, 160)
    pose = camera.extrinsics(scene, cam)
    (u, v), = camera.project(scene.block_pos("red")[None], k, pose)[0]
    seg = renderer.render_segmentation(cam)
    assert seg[int(round(v)), int(round(u))] == scene.model.geom("red_block").id
    renderer.close()


def test_intrinsics_follow_the_image_size():
    scene = Scene("panda")
    k1 = camera.intrinsics(scene, "front", 128, 128)
    k2 = camera.intrinsics(scene, "front", 256, 256)
    assert k2[0, 0] == pytest.approx(2 * k1[0, 0])
    assert k1[0, 2] == pytest.approx(63.5)


def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError, match="pick_place"):
        make_task("juggle")
    with pytest.raises(ValueError, match="panda"):
        make_env("reach", robot="iiwa")


def _env(task):
    env = make_env(task, "panda", cameras=())
    env.reset(seed=3)
    return env


def test_pick_place_success_needs_block_in_bowl_and_released():
    env = _env("pick_place")
    scene, task = env.scene, env.task
    bowl = scene.body_pose("bowl")[0]
    assert not task.success(scene)
    scene.set_free_body(f"{task.params.color}_block", bowl + [0.0, 0.0, 0.03])
    env.arm.step(300)
    assert task.success(scene)
    assert task.dense_reward(scene) == 1.0
    scene.set_free_body(f"{task.params.color}_block", bowl + [0.12, 0.0, BLOCK_HALF])
    env.arm.step(100)
    assert not task.success(scene)
    assert 0.0 <= task.dense_reward(scene) < 1.0


def test_stack_success_needs_block_on_block():
    env = _env("stack")
    scene, task = env.scene, env.task
    bottom = scene.block_pos(task.params.extra["bottom"])
    scene.set_free_body(f"{task.params.color}_block", bottom + [0.0, 0.0, 2 * BLOCK_HALF + 0.002])
    env.arm.step(300)
    assert task.success(scene)
    scene.set_free_body(f"{task.params.color}_block", bottom + [0.06, 0.0, 0.0])
    env.arm.step(100)
    assert not task.success(scene)


def test_lift_success_at_ten_centimetres():
    env = _env("lift")
    scene, task = env.scene, env.task
    xy = scene.block_pos(task.params.color)[:2]
    scene.set_free_body(f"{task.params.color}_block", [*xy, BLOCK_HALF + 0.09])
    scene.set_q(scene.q)
    assert not task.success(scene)
    scene.set_free_body(f"{task.params.color}_block", [*xy, BLOCK_HALF + 0.101])
    scene.set_q(scene.q)
    assert task.success(scene)


def test_push_success_inside_the_zone():
    env = _env("push")
    scene, task = env.scene, env.task
    zone = scene.target_zone_pos()
    scene.set_free_body(f"{task.params.color}_block", [zone[0] + 0.03, zone[1], BLOCK_HALF])
    env.arm.step(100)
    assert task.success(scene)
    scene.set_free_body(f"{task.params.color}_block", [zone[0] + 0.07, zone[1], BLOCK_HALF])
    env.arm.step(100)
    assert not task.success(scene)


def test_drawer_predicates():
    env = _env("drawer_open")
    scene = env.scene
    assert not env.task.success(scene)
    scene.set_drawer(0.13)
    assert env.task.success(scene)
    close = make_task("drawer_close")
    assert not close.success(scene)
    scene.set_drawer(0.01)
    assert close.success(scene)


def test_reach_success_within_two_centimetres():
    env = _env("reach")
    goal = env.scene.target_zone_pos()
    env.arm.command_pose(goal + [0.03, 0, 0], env.scene.ee_pose()[1], 0.0, 0.1)
    env.arm.step(2000)
    assert not env.task.success(env.scene)
    env.arm.command_pose(goal + [0.01, 0, 0], env.scene.ee_pose()[1], 0.0, 0.1)
    env.arm.step(1000)
    assert env.task.success(env.scene)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_resets_are_randomised_and_seeded(task):
    env = make_env(task, "panda", cameras=())
    a = env.reset(seed=1)[0]["task_state"]
    b = env.reset(seed=2)[0]["task_state"]
    c = env.reset(seed=1)[0]["task_state"]
    np.testing.assert_allclose(a, c)
    assert not np.allclose(a, b) or not np.allclose(env.reset(seed=1)[0]["ee_pose"], env.reset(seed=2)[0]["ee_pose"])
    assert not env.task.success(env.scene)


def test_a_mirror_loaded_from_a_state_message_shows_the_same_scene():
    source, mirror = Scene("panda"), Scene("panda")
    make_task("pick_place").reset(source, np.random.default_rng(3))
    source.data.mocap_pos[source.target_zone_mocap] = [0.5, 0.1, 0.0]
    mujoco.mj_forward(source.model, source.data)
    assert not np.allclose(mirror.data.qpos, source.data.qpos)
    stamp = mirror.load_state_message([12.5, *source.sim_state()])
    assert stamp == 12.5
    for color in ("red", "green", "blue"):
        np.testing.assert_allclose(mirror.block_pos(color), source.block_pos(color))
    np.testing.assert_allclose(mirror.ee_pose()[0], source.ee_pose()[0])
    np.testing.assert_allclose(mirror.target_zone_pos()[:2], [0.5, 0.1])
    with pytest.raises(ValueError, match="ur5e scene needs"):
        Scene("ur5e").load_state_message([0.0, *source.sim_state()])


def test_replay_commands_keep_a_release_sent_after_the_last_pose():
    """The demo recorded the gripper opening 10 ms after the last pose command; replay dropped it and held the block."""
    from robot_stack.sim.replay import _commands
    poses = np.tile([0.5, 0.0, 0.1, 0.0, 0.0, 0.0, 1.0], (3, 1))
    poses[:, 0] += [0.0, 0.01, 0.02]
    ep = {"action_pose": {"capture_stamp": np.array([1.0, 1.1, 1.2]), "data": poses},
          "action_gripper": {"capture_stamp": np.array([1.0, 1.21]), "data": np.array([[1.0], [0.0]])}}
    commands = _commands(ep)
    assert [(t, kind) for t, kind, _, _ in commands] == [(1.0, "pose"), (1.0, "gripper"), (1.1, "pose"),
                                                         (1.2, "pose"), (1.21, "gripper")]
    assert commands[-1][2] == 0.0                                        # the release is replayed
    np.testing.assert_allclose(commands[3][2], poses[-1])               # after the last pose, which holds


def test_replay_hands_each_command_over_at_the_tick_the_arm_took_it():
    """arm/commands_taken (action_taken): a target that reached the arm late is replayed late, one a newer target
    overtook in the same tick is not replayed, and what came before the log's first row goes at its stamp."""
    from robot_stack.sim.replay import _commands
    poses = np.tile([0.5, 0.0, 0.1, 0.0, 0.0, 0.0, 1.0], (4, 1))
    poses[:, 0] += [0.0, 0.01, 0.02, 0.03]
    ep = {"action_pose": {"capture_stamp": np.array([1.0, 1.1, 1.2, 1.25]), "data": poses},
          "action_gripper": {"capture_stamp": np.array([1.0]), "data": np.array([[0.0]])},
          # rows: tick stamp, the target's stamp (NaN: none taken), the gripper command at that tick
          "action_taken": {"capture_stamp": np.array([1.102, 1.33, 1.5]),
                           "data": np.array([[1.1, 0.0], [1.25, 0.0], [np.nan, 1.0]])}}
    commands = _commands(ep)
    assert [(t, kind) for t, kind, _, _ in commands] == [(1.0, "pose"), (1.0, "gripper"), (1.102, "pose"),
                                                         (1.102, "gripper"), (1.33, "pose"), (1.33, "gripper"),
                                                         (1.5, "gripper")]
    assert commands[4][3] == 1.25                                      # set with its own stamp, handed over late
    np.testing.assert_allclose(commands[4][2], poses[3])               # the 1.2 target was overtaken: not replayed
    assert commands[-1][2] == 1.0


def test_replay_puts_the_live_stamps_on_the_twins_physics_time():
    """A live loop running late lets the twin's physics lag its stamps: action_taken's physics column maps each
    stamp to the physics step it was read at, so commands and comparisons land on the live arm's steps."""
    from robot_stack.sim.replay import _physics_clock
    dt = 0.001
    ep = {"action_taken": {"capture_stamp": np.array([10.0, 10.5, 11.0]),
                           # target stamp, gripper, physics time after the tick's step: 50 ms behind at 10.5
                           "data": np.array([[9.99, 0.0, 0.501], [10.49, 0.0, 0.951], [10.99, 1.0, 1.501]])}}
    to_replay = _physics_clock(ep, 9.8, dt)
    assert to_replay(9.8) == pytest.approx(9.8)
    assert to_replay(10.0) == pytest.approx(10.0)              # 0.2 s of physics after the start, as of wall time
    assert to_replay(10.5) == pytest.approx(10.45)             # the lag: this state was read 50 ms of physics earlier
    assert to_replay(11.0) == pytest.approx(11.0) and to_replay(11.5) == pytest.approx(11.5)
    two_columns = {"action_taken": {"capture_stamp": np.array([10.0]), "data": np.array([[9.99, 0.0]])}}
    assert _physics_clock(two_columns, 9.8, dt) is None          # stores recorded before the column: by stamps


def test_a_crowded_clutter_draw_is_drawn_again_not_raised(monkeypatch):
    """Push seed 6931 drew a bowl that left the last block no room: reset raised and killed a 1,200-episode
    collection. The clutter is drawn again; every object ends apart from the others."""
    from robot_stack.sim.tasks import base
    env = make_env("push", "panda", cameras=())
    crowded = []
    draw = base._clutter_poses

    def counted(rng, used):
        try:
            return draw(rng, used)
        except base.CrowdedRegion:
            crowded.append(1)
            raise

    monkeypatch.setattr(base, "_clutter_poses", counted)
    env.reset(seed=6931)
    assert crowded                                                # the first draw was crowded
    xy = [env.scene.block_pos(c)[:2] for c in base.BLOCKS]
    assert min(np.linalg.norm(a - b) for i, a in enumerate(xy) for b in xy[i + 1:]) >= base.BLOCK_CLEARANCE - 1e-9
    assert not env.task.success(env.scene)

    def never_room(rng, used):
        raise base.CrowdedRegion("crowded")

    monkeypatch.setattr(base, "_clutter_poses", never_room)
    with pytest.raises(base.CrowdedRegion, match="no room"):       # no room at all: a clear error
        env.reset(seed=1)
