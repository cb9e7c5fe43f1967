"""`replay --mode actions` runs the recorded commands through the arm node's Controller on the twin: an episode
recorded by that Controller (on simulated time, no ROS) replays to the same path and final objects, also when the
recorder's first state came a second after the first command (as it did under load)."""
import numpy as np
import pytest
from omegaconf import OmegaConf

from robot_stack.config import load_config
from robot_stack.control.controller import Controller
from robot_stack.control.safety import SafetyLimits
from robot_stack.data import EpisodeStore
from robot_stack.drivers.mujoco import MujocoArmConfig, MujocoArmDriver
from robot_stack.sim.replay import SimClock, replay_episode

T0 = 1000.0


def record(path, robot="ur5e", task="lift", seed=3, late_start=0.0):
    """Stream targets at 10 Hz toward a point 6 cm away and back through the arm node's Controller on the twin, and
    store what a recorder would: the targets, the states at 100 Hz from `late_start` s after the first target, and
    the final simulator state."""
    cfg = load_config("arm_node", [f"robot={robot}"])
    limits = SafetyLimits(**OmegaConf.to_container(cfg.robot.safety))
    clock = SimClock(T0)
    driver = MujocoArmDriver(MujocoArmConfig(robot=robot, realtime=False, task=task, seed=seed,
                                             max_gripper_force=limits.max_gripper_force), clock=clock)
    driver.connect()
    c = Controller(driver.spec, limits, command_period=float(cfg.default_command_period), clock=clock, monotonic=clock)
    start, quat = driver.scene.ee_pose()
    targets, states = [], []
    per_state = round(0.01 / c.dt)
    for k in range(round(2.5 / c.dt)):
        if k % round(0.1 / c.dt) == 0 and clock.t < T0 + 2.0:
            pos = start + np.array([0.06, -0.04, -0.03]) * np.sin(np.pi * (clock.t - T0) / 2.0)
            c.set_target(pos, quat, clock.t)
            targets.append((clock.t, np.concatenate((pos, quat))))
        state = driver.read_state()
        if k % per_state == 0 and clock.t >= T0 + late_start:
            states.append((clock.t, state.q.copy(), np.concatenate((state.ee_pos, state.ee_quat))))
        c.tick(state).send(driver)
        clock.t += c.dt
    final = [clock.t, *driver.sim_state()]
    with EpisodeStore.create(path, durable=False) as store:
        w = store.begin_episode(task=task, robot=robot, operator="scripted", seed=seed)
        w.append_many("joint_pos", np.array([q for _, q, _ in states]), np.array([t for t, _, _ in states]))
        w.append_many("ee_pose", np.array([p for _, _, p in states]), np.array([t for t, _, _ in states]))
        w.append_many("action_pose", np.array([p for _, p in targets]), np.array([t for t, _ in targets]))
        w.commit(success=True, final_sim_state=final)
    return path


@pytest.mark.parametrize("late_start", [0.0, 1.0])
def test_an_episode_recorded_through_the_controller_replays_to_the_same_path_and_objects(tmp_path, late_start):
    report = replay_episode(str(record(tmp_path / "store", late_start=late_start)), 0, "actions")
    assert report["rejected_commands"] == 0
    assert report["tcp_error_max_m"] < 1e-4 and report["joint_error_max_rad"] < 1e-3
    assert report["final_object_error_m"] < 1e-3
