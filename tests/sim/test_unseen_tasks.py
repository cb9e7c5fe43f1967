"""The unseen tasks (issue 30, RT-Trajectory): motions no training task produces, kept out of training data."""
import numpy as np
import pytest

from robot_stack.data import EpisodeStore
from robot_stack.sim.camera import intrinsics, extrinsics, project
from robot_stack.sim.env import make_env
from robot_stack.sim.expert_data import generate
from robot_stack.sim.rollout import run_expert
from robot_stack.sim.scene import BLOCK_HALF, Scene
from robot_stack.sim.tasks import TASKS, TRAINING_TASKS, UNSEEN_TASKS, make_task
from robot_stack.sim.tasks.place_at import SPOT_RADIUS
from robot_stack.sim.tasks.push import PushExpert

SEEDS = (2000, 2001, 2002)      # none of the seeds the demo tables use (0-99)
TRAINING = {"reach", "push", "pick_place", "stack", "lift", "drawer_open", "drawer_close"}


def _goal(env) -> np.ndarray:
    """Where the task wants its block: the spot, or push_around's zone."""
    return env.scene.target_zone_pos() if env.task.name == "push_around" else env.scene.spot_pos()


def _settle(env, steps: int = 300) -> None:
    """Lift the arm clear, open, and let the objects come to rest."""
    pos, quat = env.scene.ee_pose()
    env.arm.command_pose([pos[0], pos[1], 0.3], quat, 0.0, 0.2)
    env.arm.step(steps)


# --- the split -------------------------------------------------------------------------------------------------
def test_training_and_unseen_tasks_are_disjoint_and_registered():
    assert set(TRAINING_TASKS) == TRAINING
    assert len(UNSEEN_TASKS) >= 4 and "place_at" in UNSEEN_TASKS
    assert not set(TRAINING_TASKS) & set(UNSEEN_TASKS)
    assert set(TASKS) == set(TRAINING_TASKS) | set(UNSEEN_TASKS)
    for name in UNSEEN_TASKS:
        task = make_task(name)
        assert len(task.instructions) >= 3
        assert all("{target}" in t and ("{object}" in t or "{color}" in t) for t in task.instructions)


def test_a_generated_training_store_holds_only_training_tasks(tmp_path):
    report = generate("pick_place", "panda", 1, seed=2000, out=str(tmp_path / "train.zarr"), image_size=32,
                      progress=False)
    with EpisodeStore.open(report["store"]) as store:
        names = {store.root.attrs["task"]} | {store.metadata(k)["task"] for k in range(store.num_episodes)}
    assert store.num_episodes == 1
    assert names == {"pick_place"} and names <= set(TRAINING_TASKS) and not names & set(UNSEEN_TASKS)


# --- every unseen task -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", UNSEEN_TASKS)
def test_resets_vary_with_the_seed_stay_reachable_and_visible_and_start_unsolved(task):
    env = make_env(task, "panda", cameras=())
    scene = env.scene
    k, cam = intrinsics(scene, "front", 128, 128), extrinsics(scene, "front")
    states = []
    for seed in SEEDS:
        obs, info = env.reset(seed=seed)
        states.append(obs["task_state"])
        assert not info["success"] and not env.task.success(scene)
        assert env.task.dense_reward(scene) < 1.0
        block = scene.block_pos(env.task.params.color)
        goal = _goal(env)
        assert np.linalg.norm(block[:2] - goal[:2]) > 0.1          # a real carry or push, not a nudge
        for xy in (block[:2], goal[:2]):
            for z in (BLOCK_HALF, 0.25):                           # grasp and carry heights inside the reach
                p = np.array([*xy, z])
                np.testing.assert_allclose(env.arm.clip_position(p), p, err_msg=f"{task} seed {seed}")
            uv, depth = project(np.array([*xy, 0.0]), k, cam)
            assert depth[0] > 0 and np.all((uv[0] > 4) & (uv[0] < 124)), f"{task} seed {seed}: {uv}"
    again = env.reset(seed=SEEDS[0])[0]["task_state"]
    np.testing.assert_allclose(again, states[0])
    assert not np.allclose(states[0], states[1]) and not np.allclose(states[1], states[2])


@pytest.mark.parametrize("task", UNSEEN_TASKS)
def test_expert_succeeds_on_most_seeds(task):
    env = make_env(task, "panda", cameras=(), terminate_on_success=False)
    outcomes = [run_expert(env, seed).success for seed in SEEDS]
    assert sum(outcomes) >= 2, outcomes


