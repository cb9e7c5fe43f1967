"""teleop_node: an operator's device turned into arm targets, the intervention flag and episode events.

A thread reads the device at `rate` (30 Hz) and integrates its velocity or delta commands
(or moves toward its absolute targets) into an absolute TCP target that starts from the
latest `arm/ee_pose` when the operator takes over. Each cycle's motion is clipped to
`max_linear_speed` / `max_angular_speed`, and the target is kept within `max_lead` of the
measured TCP, so a target pushed against the workspace box does not wind up. Targets go
to `arm/target_pose` (PoseStamped in base, stamped now) and the gripper to
`arm/gripper_cmd` only while the intervention flag is held, or always with
`always_command` (teleop as the sole commander); `teleop/intervention` carries the flag
every cycle. Button events call the recorder's Trigger services (`recorder/start`,
`recorder/stop`, `recorder/success`, `recorder/fail`) from a worker thread; a missing
recorder costs a logged warning after `service_timeout`, never a stalled loop.

With the scripted device and `episodes` > 0 the node runs that many expert episodes on
the twin by itself: the worker calls the arm node's `sim/reset` before each one and
restarts the device with the seed it answers, so a collection run needs no other driver;
each episode's instruction goes out on `task/instruction` before its start event.

The arm node still owns safety: it clips whatever arrives here to its envelope.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from std_msgs.msg import Bool, Float64, Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import MultiDOFJointTrajectory

from robot_stack import transforms as tf
from robot_stack.drivers.teleop import EVENTS, FRAMES, DriverError, TeleopCommand, TeleopDevice, make_device
from robot_stack.nodes.common import COMMAND_SOURCE_PRIORITY, declare_any, raise_thread_priority, run_node, startup_only
from robot_stack.ros import convert, qos
from robot_stack.ros.service_call import RESET_RESEND_AFTER, ServiceError, call_service

ANSWER_TIMEOUT = 30.0       # s: how long a service that exists may take to answer (the recorder's commit)


def _as_bool(value) -> bool:
    if isinstance(value, str):
        if value.strip().lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise ValueError(f"not a boolean: {value!r}")
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


@dataclass
class TeleopConfig:
    device: str = "keyboard"            # keyboard | spacemouse | gamepad | scripted
    rate: float = 30.0                  # Hz: device reads and published targets
    frame: str = "base"                 # the frame device twists are expressed in: base | ee
    max_linear_speed: float = 0.25      # m/s: per-cycle clip of the target's motion (and full stick deflection)
    max_angular_speed: float = 1.0      # rad/s
    always_command: bool = False        # command the arm even without the intervention flag (sole commander)
    max_lead: float = 0.05              # m: how far the target may run ahead of the measured TCP
    service_timeout: float = 1.0        # s: wait for a recorder service before warning
    task: str = "reach"                 # scripted device: the task whose expert is replayed
    robot: str = "panda"                # scripted device: the arm node's robot
    seed: int = 0                       # scripted device: the arm node's episode seed
    episodes: int = 0                   # scripted device: run this many, each after a sim/reset (0: one, no reset)
    realtime_priority: int = COMMAND_SOURCE_PRIORITY   # SCHED_FIFO of the device loop where permitted (0: off)

    def __post_init__(self):
        self.rate, self.max_linear_speed = float(self.rate), float(self.max_linear_speed)
        self.max_angular_speed, self.max_lead = float(self.max_angular_speed), float(self.max_lead)
        self.service_timeout, self.seed, self.episodes = float(self.service_timeout), int(self.seed), int(self.episodes)
        self.always_command = _as_bool(self.always_command)
        for key in ("rate", "max_linear_speed", "max_angular_speed", "max_lead"):
            if not getattr(self, key) > 0:
                raise ValueError(f"teleop_node: {key} must be positive, got {getattr(self, key)}")
        if self.frame not in FRAMES:
            raise ValueError(f"teleop_node: frame must be one of {FRAMES}, got {self.frame!r}")


PARAMS = tuple(TeleopConfig.__dataclass_fields__)
POSE_MAX_AGE = 0.5                      # s: an older measured pose (arm node gone) is no place to start from
RESET_TIMEOUT = 10.0                    # s: the arm node's sim/reset waits up to 5 s for its control loop


class TeleopNode(Node):
    def __init__(self, device: TeleopDevice | None = None, start_loop: bool = True, **node_kwargs):
        """`device` replaces the one the `device` parameter names; `start_loop=False` leaves `step()` to the caller."""
        super().__init__("teleop_node", **node_kwargs)
        try:
            self._setup(device)
        except Exception:
            self.destroy_node()                     # a half-built node must not linger in the context
            raise
        self._running = True
        self._worker = threading.Thread(target=self._event_worker, name="teleop_events", daemon=True)
        self._worker.start()
        self._thread = threading.Thread(target=self._loop, name="teleop", daemon=True)
        if start_loop:
            self._thread.start()
        self.get_logger().info(f"teleop_node up: {self.device.name} at {self.cfg.rate:g} Hz, frame {self.cfg.frame}, "
                               f"{'sole commander' if self.cfg.always_command else 'commanding while intervening'}")

    def _setup(self, device: TeleopDevice | None) -> None:
        values = {name: declare_any(self, name) for name in PARAMS}
        startup_only(self)
        self.cfg = TeleopConfig(**{k: v for k, v in values.items() if v not in ("", None)})
        self.dt = 1.0 / self.cfg.rate
        self.device = device or make_device(self.cfg.device, frame=self.cfg.frame, task=self.cfg.task,
                                            robot=self.cfg.robot, seed=self.cfg.seed,
                                            max_linear_speed=self.cfg.max_linear_speed,
                                            max_angular_speed=self.cfg.max_angular_speed)

        self._lock = threading.Lock()
        self._ee: tuple[np.ndarray, np.ndarray, float] | None = None   # latest measured TCP pose, received at
        self._last_gripper = 0.0                                    # latest gripper command seen, anyone's
        self.target: tuple[np.ndarray, np.ndarray] | None = None    # the integrated target while commanding
        self.gripper = 0.0
        self.intervention = False
        self.commanding = False
        self.last_command: TeleopCommand | None = None
        self.event_log: deque[tuple[str, bool, str]] = deque(maxlen=100)   # (event, delivered, message)

        self.pub_target = self.create_publisher(PoseStamped, "arm/target_pose", qos.COMMAND)
        self.pub_gripper = self.create_publisher(Float64, "arm/gripper_cmd", qos.RELIABLE)
        # An empty chunk when the operator lets go (or a scripted episode ends): the stream ended on purpose
        self.pub_chunk = self.create_publisher(MultiDOFJointTrajectory, "arm/action_chunk", qos.COMMAND)
        self.pub_intervention = self.create_publisher(Bool, "teleop/intervention", qos.RELIABLE)
        self.create_subscription(PoseStamped, "arm/ee_pose", self._on_ee_pose, qos.SENSOR)
        self.create_subscription(Float64, "arm/gripper_cmd", self._on_gripper_cmd, qos.RELIABLE)
        self.pub_instruction = None
        self._instruction = ""
        if getattr(self.device, "wants_sim_state", False):          # the scripted device
            self.create_subscription(Float64MultiArray, "sim/state", lambda m: self.device.observe(m.data), qos.SENSOR)
            self.pub_instruction = self.create_publisher(String, "task/instruction", qos.LATCHED)
        self._recorder_clients = {event: self.create_client(Trigger, f"recorder/{event}") for event in EVENTS}
        self._events: queue.Queue[str | None] = queue.Queue()
        self.episodes_done = 0
        self._reset_client = None
        if self.cfg.episodes > 0:
            if not hasattr(self.device, "restart"):
                raise ValueError(f"teleop_node: episodes is for the scripted device, not {self.device.name}")
            self._reset_client = self.create_client(Trigger, "sim/reset")
            self._events.put("reset")

        try:
            self.device.connect()
        except DriverError as exc:
            raise RuntimeError(f"teleop device {self.device.name} could not connect: {exc}") from exc
        if self._reset_client is not None:
            self.device.restart(self.cfg.seed, not_before=float("inf"))   # nothing to replay until the first reset
        if self.device.usage:
            self.get_logger().info(self.device.usage)

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- ROS callbacks ------------------------------------------------------------------------
    def _on_ee_pose(self, msg: PoseStamped) -> None:
        try:
            pos, quat, _ = convert.parse_pose(msg)
        except convert.MessageError as exc:
            self.get_logger().error(f"ignored ee pose: {exc}", throttle_duration_sec=1.0)
            return
        with self._lock:
            self._ee = (pos, quat, time.monotonic())

    def _on_gripper_cmd(self, msg: Float64) -> None:
        if np.isfinite(msg.data) and 0.0 <= msg.data <= 1.0:
            with self._lock:
                self._last_gripper = float(msg.data)

    # --- the loop ------------------------------------------------------------------------------
    def _loop(self) -> None:
        raise_thread_priority(self.get_logger(), int(self.cfg.realtime_priority), "teleop")
        next_tick = time.monotonic()
        while self._running and self.context.ok():
            try:
                command = self.device.read()
            except Exception as exc:                # DriverError, or a device bug: never a dead loop
                self.get_logger().error(f"teleop device {self.device.name}: {type(exc).__name__}: {exc}; "
                                        "not commanding", throttle_duration_sec=1.0)
                command = TeleopCommand()
            try:
                self.step(command)
            except Exception:                       # publishing after the context went down: a shutdown
                if self.context.ok() and self._running:
                    raise
                break
            next_tick += self.dt
            delay = next_tick - time.monotonic()
            if delay < -self.dt:                    # far behind (a stall): restart the schedule
                next_tick, delay = time.monotonic(), 0.0
            time.sleep(max(0.0, delay))

    def step(self, command: TeleopCommand) -> None:
        """One cycle: events out, flag out, and the target and gripper while commanding."""
        self.last_command = command
        instruction = getattr(self.device, "instruction", "")
        if self.pub_instruction is not None and instruction and instruction != self._instruction:
            self._instruction = instruction                     # announced before this episode's start event
            self.pub_instruction.publish(String(data=instruction))
        for event in command.events:
            self._events.put(event)
            if event in ("success", "fail") and self._reset_client is not None:
                self.episodes_done += 1
                if self.episodes_done < self.cfg.episodes:
                    self._events.put("reset")
        self.intervention = command.intervention
        self.pub_intervention.publish(Bool(data=bool(command.intervention)))
        with self._lock:
            ee, last_gripper = self._ee, self._last_gripper
        wanted = command.intervention or self.cfg.always_command
        active = wanted and ee is not None and time.monotonic() - ee[2] < POSE_MAX_AGE
        if wanted and not active:
            self.get_logger().warning("no fresh arm/ee_pose: not commanding", throttle_duration_sec=2.0)
        if not active:
            if self.commanding:                     # released on purpose: the arm holds with no stall alarm
                self.pub_chunk.publish(convert.end_of_stream_msg(self.now()))
            self.commanding, self.target = False, None
            return
        if self.target is None:                     # taking over: start from where the arm is
            self.target = (ee[0].copy(), ee[1].copy())
            self.gripper = last_gripper
        self.target = self.integrate(self.target, command, ee[0])
        if command.gripper is not None:
            self.gripper = float(command.gripper)
        if command.gripper_toggle:
            self.gripper = 0.0 if self.gripper >= 0.5 else 1.0
        self.commanding = True
        self.pub_target.publish(convert.pose_msg(self.target[0], self.target[1], self.now()))
        self.pub_gripper.publish(Float64(data=self.gripper))

    def integrate(self, target: tuple[np.ndarray, np.ndarray], command: TeleopCommand,
                  measured_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The next target: this cycle's motion, clipped to the speed limits and the lead over the measured TCP."""
        pos, quat = target
        max_step, max_turn = self.cfg.max_linear_speed * self.dt, self.cfg.max_angular_speed * self.dt
        if command.target is not None:
            goal_pos, goal_quat = command.target
            step = _clip_norm(goal_pos - pos, max_step)
            if float(np.dot(goal_quat, quat)) < 0:
                goal_quat = -goal_quat
            angle = tf.angle_between(goal_quat, quat)
            new_quat = goal_quat if angle <= max_turn else tf.slerp(quat, goal_quat, max_turn / angle)
        else:
            scale = self.dt if command.mode == "velocity" else 1.0
            linear, angular = command.twist[:3] * scale, command.twist[3:] * scale
            if command.frame == "ee":               # expressed in the TCP frame: rotate into base
                rot = tf.quat_to_mat(quat)
                linear, angular = rot @ linear, rot @ angular
            step = _clip_norm(linear, max_step)
            new_quat = tf.quat_mul(tf.axis_angle_to_quat(_clip_norm(angular, max_turn)), quat)
        new_pos = measured_pos + _clip_norm(pos + step - measured_pos, self.cfg.max_lead)
        return new_pos, tf.normalize(np.asarray(new_quat, dtype=float))

    # --- episode events --------------------------------------------------------------------------
    def _event_worker(self) -> None:
        while True:
            event = self._events.get()
            if event is None:
                return
            ok, message = self._reset() if event == "reset" else self._call(event)
            if not ok and self._running:
                self.get_logger().warning(f"episode event {event!r} not delivered: {message}")
            self.event_log.append((event, ok, message))

    def _call(self, event: str) -> tuple[bool, str]:
        return self._trigger(self._recorder_clients[event], self.cfg.service_timeout, "is the recorder running?")

    def _reset(self) -> tuple[bool, str]:
        """A new scripted episode: the arm node resets the twin, the device restarts with its seed."""
        ok, message = self._trigger(self._reset_client, max(self.cfg.service_timeout, RESET_TIMEOUT),
                                    "is arm_node running with the mujoco driver?", resend_after=RESET_RESEND_AFTER)
        if ok:
            answered = self.now()
            try:
                seed = int(message.split("=")[1])
            except (IndexError, ValueError):
                return False, f"sim/reset answered {message!r}; expected 'seed=N'"
            self.device.restart(seed, not_before=answered)
            self.get_logger().info(f"scripted episode {self.episodes_done + 1}/{self.cfg.episodes}: seed {seed}")
        return ok, message

    def _trigger(self, client, timeout: float, hint: str, resend_after: float | None = None) -> tuple[bool, str]:
        """Call a Trigger service from the worker thread (the executor completes the future); a present service
        may take a while to answer (the recorder's commit)."""
        try:
            response = call_service(client, timeout=timeout, answer_timeout=max(timeout, ANSWER_TIMEOUT),
                                    resend_after=resend_after, keep_waiting=lambda: self._running, hint=hint)
        except ServiceError as exc:
            return False, str(exc)
        return bool(response.success), response.message

    def close(self) -> None:
        self._running = False
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self._events.put(None)
        self._worker.join(timeout=2.0)
        try:
            self.device.disconnect()
        except DriverError as exc:
            self.get_logger().error(f"while disconnecting the teleop device: {exc}")


def _clip_norm(v: np.ndarray, limit: float) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v if n <= limit else v * (limit / n)


def main(argv: list[str] | None = None) -> int:
    return run_node(TeleopNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
