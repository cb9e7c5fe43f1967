"""A gymnasium env that drives the arm through the ROS 2 graph: the twin's or the real one.

`RosArmEnv` is `DeltaAction(TwinEnv)` (robot_stack.sim.env) as a client of the graph, so
a policy trained on one runs on the other: the same 7-D actions in [-1, 1] (TCP
translation x `max_translation` m and rotation vector x `max_rotation` rad in the base
frame, applied to the env's own set point, then the gripper mapped to [0, 1], 1 = closed)
and the same observation keys, shapes and dtypes (one uint8 HxWx3 image per camera,
`joint_pos`, `joint_vel`, `ee_pose` as xyz + xyzw, `gripper` width (1,), `task_state`).

Every command goes to the arm node (`arm/target_pose`, `arm/gripper_cmd`), whose safety
envelope clips it; the env only creates its subscriptions, publishers and clients on the
node it is given, and the caller spins that node (a background executor), because the
env blocks in `reset()` and `step()` waiting on the messages the executor delivers.

Twin: episodes start with `sim/reset`; the env mirrors `sim/state` into a local scene for
the task's success predicate, reward and `task_state` (as expert_commander does). Real
arm: episodes start with `arm/home` (when offered) and `reward_fn(obs) -> (reward,
success)` (a learned reward classifier) is required; `task_state` is then zeros of the
task's shape.

Interventions: while the operator holds `teleop/intervention`, the env publishes
nothing; such a step reports `intervention=True` and the action the operator executed,
reconstructed in the normalised action space from the observed TCP motion over the step
and the last gripper command on the graph (for learners that train on interventions, as
HIL-SERL does). When the operator lets go the env's set point restarts from the measured
pose.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from geometry_msgs.msg import PoseStamped
from gymnasium import spaces
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray
from std_srvs.srv import Trigger

from robot_stack import transforms as tf
from robot_stack.control.delta import apply_delta, delta_between
from robot_stack.ros import convert, qos
from robot_stack.ros.service_call import RESET_RESEND_AFTER, ServiceError, call_service
from robot_stack.sim.env import PHASES, observation_space
from robot_stack.robots.spec import get_robot
from robot_stack.sim.scene import Scene
from robot_stack.sim.tasks import make_task

RewardFn = Callable[[dict], tuple[float, bool]]


class RosArmEnv(gym.Env):
    """`DeltaAction(TwinEnv)` through the graph. See the module docstring."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, node, task: str, robot: str = "panda", cameras: tuple[str, ...] = ("front", "wrist"),
                 image_size: int | tuple[int, int] = 128, policy_hz: float = 10.0, max_translation: float = 0.02,
                 max_rotation: float = 0.1, reward: str = "dense", terminate_on_success: bool = True,
                 reward_fn: RewardFn | None = None, twin: bool | None = None,
                 workspace: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None,
                 camera_topic: str = "{name}/color/image_raw", stale_after: float = 1.0, timeout: float = 10.0):
        """`node`: an rclpy Node someone else spins. `twin`: None detects the twin by its `sim/reset` service
        at the first reset. `workspace`: (low, high) box for the env's set point, by default the robot's
        safety box from conf/robot (the arm node clips to its own box anyway; this only keeps the set
        point from winding up outside it). `stale_after`: seconds without a valid message on a stream
        (a camera, the arm state) before `step` raises. `timeout`: for services and fresh data at reset."""
        if reward not in ("dense", "sparse"):
            raise ValueError(f"reward must be 'dense' or 'sparse', got {reward!r}")
        if policy_hz <= 0 or max_translation <= 0 or max_rotation <= 0:
            raise ValueError("policy_hz, max_translation and max_rotation must be positive")
        if twin is False and reward_fn is None:
            raise ValueError("a real arm has no simulator state for the task's success predicate: "
                             "pass reward_fn(obs) -> (reward, success), e.g. a learned reward classifier")
        self.node = node
        self.task = make_task(task)
        self.spec = get_robot(robot)
        self.cameras = tuple(cameras)
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        self.image_size = (int(h), int(w))
        self.policy_dt = 1.0 / policy_hz
        self.max_translation = float(max_translation)
        self.max_rotation = float(max_rotation)
        self.reward_type = reward
        self.terminate_on_success = terminate_on_success
        self.reward_fn = reward_fn
        self.twin = twin
        self.stale_after = float(stale_after)
        self.timeout = float(timeout)
        self.render_mode = "rgb_array"
        if workspace is None:
            from robot_stack.config import load_config
            safety = load_config("arm_node", [f"robot={self.spec.name}"]).robot.safety
            workspace = (tuple(safety.workspace_low), tuple(safety.workspace_high))
        self.ws_low, self.ws_high = (np.asarray(v, dtype=float) for v in workspace)

        # The mirror of the twin (and, on any arm, the task's state shape).
        self.mirror = Scene(self.spec)
        self.task.reset(self.mirror, np.random.default_rng(0))
        self._task_state_shape = self.task.state(self.mirror).shape
        self.mirror.reset_to_home()

        self.observation_space = observation_space(self.cameras, (h, w), self.spec.dof, self._task_state_shape)
        self.action_space = spaces.Box(-1.0, 1.0, (7,), np.float64)

        # Latest valid message per stream: (values..., header stamp, monotonic receive time).
        self._lock = threading.Lock()
        self._ee: tuple[np.ndarray, np.ndarray, float, float] | None = None
        self._joints: tuple[np.ndarray, np.ndarray, float, float] | None = None
        self._grip: tuple[float, float, float] | None = None
        self._sim: tuple[np.ndarray, float, float] | None = None
        self._frames: dict[str, tuple[np.ndarray, float, float] | None] = {c: None for c in self.cameras}
        self._rejected: dict[str, str] = {}          # stream -> why its last bad message was dropped
        self._intervention = False
        self._intervention_seen = False              # any True since the start of the current step
        self._gripper_cmd: float | None = None       # the last gripper command on the graph, anyone's
        self.dropped_messages = 0

        self._subs = [
            node.create_subscription(PoseStamped, "arm/ee_pose", self._on_ee_pose, qos.SENSOR),
            node.create_subscription(JointState, "joint_states", self._on_joints, qos.SENSOR),
            node.create_subscription(JointState, "arm/gripper", self._on_gripper, qos.SENSOR),
            node.create_subscription(Float64MultiArray, "sim/state", self._on_sim_state, qos.SENSOR),
            node.create_subscription(Bool, "teleop/intervention", self._on_intervention, qos.RELIABLE),
            node.create_subscription(Float64, "arm/gripper_cmd", self._on_gripper_cmd, qos.RELIABLE),
        ]
        for cam in self.cameras:
            self._subs.append(node.create_subscription(
                Image, camera_topic.format(name=cam), lambda msg, cam=cam: self._on_image(cam, msg), qos.IMAGE))
        self._pub_target = node.create_publisher(PoseStamped, "arm/target_pose", qos.COMMAND)
        self._pub_gripper = node.create_publisher(Float64, "arm/gripper_cmd", qos.RELIABLE)
        self._reset_client = node.create_client(Trigger, "sim/reset")
        self._home_client = node.create_client(Trigger, "arm/home")

        self.steps = 0
        self.seed_used: int | None = None
        self.instruction = ""
        self.phase = PHASES[0]
        self.commands_sent = 0                       # target poses this env published
        self.overruns = 0                            # steps that started after their tick had passed
        self._setpoint: tuple[np.ndarray, np.ndarray] | None = None
        self._was_intervening = False
        self._next_tick = 0.0
        self._started = False
        self._closed = False

    # --- callbacks: validate, keep the latest, count what is dropped ----------------------------
    def _drop(self, stream: str, why: str) -> None:
        with self._lock:
            self.dropped_messages += 1
            self._rejected[stream] = why
        self.node.get_logger().warning(f"RosArmEnv dropped a message on {stream}: {why}", throttle_duration_sec=1.0)

    def _on_ee_pose(self, msg: PoseStamped) -> None:
        try:
            pos, quat, stamp = convert.parse_pose(msg)
        except (convert.MessageError, ValueError) as exc:
            return self._drop("arm/ee_pose", str(exc))
        with self._lock:
            self._ee = (pos, tf.normalize(quat), stamp, time.monotonic())

    def _on_joints(self, msg: JointState) -> None:
        n = self.spec.dof
        q = np.asarray(msg.position, dtype=float)
        dq = np.asarray(msg.velocity, dtype=float) if len(msg.velocity) else np.zeros(n)
        if q.shape != (n,) or dq.shape != (n,):
            return self._drop("joint_states", f"{q.size} positions and {dq.size} velocities; expected {n}")
        if not (np.isfinite(q).all() and np.isfinite(dq).all()):
            return self._drop("joint_states", "non-finite values")
        with self._lock:
            self._joints = (q, dq, convert.from_time(msg.header.stamp), time.monotonic())

    def _on_gripper(self, msg: JointState) -> None:
        if len(msg.position) < 1 or not np.isfinite(msg.position[0]):
            return self._drop("arm/gripper", f"expected one finite width, got {list(msg.position)}")
        with self._lock:
            self._grip = (float(msg.position[0]), convert.from_time(msg.header.stamp), time.monotonic())

    def _on_sim_state(self, msg: Float64MultiArray) -> None:
        state = np.asarray(msg.data, dtype=float)
        size = self.mirror.state_message_size
        if state.size != size:
            return self._drop("sim/state", f"{state.size} values; the {self.spec.name} scene needs {size} (wrong robot?)")
        if not np.isfinite(state).all():
            return self._drop("sim/state", "non-finite values")
        with self._lock:
            self._sim = (state, float(state[0]), time.monotonic())

    def _on_image(self, cam: str, msg: Image) -> None:
        try:
            rgb = np.array(convert.parse_image(msg, encodings=("rgb8", "bgr8"), shape=self.image_size))
        except (convert.MessageError, ValueError) as exc:
            return self._drop(f"camera {cam}", str(exc))
        with self._lock:
            self._frames[cam] = (rgb, convert.from_time(msg.header.stamp), time.monotonic())

    def _on_intervention(self, msg: Bool) -> None:
        with self._lock:
            self._intervention = bool(msg.data)
            self._intervention_seen |= bool(msg.data)

    def _on_gripper_cmd(self, msg: Float64) -> None:
        g = float(msg.data)
        if not (np.isfinite(g) and 0.0 <= g <= 1.0):
            return self._drop("arm/gripper_cmd", f"{g} is not in [0, 1]")
        with self._lock:
            self._gripper_cmd = g

    @property
    def intervening(self) -> bool:
        """Whether the operator holds the intervention flag now."""
        with self._lock:
            return self._intervention

    # --- gymnasium API ---------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Start an episode. Twin: `sim/reset` (the arm node picks the next seed: `seed` cannot choose it and
        is only used for the env's own RNG; info["seed"] is the episode's); real arm: `arm/home` when offered.
        Returns once fresh state (and a frame per camera) captured after the reset has arrived."""
        super().reset(seed=seed)
        self._require_open()
        self._wait(lambda: self._ee is not None, "a pose on arm/ee_pose (is arm_node running, and is the env's "
                                                 "node being spun?)")
        if self.twin is None:
            self.twin = self._reset_client.wait_for_service(timeout_sec=min(2.0, self.timeout))
        if not self.twin and self.reward_fn is None:
            raise RuntimeError("no twin (no sim/reset service, no sim/state): a real arm needs reward_fn(obs) -> "
                               "(reward, success) for the reward and success")
        # A command sent before the arm node's subscriptions match is lost: wait for them (arm/target_pose has
        # no other subscriber of ours; the arm node's gripper subscription is discovered with it).
        deadline = time.monotonic() + self.timeout
        while self._pub_target.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("RosArmEnv: nothing subscribes to arm/target_pose: is arm_node running?")
            time.sleep(0.005)
        self._pub_gripper.publish(Float64(data=0.0))          # episodes start open, as in TwinEnv
        if self.twin:
            after_stamp, after_mono = self._reset_twin(), None
        else:
            after_stamp, after_mono = None, self._home()
        self._wait_fresh(after_stamp, after_mono)
        with self._lock:
            self._setpoint = (self._ee[0].copy(), self._ee[1].copy())
            self._intervention_seen = self._intervention
        self._was_intervening = False
        self.steps = 0
        self.phase = PHASES[0]
        self._started = True
        obs = self._observation()
        self._next_tick = time.monotonic()
        return obs, self._info(self._success(obs)[1], intervention=False, executed=np.zeros(7), overrun=False)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        self._require_open()
        if not self._started:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=float)
        if action.shape != (7,):
            raise ValueError(f"action must have shape (7,): dx dy dz rx ry rz gripper in [-1, 1]; got {action.shape}")
        if not np.isfinite(action).all():
            raise ValueError(f"non-finite action {action.tolist()}: nothing sent")
        action = np.clip(action, -1.0, 1.0)
        self._check_streams()
        with self._lock:
            intervening = self._intervention
            self._intervention_seen = intervening
            start_pos, start_quat = self._ee[0].copy(), self._ee[1].copy()
        if not intervening:
            if self._was_intervening or self._setpoint is None:   # the operator moved the arm: start from there
                self._setpoint = (start_pos, start_quat)
            pos, quat = self._setpoint
            target, target_quat, gripper = apply_delta(action, pos, quat, self.max_translation, self.max_rotation)
            target = np.clip(target, self.ws_low, self.ws_high)
            self._pub_target.publish(convert.pose_msg(target, target_quat, self._now()))
            self._pub_gripper.publish(Float64(data=gripper))
            self._setpoint = (target, target_quat)
            self.commands_sent += 1

        overrun = self._sleep_to_next_tick()
        self._check_streams()
        with self._lock:
            intervention = intervening or self._intervention_seen
            gripper_cmd = self._gripper_cmd
        obs = self._observation()
        self.steps += 1
        if intervention:
            executed = self._reconstruct(start_pos, start_quat, obs["ee_pose"], gripper_cmd)
        else:
            executed = action.copy()
        self._was_intervening = intervention
        self._update_phase()
        reward, success = self._success(obs)
        terminated = bool(success and self.terminate_on_success)
        truncated = bool(self.steps >= self.task.max_steps and not terminated)
        return obs, reward, terminated, truncated, self._info(success, intervention, executed, overrun)

    def render(self) -> np.ndarray | None:
        with self._lock:
            frame = self._frames.get("front") or next((f for f in self._frames.values() if f is not None), None)
        return None if frame is None else frame[0]

    def close(self) -> None:
        """Remove the env's subscriptions, publishers and clients from the node (the node stays the caller's).
        Nothing is sent: the arm node's watchdog holds the pose."""
        if self._closed:
            return
        self._closed = True
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        for pub in (self._pub_target, self._pub_gripper):
            self.node.destroy_publisher(pub)
        for client in (self._reset_client, self._home_client):
            self.node.destroy_client(client)
        self._subs = []

    # --- helpers ---------------------------------------------------------------------------------
    def _require_open(self) -> None:
        if self._closed:
            raise RuntimeError("RosArmEnv is closed")

    def _now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _wait(self, predicate, what: str, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            with self._lock:
                ok = predicate()
            if ok:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"RosArmEnv: timed out waiting for {what}")
            time.sleep(0.005)

    def _call(self, client, name: str, resend_after: float | None = None) -> Trigger.Response:
        try:
            return call_service(client, timeout=self.timeout, resend_after=resend_after,
                                hint="is the env's node being spun?")
        except ServiceError as exc:
            raise RuntimeError(f"RosArmEnv: {exc}") from None

    def _reset_twin(self) -> float:
        """`sim/reset`, the task's parameters for the episode's seed in the mirror; returns the answer's time."""
        result = self._call(self._reset_client, "sim/reset", resend_after=RESET_RESEND_AFTER)
        answered = self._now()
        if not result.success:
            raise RuntimeError(f"RosArmEnv: sim/reset failed: {result.message}")
        try:
            self.seed_used = int(result.message.split("=")[1])
        except (IndexError, ValueError):
            raise RuntimeError(f"RosArmEnv: sim/reset answered {result.message!r}; expected 'seed=N'") from None
        self.mirror.reset_to_home()                    # as reset_episode: the same seed gives the same parameters
        self.task.reset(self.mirror, np.random.default_rng(self.seed_used))
        self.instruction = self.task.instruction(np.random.default_rng(self.seed_used))
        return answered

    def _home(self) -> float:
        """`arm/home` where offered, then wait until the arm is there; returns the monotonic time after."""
        if self._home_client.wait_for_service(timeout_sec=min(2.0, self.timeout)):
            result = self._call(self._home_client, "arm/home")
            if not result.success:
                raise RuntimeError(f"RosArmEnv: arm/home failed: {result.message}")
            home = np.asarray(self.spec.q_home, dtype=float)
            self._wait(lambda: self._joints is not None and np.abs(self._joints[0] - home).max() < 0.05
                       and np.abs(self._joints[1]).max() < 0.05, "the arm to reach home",
                       timeout=max(30.0, self.timeout))
        else:
            self.node.get_logger().warning("RosArmEnv: no arm/home service; the episode starts where the arm is")
        self.instruction = ""
        return time.monotonic()

    def _wait_fresh(self, after_stamp: float | None, after_mono: float | None) -> None:
        """Every stream the observation needs has a message captured (twin: stamped) after the reset."""
        def fresh(entry) -> bool:
            if entry is None:
                return False
            stamp, received = entry[-2], entry[-1]
            return (after_stamp is None or stamp > after_stamp) and (after_mono is None or received > after_mono)

        streams = {"arm/ee_pose": lambda: self._ee, "joint_states": lambda: self._joints,
                   "arm/gripper": lambda: self._grip}
        if self.twin:
            streams["sim/state"] = lambda: self._sim
        for cam in self.cameras:
            streams[f"camera {cam}"] = lambda cam=cam: self._frames[cam]
        for name, get in streams.items():
            self._wait(lambda get=get: fresh(get()), f"{name} after the reset"
                       + (f" (last dropped: {self._rejected[name]})" if name in self._rejected else ""))

    def _check_streams(self) -> None:
        """Raise if a camera or the arm state has gone quiet for more than `stale_after`."""
        now = time.monotonic()
        with self._lock:
            entries = {f"camera {c!r}": self._frames[c] for c in self.cameras}
            entries.update({"arm/ee_pose": self._ee, "joint_states": self._joints, "arm/gripper": self._grip})
            if self.twin and self.reward_fn is None:
                entries["sim/state"] = self._sim
            rejected = dict(self._rejected)
        for name, entry in entries.items():
            age = float("inf") if entry is None else now - entry[-1]
            if age > self.stale_after:
                why = rejected.get(name.replace("'", ""))
                raise RuntimeError(f"RosArmEnv: {name} has published no valid message for "
                                   f"{age:.2f} s (limit {self.stale_after} s)"
                                   + (f"; last dropped: {why}" if why else "")
                                   + ". Not commanding: the arm node's watchdog holds the pose.")

    def _sleep_to_next_tick(self) -> bool:
        """Wait for the next tick of the policy clock; a caller later than a whole period restarts it."""
        self._next_tick += self.policy_dt
        now = time.monotonic()
        if self._next_tick < now:
            self.overruns += 1
            self._next_tick = now + self.policy_dt
            overrun = True
        else:
            overrun = False
        while True:
            delay = self._next_tick - time.monotonic()
            if delay <= 0:
                return overrun
            time.sleep(delay)

    def _mirror(self) -> bool:
        with self._lock:
            entry = self._sim
        if not self.twin or entry is None:
            return False
        self.mirror.load_state_message(entry[0])
        return True

    def _observation(self) -> dict[str, Any]:
        mirrored = self._mirror()
        with self._lock:
            obs: dict[str, Any] = {c: self._frames[c][0] for c in self.cameras}
            pos, quat = self._ee[0], self._ee[1]
            obs.update(joint_pos=self._joints[0].copy(), joint_vel=self._joints[1].copy(),
                       ee_pose=np.concatenate((pos, quat)), gripper=np.array([self._grip[0]], dtype=np.float64))
        obs["task_state"] = (np.asarray(self.task.state(self.mirror), dtype=np.float64) if mirrored
                             else np.zeros(self._task_state_shape))
        return obs

    def _success(self, obs: dict) -> tuple[float, bool]:
        if self.reward_fn is not None:
            reward, success = self.reward_fn(obs)
            return float(reward), bool(success)
        success = bool(self.task.success(self.mirror))
        reward = self.task.dense_reward(self.mirror) if self.reward_type == "dense" else float(success)
        return float(reward), success

    def _update_phase(self) -> None:
        if not self.twin:
            return
        touching = self.mirror.touching(self.mirror.gripper_geoms, self.task.manipulated_geoms(self.mirror))
        if touching:
            self.phase = "in_contact"
        elif self.phase == "in_contact":
            self.phase = "post_contact"

    def _reconstruct(self, start_pos, start_quat, end_pose, gripper_cmd: float | None) -> np.ndarray:
        """The operator's step in the normalised action space, from the observed TCP motion."""
        grip = gripper_cmd if gripper_cmd is not None else 0.0
        return delta_between(start_pos, start_quat, end_pose[:3], end_pose[3:], grip, self.max_translation,
                             self.max_rotation)

    def _info(self, success: bool, intervention: bool, executed: np.ndarray, overrun: bool) -> dict[str, Any]:
        with self._lock:
            dropped = self.dropped_messages
        info = {"success": bool(success), "is_success": bool(success), "instruction": self.instruction,
                "task_params": self.task.params.as_dict() if self.twin else {}, "steps": self.steps,
                "seed": self.seed_used, "intervention": bool(intervention), "executed_action": executed,
                "dropped_messages": dropped, "overrun": overrun}
        if self.twin:
            info["contact_phase"] = self.phase
        return info
