"""`robot-stack replay`: play a recorded episode back in the twin and measure how well it tracks.

`actions` mode resets the twin to the episode's task and seed (recorded on the twin) and
hands the commanded TCP targets and gripper commands, at their recorded times, to the
arm node's own `Controller` driving the twin driver, with the arm node's configuration: the
same interpolation, reach filter, box, contact and speed limits, gripper force cap and
operational-space law the recorded arm ran under, on simulated time. It reports the
outcome against the recorded one and the final object positions. `joints` mode replays
the recorded joint positions as joint targets, which works for episodes from a real arm
too. Both report joint and TCP tracking error against the recorded states, sampled at the
recorded stamps, and can render the recorded and replayed front views side by side.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from robot_stack.control.controller import Controller
from robot_stack.control.safety import SafetyLimits, SafetyViolation
from robot_stack.robots.spec import get_robot
from robot_stack.sim.arm import SimArm
from robot_stack.sim.camera import CameraRenderer
from robot_stack.sim.env import reset_episode
from robot_stack.sim.scene import BLOCKS, Scene
from robot_stack.sim.tasks import make_task
from robot_stack.video import write_mp4


def _latest(stamps: np.ndarray, values: np.ndarray, t: float, default):
    i = int(np.searchsorted(stamps, t, side="right")) - 1
    return values[i] if i >= 0 else default


def _object_positions(scene: Scene) -> dict[str, list[float]]:
    out = {f"{c}_block": scene.block_pos(c).round(4).tolist() for c in BLOCKS}
    out["bowl"] = scene.body_pose("bowl")[0].round(4).tolist()
    out["drawer"] = [round(scene.drawer_opening, 4)]
    return out


def replay_episode(store_path: str, episode: int, mode: str = "actions", video: str | None = None,
                   json_path: str | None = None) -> dict:
    from robot_stack.data import EpisodeStore, StoreError

    if mode not in ("actions", "joints"):
        raise ValueError(f"mode must be 'actions' or 'joints', got {mode!r}")
    with EpisodeStore.open(store_path) as store:
        meta = store.metadata(episode)
        index = int(episode) % store.num_episodes   # -1 is the last episode; errors name its stored index
        # checked before any read or simulation: a store recorded without them (another recorder, a
        # hand-made store) is bad input, reported as one line naming it, not a KeyError deep in the loop
        needed = ("joint_pos", "ee_pose") + (("action_pose",) if mode == "actions" else ())
        missing = [s for s in needed if s not in store.streams]
        if missing:
            raise StoreError(f"{store_path}: episode {episode}: no {', '.join(missing)} stream(s), which "
                             f"`replay --mode {mode}` needs (the store has {', '.join(sorted(store.streams))})")
        wanted = [s for s in ("joint_pos", "ee_pose", "action_pose", "action_gripper", "action_taken", "front_rgb",
                              "gripper")
                  if s in store.streams]
        ep = store.read_episode(episode, wanted)
        for name in needed:
            rows = ep[name]["data"]
            if not len(rows) or (name != "joint_pos" and rows.shape[1:] != (7,)):
                raise StoreError(f"{store_path}: episode {episode}: stream {name!r} has {len(rows)} rows of shape "
                                 f"{rows.shape[1:]}; replay needs at least one row (poses: 7 values)")
    robot, task_name = meta.get("robot", "panda"), meta.get("task")
    for key, value, ok in (("robot", robot, isinstance(robot, str)),
                           ("task", task_name, task_name is None or isinstance(task_name, str)),
                           ("seed", meta.get("seed"), meta.get("seed") is None or (
                               isinstance(meta.get("seed"), int) and not isinstance(meta.get("seed"), bool)))):
        if not ok:   # hand-edited or foreign metadata: name it rather than fail inside the twin
            raise StoreError(f"{store_path}: episode {episode}, key 'meta/episodes/{index:06d}'"
                             f": {key} {value!r} is not a valid {key}")
    if mode == "actions" and (meta.get("seed") is None or task_name is None):
        raise ValueError(f"episode {episode} has no twin seed in its metadata; replay it with --mode joints")
    q_rec, q_t = ep["joint_pos"]["data"], ep["joint_pos"]["capture_stamp"]
    ee_rec, ee_t = ep["ee_pose"]["data"], ep["ee_pose"]["capture_stamp"]
    t0 = float(q_t[0])
    clock = SimClock(t0)
    if mode == "actions":
        taken_counts = meta.get("stream_counts", {}).get("action_taken", {})
        if taken_counts.get("lost_in_transport", 0) or taken_counts.get("dropped", 0):
            ep.pop("action_taken", None)        # a row missing would replay a target late: use the stamps instead
        commands = _commands(ep)
        # A recorder under load can take its first state after the first commands (1.1 s after, once): the replay
        # starts at whichever came first, the arm at rest where the reset left it, as the recorded arm was.
        if commands:
            clock.t = min(t0, commands[0][0])
        to_replay = _physics_clock(ep, clock.t, 1.0 / get_robot(robot).control_hz)
        if to_replay is not None:       # the live stamps put on the twin's physics time: see _physics_clock
            commands = [(float(to_replay(t)), kind, value, stamp) for t, kind, value, stamp in commands]
            q_t, ee_t = to_replay(q_t), to_replay(ee_t)
            if "front_rgb" in ep:
                ep["front_rgb"] = {**ep["front_rgb"], "capture_stamp": to_replay(ep["front_rgb"]["capture_stamp"])}
            if meta.get("final_sim_state"):
                meta = {**meta, "final_sim_state": [float(to_replay(meta["final_sim_state"][0])),
                                                    *meta["final_sim_state"][1:]]}
        driver, controller = _twin_arm(robot, task_name, int(meta["seed"]), clock)
        scene, task = driver.scene, driver.task
    else:
        scene = Scene(robot)
        arm = SimArm(scene)
        task = make_task(task_name) if task_name else None
        if meta.get("seed") is not None and task is not None:
            reset_episode(scene, arm, task, np.random.default_rng(int(meta["seed"])))
        scene.set_q(q_rec[0])
        arm.hold()
    start = clock.t
    renderer = CameraRenderer(scene, *ep["front_rgb"]["data"].shape[1:3]) if video and "front_rgb" in ep else None
    frames, joint_err, tcp_err = [], [], []
    check_times = iter(np.concatenate((ee_t, [np.inf])))
    next_check = next(check_times)
    frame_times = iter(np.concatenate((ep["front_rgb"]["capture_stamp"], [np.inf])) if renderer else [np.inf])
    next_frame = next(frame_times)
    # The recorded final state is a snapshot at the episode's end (its stamp leads the vector), often while the arm
    # still moves (a lift ends as the block passes its height): the replay's objects are compared at that instant.
    final_state = meta.get("final_sim_state")
    final_at = float(final_state[0]) if final_state else None
    objects_at_end: dict | None = None

    def measure() -> None:
        """Compare with the recorded state at every recorded stamp passed; render the frames due."""
        nonlocal next_check, next_frame, objects_at_end
        if objects_at_end is None and final_at is not None and clock.t >= final_at:
            objects_at_end = _object_positions(scene)
        while next_check <= clock.t:
            q_ref = _latest(q_t, q_rec, next_check, q_rec[0])
            joint_err.append(float(np.abs(scene.q - q_ref).max()))
            tcp_err.append(float(np.linalg.norm(scene.ee_pose()[0] - _latest(ee_t, ee_rec, next_check, ee_rec[0])[:3])))
            next_check = next(check_times)
        while renderer is not None and next_frame <= clock.t:
            recorded = _latest(ep["front_rgb"]["capture_stamp"], ep["front_rgb"]["data"], next_frame, None)
            frames.append(np.concatenate((recorded, renderer.render("front")), axis=1))
            next_frame = next(frame_times)

    if mode == "actions":
        rejected = _play_commands(commands, driver, controller, clock, measure, until=final_at)
    else:
        rejected = 0
        for t_cmd, command in _joint_schedule(ep):
            arm.command_joints(command[0], command[1], max(arm.dt, t_cmd[1] - t_cmd[0]))
            while clock.t < t_cmd[1]:
                arm.step()
                clock.t += arm.dt
                measure()
    t_sim = clock.t
    success = bool(task.success(scene)) if task is not None else None
    report = {
        "store": str(store_path), "episode": episode, "mode": mode, "robot": robot, "task": task_name,
        "seed": meta.get("seed"), "recorded_success": meta.get("success"), "replayed_success": success,
        "same_outcome": success == meta.get("success") if meta.get("success") is not None else None,
        "joint_error_max_rad": max(joint_err, default=float("nan")),
        "joint_error_mean_rad": float(np.mean(joint_err)) if joint_err else float("nan"),
        "tcp_error_max_m": max(tcp_err, default=float("nan")),
        "tcp_error_mean_m": float(np.mean(tcp_err)) if tcp_err else float("nan"),
        "final_objects": _object_positions(scene),
    }
    if mode == "actions":
        report["rejected_commands"] = rejected
        # which timing the commands were handed over at: the ticks the live arm took them, or (rows of
        # arm/commands_taken lost or absent) their stamps, a tick or more off under load
        report["commands_at"] = "ticks_taken" if "action_taken" in ep else "stamps"
    if final_state:
        recorded = _objects_from_state(robot, final_state)
        replayed = objects_at_end or report["final_objects"]
        report["final_object_error_m"] = max(float(np.linalg.norm(np.subtract(replayed[k], v)))
                                             for k, v in recorded.items())
    if renderer is not None:
        renderer.close()
        report["video"] = str(write_mp4(video, frames, fps=max(1.0, len(frames) / max(t_sim - start, 1e-3))))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=2))
    return report


def _physics_clock(ep: dict, start: float, dt: float):
    """Live stamps -> replay clock times through the twin's physics time, or None without it.

    The arm node stamps with the wall clock, but a loop running late lets the twin's physics lag those stamps by
    tens of milliseconds (and catch up); a replay that stepped physics at the stamps handed commands over at other
    physics steps than the live arm took them (objects 1.7 cm off after a lift). Each `action_taken` row carries
    the physics time after its tick's step; (stamp, physics - dt) pairs map the state read at a stamp to its
    physics step, piecewise linearly, at one second per second beyond the rows. The replay's physics starts at
    `start` from the reset, as the live arm rested there until its first command."""
    taken = ep.get("action_taken")
    if taken is None or taken["data"].ndim != 2 or taken["data"].shape[1] < 3:
        return None
    ok = np.isfinite(taken["data"][:, 2])
    if not ok.any():
        return None
    w = np.asarray(taken["capture_stamp"], dtype=float)[ok]
    p = taken["data"][ok, 2].astype(float) - dt

    def live_physics(t):
        t = np.asarray(t, dtype=float)
        return np.where(t < w[0], p[0] + (t - w[0]), np.where(t > w[-1], p[-1] + (t - w[-1]), np.interp(t, w, p)))
    p0 = float(live_physics(start))
    return lambda t: start + (live_physics(t) - p0)


class SimClock:
    """Simulated time in the recorded stamps' time base: the controller's clocks and the driver's stamps in a replay."""

    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _twin_arm(robot: str, task: str, seed: int, clock: SimClock):
    """The twin driver reset to the episode, and the arm node's controller with the arm node's configuration."""
    from omegaconf import OmegaConf

    from robot_stack.config import load_config
    from robot_stack.drivers.mujoco import MujocoArmConfig, MujocoArmDriver

    cfg = load_config("arm_node", [f"robot={robot}"])
    limits = SafetyLimits(**OmegaConf.to_container(cfg.robot.safety))
    driver = MujocoArmDriver(MujocoArmConfig(robot=robot, realtime=False, task=task, seed=seed,
                                             max_gripper_force=limits.max_gripper_force), clock=clock)
    driver.connect()
    controller = Controller(driver.spec, limits, command_period=float(cfg.default_command_period),
                            chunk_blend=float(cfg.chunk_blend), clock=clock, monotonic=clock)
    return driver, controller