# --- place_at ------------------------------------------------------------------------------------------------------
def test_place_at_spot_is_a_visible_disc_on_the_table_and_not_the_bowl():
    env = make_env("place_at", "panda", cameras=())
    scene = env.scene
    for seed in SEEDS:
        env.reset(seed=seed)
        spot, bowl = scene.spot_pos(), scene.body_pose("bowl")[0]
        assert abs(spot[2]) < 1e-9                                  # on the table top
        assert np.linalg.norm(spot[:2] - bowl[:2]) > 0.1           # nowhere near the bowl
    # the front camera sees it: the disc's pixels (off its dark centre dot) are white, the table is not
    image = env.render_camera("front", (128, 128))
    uv, _ = project(scene.spot_pos() + [0.018, 0.0, 0.0], intrinsics(scene, "front", 128, 128),
                    extrinsics(scene, "front"))
    u, v = np.round(uv[0]).astype(int)
    assert image[v, u].min() > 200, image[v, u]
    # and the training tasks never show it: it stays parked under the table top
    for name in TRAINING_TASKS:
        train = make_env(name, "panda", cameras=())
        train.reset(seed=SEEDS[0])
        assert train.scene.spot_pos()[2] < -0.1


def test_place_at_success_needs_the_block_within_three_centimetres_and_released():
    env = make_env("place_at", "panda", cameras=())
    env.reset(seed=SEEDS[0])
    scene, color = env.scene, env.task.params.color
    spot = scene.spot_pos()
    outcomes = {}
    for offset in (0.036, 0.02):
        scene.set_free_body(f"{color}_block", [spot[0] + offset, spot[1], BLOCK_HALF])
        _settle(env)
        outcomes[offset] = env.task.success(scene)
        assert abs(np.linalg.norm(scene.block_pos(color)[:2] - spot[:2]) - offset) < 0.005
    assert outcomes == {0.036: False, 0.02: True}
    assert env.task.dense_reward(scene) == 1.0
    # on the spot but still in the closed fingers is not placed
    block = scene.block_pos(color)
    quat = scene.ee_pose()[1]
    for z, grip in ((0.1, 0.0), (block[2], 0.0), (block[2], 1.0)):
        env.arm.command_pose([block[0], block[1], z], quat, grip, 0.3)
        env.arm.step(400)
    assert scene.touching(scene.gripper_geoms, scene.body_geoms(f"{color}_block"))
    assert np.linalg.norm(scene.block_pos(color)[:2] - spot[:2]) < SPOT_RADIUS
    assert not env.task.success(scene)


# --- the tasks that forbid disturbing the bowl ---------------------------------------------------------------------
@pytest.mark.parametrize("task", ["arc_over_bowl", "push_around"])
def test_a_moved_bowl_fails_the_task(task):
    env = make_env(task, "panda", cameras=())
    env.reset(seed=SEEDS[0])
    scene, color = env.scene, env.task.params.color
    goal = _goal(env)
    scene.set_free_body(f"{color}_block", [goal[0], goal[1], BLOCK_HALF])
    _settle(env)
    assert env.task.success(scene)
    bowl = scene.body_pose("bowl")[0]
    scene.set_free_body("bowl", [bowl[0] + 0.03, bowl[1], bowl[2]])
    _settle(env, 50)
    assert not env.task.success(scene)


def test_push_around_cannot_be_done_by_the_push_tasks_straight_push():
    env = make_env("push_around", "panda", cameras=())
    env.reset(seed=SEEDS[0])
    straight = PushExpert(env.task.params.color, env.policy_dt, env.scene.ee_pose())
    for _ in range(env.task.max_steps):
        env.step(straight.act(env.scene))
    assert not env.task.success(env.scene)
    assert env.task._bowl_moved(env.scene) > 0.02          # it went through the bowl


def test_arc_over_bowl_expert_carries_the_block_high_over_the_bowl():
    env = make_env("arc_over_bowl", "panda", cameras=(), terminate_on_success=False)
    ep = run_expert(env, SEEDS[0])
    assert ep.success
    bowl = np.array(ep.params["bowl_start"])
    near_bowl = np.linalg.norm(ep.ee_path[:, :2] - bowl, axis=1) < 0.03
    assert near_bowl.any() and ep.ee_path[near_bowl, 2].max() > 0.2     # pick_place carries at 16 cm


def test_out_of_bowl_block_starts_inside_the_bowl():
    env = make_env("out_of_bowl", "panda", cameras=())
    for seed in SEEDS:
        env.reset(seed=seed)
        block = env.scene.block_pos(env.task.params.color)
        bowl = env.scene.body_pose("bowl")[0]
        assert np.linalg.norm(block[:2] - bowl[:2]) < 0.02 and block[2] > BLOCK_HALF + 0.002


# --- the scene stays what it was for everything else ---------------------------------------------------------------
def test_a_state_message_from_before_the_spot_still_loads():
    source = Scene("panda")
    source.set_spot([0.5, 0.0, 0.0])
    message = np.array([3.0, *source.sim_state()])
    mirror = Scene("panda")
    assert mirror.load_state_message(message) == 3.0
    np.testing.assert_allclose(mirror.spot_pos(), [0.5, 0.0, 0.0])
    mirror.load_state_message(message[:-3])                     # recorded before the scene had a spot
    np.testing.assert_allclose(mirror.spot_pos(), mirror.spot_parked)
    np.testing.assert_allclose(mirror.target_zone_pos(), source.target_zone_pos())
    with pytest.raises(ValueError):
        mirror.load_state_message(message[:-4])