def _play_commands(commands: list, driver, controller: Controller, clock: SimClock, measure,
                   until: float | None = None) -> int:
    """Run control periods from the clock's start until a second after the last command (and at least `until`),
    handing each command to the controller at the first period at or after its time, as the arm node takes them;
    returns how many the controller refused (the recorded arm refused them too)."""
    rejected, k = 0, 0
    end = max(commands[-1][0] + 1.0 if commands else clock.t, until if until is not None else -np.inf)
    while clock.t < end:
        while k < len(commands) and commands[k][0] <= clock.t:
            _, kind, value, stamp = commands[k]
            try:
                if kind == "pose":
                    controller.set_target(value[:3], value[3:], stamp)
                else:
                    controller.set_gripper(value)
            except SafetyViolation:
                rejected += 1
            k += 1
        controller.tick(driver.read_state()).send(driver)
        clock.t += controller.dt
        measure()
    return rejected


def _commands(ep: dict) -> list[tuple[float, str, object, float]]:
    """(time, "pose" | "gripper", value, stamp) in the order the arm took them.

    `action_taken` (the arm node's arm/commands_taken) says at which tick the live arm took each target and what the
    gripper command was then: a target that arrived late under load is handed over late, and one the arm never took
    alone (a newer one came in the same tick) is not handed over. Before its first row (the recorder can hear the
    arm node's topics later than the teleop's) and without it (older episodes, the controller process), target
    poses go at their stamps and gripper commands at their arrival (the message has no stamp)."""
    if "action_pose" not in ep:
        raise ValueError("the episode has no recorded actions (action_pose)")
    poses = [(float(t), np.asarray(p, dtype=float)) for t, p in zip(ep["action_pose"]["capture_stamp"],
                                                                    ep["action_pose"]["data"])]
    grippers = [(float(t), float(v[0])) for t, v in zip(ep["action_gripper"]["capture_stamp"],
                                                         ep["action_gripper"]["data"])] if "action_gripper" in ep else []
    taken = [(float(t), float(row[0]), float(row[1])) for t, row in
             zip(ep["action_taken"]["capture_stamp"], ep["action_taken"]["data"])] if "action_taken" in ep else []
    log_from = taken[0][0] if taken else np.inf
    first_taken_stamp = min((stamp for _, stamp, _ in taken if np.isfinite(stamp)), default=np.inf)
    out = [(t, "pose", p, t) for t, p in poses if t < first_taken_stamp]
    out += [(t, "gripper", g, t) for t, g in grippers if t < log_from]
    by_stamp = dict(poses)
    for t, stamp, g in taken:
        if stamp in by_stamp:
            out.append((t, "pose", by_stamp[stamp], stamp))
        out.append((t, "gripper", g, t))
    return sorted(out, key=lambda c: (c[0], c[1] == "gripper"))


def _objects_from_state(robot: str, state: list[float]) -> dict[str, list[float]]:
    """Object positions in a /sim/state vector (stamp, time, qpos, mocap) as recorded."""
    scene = Scene(robot)
    scene.load_state_message(state)
    return _object_positions(scene)


def _joint_schedule(ep: dict) -> list:
    """(time interval, joint command) pairs in recorded order."""
    t = ep["joint_pos"]["capture_stamp"]
    q = ep["joint_pos"]["data"]
    width = ep["gripper"]["data"][:, 0] if "gripper" in ep else np.zeros(len(t))
    width_t = ep["gripper"]["capture_stamp"] if "gripper" in ep else t
    opening = max(float(width.max()), 1e-3)
    ends = np.append(t[1:], t[-1] + 0.5)
    return [((t[i], ends[i]), (q[i], float(1.0 - _latest(width_t, width, t[i], opening) / opening)))
            for i in range(len(t))]
