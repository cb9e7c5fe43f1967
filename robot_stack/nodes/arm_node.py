"""arm_node: the one place an arm is commanded, and the owner of safety.

A control thread runs at the arm's rate (1 kHz Panda, 500 Hz UR5e) over any ArmDriver:
it interpolates the latest target (or plays the latest action chunk at its step times,
skipping steps already past), passes every set point through the safety envelope, and
holds pose when commands stop (watchdog), on e-stop, or when disabled. ROS callbacks
only validate and hand over targets; they never touch the driver.

Action chunks are taken, size-checked, parsed and validated on a thread of their own
(`arm_chunks`): a chunk is as large as its sender makes it, and the control thread only
ever picks up a checked ActionChunk. The set point a tick sends is the one the arm can
follow with its joints clear of their margins (`ReachFilter`), inside a box drawn in by
any measured excursion of the TCP (`SafetyEnvelope.observe_tcp`).
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque

import mujoco
import numpy as np
from omegaconf import OmegaConf
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, WrenchStamped
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import MultiDOFJointTrajectory

from robot_stack import transforms as tf
from robot_stack.control.interpolation import JointInterpolator, PoseInterpolator
from robot_stack.control.loop_stats import LoopStats, RecentSamples
from robot_stack.control.safety import SafetyEnvelope, SafetyLimits, SafetyViolation, Watchdog
from robot_stack.drivers import registry
from robot_stack.drivers.base import ArmDriver, DriverError, SimulatedArm
from robot_stack.nodes.common import STOPPING, node_config, raise_thread_priority, run_node, take_all
from robot_stack.ros import convert, qos
from robot_stack.robots.spec import get_robot
from robot_stack.sim.scene import Scene
from robot_stack.control.chunks import blend_chunks, check_chunk, chunk_target_at
from robot_stack.control.reach import ReachFilter
from robot_stack.types import ActionChunk, RobotState

ARM_PARAMS = ("robot", "driver", "robot_ip", "task", "seed", "realtime", "chunk_blend")
REFERENCE_CLEARANCE = 0.03      # rad the reach filter's reference keeps beyond the joint margin
BURST_WINDOW = 1.0              # s: `reject_burst` rejected commands within this is a burst (WARN on /diagnostics)


def make_arm_driver(cfg, clock) -> ArmDriver:
    """The driver `cfg.driver` from the driver registry, which imports only that driver's package."""
    return registry.make_arm_driver(cfg.driver, cfg, clock=clock)


class ArmNode(Node):
    def __init__(self, driver: ArmDriver | None = None, start_loop: bool = True, **node_kwargs):
        """`start_loop=False` leaves ticking to the caller (tests step `control_step()` themselves)."""
        super().__init__("arm_node", **node_kwargs)
        self.cfg = node_config(self, "arm_node", ARM_PARAMS)
        self.spec = get_robot(self.cfg.robot.name)
        limits = SafetyLimits(**OmegaConf.to_container(self.cfg.robot.safety))
        self.safety = SafetyEnvelope(limits, self.spec.q_min, self.spec.q_max)
        self.limits = limits
        self.watchdog = Watchdog(limits.watchdog_timeout)
        self.chunk_blend = float(self.cfg.chunk_blend)
        if not 0.0 <= self.chunk_blend < 1.0:
            raise ValueError(f"chunk_blend must be in [0, 1), got {self.chunk_blend}")
        self.dt = 1.0 / self.spec.control_hz
        self.stats = LoopStats(self.dt)
        self.kinematics = Scene(self.spec)          # MuJoCo as the kinematics library, any driver
        self._limit_jac = np.zeros((6, self.kinematics.model.nv))      # the joint-margin check's buffers
        self._limit_damping = 1e-6 * np.eye(6)
        self._joint_mid = (self.safety.q_min + self.safety.q_max) / 2
        # The reference configuration keeps a little more than the margin, so the measured joints, a tracking
        # error behind it, stay out of the margin too.
        keep = limits.joint_margin + REFERENCE_CLEARANCE
        self.reach = ReachFilter(self.kinematics, self.safety.q_min + keep, self.safety.q_max - keep,
                                 np.array(self.spec.dq_max), self.dt,
                                 elbow=limits.elbow_joint if limits.elbow_joint >= 0 else None,
                                 elbow_clearance=limits.elbow_clearance, clearance=REFERENCE_CLEARANCE)
        self.joint_names = [f"{self.spec.name}_joint{i + 1}" for i in range(self.spec.dof)]

        self.driver = driver or make_arm_driver(self.cfg, clock=self.now)
        try:
            self.driver.connect()
        except DriverError as exc:
            raise RuntimeError(f"arm driver {self.cfg.driver} could not connect: {exc}") from exc

        self._lock = threading.Lock()
        self._target: tuple[np.ndarray, np.ndarray, float] | None = None   # newest pose target, not yet taken
        self._chunk: ActionChunk | None = None
        self._gripper = 0.0
        self._estop = False
        self._enabled = True
        self._go_home = False
        self._reset_request: threading.Event | None = None
        self._last_target_time: float | None = None
        self._command_period = float(self.cfg.default_command_period)
        # Commands in the current stream (accepted with no watchdog hold between them): a hold after two or
        # more is a stream that stopped mid-episode, an error on /diagnostics until commands resume or the
        # episode is ended (reset, home, disable, e-stop).
        self._stream = 0
        self._stall_since: float | None = None
        self._stalls_unreported = 0
        self._reject_times: deque[float] = deque(maxlen=max(1, int(self.cfg.reject_burst)))
        self._bursts_unreported = 0
        self._last_rejection = ""
        self._reject_logged: dict[str, tuple[float, int]] = {}    # per kind: when last logged, how many since
        self.state: RobotState | None = None
        self.setpoint: tuple[np.ndarray, np.ndarray] | None = None
        self.mode = "hold"

        self.pose_interp = PoseInterpolator(self.dt, limits.max_linear_speed, limits.max_angular_speed)
        self.joint_interp = JointInterpolator(self.dt, np.array(self.spec.dq_max) * 0.5)

        self.pub_joints = self.create_publisher(JointState, "joint_states", qos.SENSOR)
        self.pub_pose = self.create_publisher(PoseStamped, "arm/ee_pose", qos.SENSOR)
        self.pub_wrench = self.create_publisher(WrenchStamped, "arm/wrench", qos.SENSOR)
        self.pub_gripper = self.create_publisher(JointState, "arm/gripper", qos.SENSOR)
        self.pub_diag = self.create_publisher(DiagnosticArray, "diagnostics", 10)
        self.pub_sim = self.create_publisher(Float64MultiArray, "sim/state", qos.SENSOR) \
            if isinstance(self.driver, SimulatedArm) else None
        # Commands are taken by the control thread itself, every tick, from subscriptions on a
        # companion node that no executor spins: a command waits for the next tick, not for
        # the executor's turn under the GIL (p99 command path 6-7 ms through the executor).
        # Each companion is named by a rule of its own (cli_args): launchers start the process with
        # `-r __node:=NAME`, which renames every node in it, and three nodes named arm_node would share one
        # rosout publisher and answer each other's parameter services.
        self._command_node = rclpy.create_node(f"{self.get_name()}_commands", namespace=self.get_namespace(),
                                               context=self.context,
                                               cli_args=["--ros-args", "-r", f"__node:={self.get_name()}_commands"])
        self._command_subs = [
            (self._command_node.create_subscription(PoseStamped, "arm/target_pose", lambda m: None, qos.COMMAND),
             self._on_target),
        ]
        # Chunks arrive serialized on a node of their own, spun by its own thread: the size is checked before
        # the message is turned into Python objects (a 10,000-point chunk took 0.6 s to take and parse, in C
        # code that holds the GIL), then parsing and validation run there, never in the control thread.
        self._chunk_bytes_limit = convert.chunk_bytes_limit(limits.max_chunk_steps)
        self._chunk_node = rclpy.create_node(f"{self.get_name()}_chunks", namespace=self.get_namespace(),
                                             context=self.context,
                                             cli_args=["--ros-args", "-r", f"__node:={self.get_name()}_chunks"])
        self._chunk_node.create_subscription(MultiDOFJointTrajectory, "arm/action_chunk", self._on_chunk_bytes,
                                             qos.COMMAND, raw=True)
        self._chunk_executor = SingleThreadedExecutor(context=self.context)
        self._chunk_executor.add_node(self._chunk_node)
        self.create_subscription(Float64, "arm/gripper_cmd", self._on_gripper, qos.RELIABLE)
        self.create_service(Trigger, "arm/stop", self._srv_stop)
        # Releasing the e-stop, homing and enabling move the arm: behind a lock when `protected_services` is set
        # (nodes/service_lock.py: an unlock parameter carries the token); arm/stop is never locked.
        from robot_stack.nodes.service_lock import ServiceLock
        self._service_lock = ServiceLock(self)
        self.create_service(Trigger, "arm/recover", self._srv_recover)
        self.create_service(Trigger, "arm/home", self._srv_home)
        self.create_service(SetBool, "arm/enable", self._srv_enable)
        # chunk_blend changes at run time: the policy server sets it to the active checkpoint's deployment setting
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if isinstance(self.driver, SimulatedArm):
            self.create_service(Trigger, "sim/reset", self._srv_sim_reset)
            # The twin announces each episode (task, seed), so recordings can be replayed exactly.
            self.pub_episode = self.create_publisher(String, "sim/episode", qos.LATCHED)
            self._announce_episode()
        self.command_age = float("inf")
        self.command_latency = RecentSamples(2000)
        self.chunk_latency = RecentSamples(20000)     # observation capture -> chunk received
        self.tick_cpu = RecentSamples(5000)           # CPU seconds of one control step: how much of the period it uses
        self._publish_every = max(1, round(self.spec.control_hz / self.cfg.publish_rate))
        # Diagnostics from a timer on the executor's thread, not the control thread: their percentiles took
        # 1.5 ms, a late tick every second when computed inside the loop.
        self.create_timer(1.0 / self.cfg.diagnostics_rate, self._publish_diagnostics)
        self._running = True
        self._ticks = 0
        # The state goes out from a thread of its own (ros2_control's RealtimePublisher pattern): building and
        # publishing five messages took 0.3-0.6 ms, which every tenth control tick paid. The control thread only
        # queues the state in `_outbox`, oldest first. A publisher that falls behind under load then catches up
        # instead of dropping states a recorder needs (with a one-slot outbox, the collection test once recorded 160
        # joint states beside 86 frames, under the 2.5 per frame it asks);
        # past a tenth of a second of backlog the oldest go.
        self._outbox: deque[tuple[RobotState, np.ndarray | None]] = deque(maxlen=max(1, round(self.cfg.publish_rate / 10)))
        self._outbox_ready = threading.Condition()
        self.states_published = 0
        self._publisher = threading.Thread(target=self._publish_loop, name="arm_publish", daemon=True)
        self._publisher.start()
        self._chunk_thread = threading.Thread(target=self._chunk_loop, name="arm_chunks", daemon=True)
        self._chunk_thread.start()
        self._thread = threading.Thread(target=self._control_loop, name="arm_control", daemon=True)
        if start_loop:
            self._thread.start()
        self.get_logger().info(f"arm_node up: {self.spec.name} via {self.cfg.driver} at {self.spec.control_hz} Hz")

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- ROS callbacks: validate and hand over ----------------------------------------------
    def _reject(self, what: str, exc: Exception) -> None:
        self._last_rejection = f"{what}: {exc}"
        self.safety.events.add("rejected", self._last_rejection)
        now = time.monotonic()
        # Throttled here, not with the logger's throttle_duration_sec: rclpy finds the calling line through inspect
        # on every throttled call (~180 us), which a 1 kHz burst of bad targets paid in the control thread.
        last, unlogged = self._reject_logged.get(what, (-np.inf, 0))
        if now - last >= 1.0:
            more = f" ({unlogged} more {what} rejections since the last message)" if unlogged else ""
            self.get_logger().error(f"rejected {what}: {exc}{more}")
            self._reject_logged[what] = (now, 0)
        else:
            self._reject_logged[what] = (last, unlogged + 1)
        self._reject_times.append(now)
        if len(self._reject_times) == self._reject_times.maxlen and now - self._reject_times[0] <= BURST_WINDOW:
            self._bursts_unreported += 1

    def _accepted(self, now: float) -> None:
        """A command was accepted (call with the lock held): the watchdog is fed and the stream goes on."""
        self.watchdog.feed(now)
        self._stream += 1
        self._stall_since = None

    def _end_stream(self) -> None:
        """The episode was ended on purpose (reset, home, disable, e-stop): a hold now is no stall."""
        self._stream = 0
        self._stall_since = None

    def _on_target(self, msg: PoseStamped) -> None:
        try:
            pos, quat, stamp = convert.parse_pose(msg)
            age = self.now() - stamp
            if age > self.limits.max_command_age:
                raise convert.MessageError(f"stale stamp ({age:.3f} s old, limit {self.limits.max_command_age} s)")
            if -age > self.limits.max_command_age:
                raise convert.MessageError(f"stamp {-age:.3f} s in the future (limit {self.limits.max_command_age} s): "
                                           f"the sender's clock is wrong")
            pos, quat, _ = self.safety.check_target(pos, quat, self._gripper)
        except (convert.MessageError, SafetyViolation) as exc:
            return self._reject("target pose", exc)
        now = time.monotonic()
        with self._lock:
            if self._last_target_time is not None:
                gap = now - self._last_target_time
                self._command_period = float(np.clip(0.7 * self._command_period + 0.3 * gap, 1 / 60, 0.25))
            self._last_target_time = now
            self._target = (pos, quat, stamp)
            self._chunk = None
            self._accepted(now)

    def _on_chunk_bytes(self, data: bytes) -> None:
        """A serialized chunk (the `arm_chunks` thread): refused by size before it is deserialized."""
        if len(data) > self._chunk_bytes_limit:
            return self._reject("action chunk", convert.MessageError(
                f"message of {len(data)} bytes, over the {self._chunk_bytes_limit} bytes of a "
                f"{self.limits.max_chunk_steps}-step chunk (robot.safety.max_chunk_steps)"))
        try:
            msg = deserialize_message(data, MultiDOFJointTrajectory)
        except Exception as exc:                    # whatever the middleware raises for bytes it cannot read
            return self._reject("action chunk", convert.MessageError(f"undecodable message: {exc}"))
        self._on_chunk(msg)

    def _on_chunk(self, msg: MultiDOFJointTrajectory) -> None:
        """Parse, check and hand over a chunk; runs off the control thread, which only picks the result up."""
        try:
            chunk = convert.parse_chunk(msg, max_points=self.limits.max_chunk_steps)
            chunk = check_chunk(chunk, self.safety, self.now(), self.limits.chunk_horizon)
        except (convert.MessageError, SafetyViolation) as exc:
            return self._reject("action chunk", exc)
        self.chunk_latency.append(self.now() - convert.from_time(msg.header.stamp))
        with self._lock:
            playing = self._chunk
        if playing is not None and self.chunk_blend > 0:
            chunk = blend_chunks(playing, chunk, self.chunk_blend)
        with self._lock:
            self._chunk = chunk
            self._target = None
            self._accepted(time.monotonic())

    def _on_gripper(self, msg: Float64) -> None:
        g = float(msg.data)
        if not np.isfinite(g) or not 0.0 <= g <= 1.0:
            return self._reject("gripper command", ValueError(f"{g} is not in [0, 1]"))
        with self._lock:
            self._gripper = g

    def _on_set_parameters(self, params):
        """chunk_blend may change while running (validated); the rest of the config is read at start-up only. Never
        raises: an exception here would take the node down."""
        from rcl_interfaces.msg import SetParametersResult

        blend = None
        for p in params:
            if p.name == "chunk_blend":
                value = p.value
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
                    return SetParametersResult(successful=False, reason=f"chunk_blend must be a number in [0, 1), "
                                                                        f"got {value!r}")
                blend = float(value)
            elif p.name in ARM_PARAMS or p.name == "overrides":
                return SetParametersResult(successful=False, reason=f"{p.name} is read at start-up only")
        if blend is not None:
            self.chunk_blend = blend
        return SetParametersResult(successful=True)

    def _srv_stop(self, request, response):
        with self._lock:
            self._estop = True
            self._target, self._chunk = None, None
            self._end_stream()
        self.safety.events.add("estop")
        response.success, response.message = True, "e-stop latched; call arm/recover to release"
        return response

    def _srv_recover(self, request, response):
        if not self._service_lock.allow("arm/recover", response):
            return response
        try:
            self.driver.recover()
        except DriverError as exc:
            response.success, response.message = False, str(exc)
            return response
        with self._lock:
            self._estop = False
            self._target, self._chunk = None, None
            self._end_stream()
            self.setpoint = None                    # re-seed from the measured pose
        response.success, response.message = True, "recovered; holding pose"
        return response

    def _srv_home(self, request, response):
        if not self._service_lock.allow("arm/home", response):
            return response
        with self._lock:
            if self._estop:
                response.success, response.message = False, "e-stop latched"
                return response
            self._go_home = True
            self._end_stream()
        response.success, response.message = True, "moving to home"
        return response

    def _srv_enable(self, request, response):
        # Disabling holds the arm, as arm/stop does: never locked; enabling lets it move again.
        if request.data and not self._service_lock.allow("arm/enable", response):
            return response
        with self._lock:
            self._enabled = bool(request.data)
            self._target, self._chunk = None, None
            self._end_stream()
        response.success, response.message = True, "enabled" if request.data else "disabled: holding pose"
        return response

    def _srv_sim_reset(self, request, response):
        done = threading.Event()
        with self._lock:
            self._reset_request = done
        if not done.wait(timeout=5.0):
            response.success, response.message = False, "the control loop did not reset within 5 s"
            return response
        response.success, response.message = True, f"seed={self.driver.config.seed}"
        return response

    def _announce_episode(self) -> None:
        c = self.driver.config
        self.pub_episode.publish(String(data=json.dumps({"robot": c.robot, "task": c.task, "seed": int(c.seed)})))

    # --- control thread ------------------------------------------------------------------
    def _control_loop(self) -> None:
        raise_thread_priority(self.get_logger(), self.cfg.realtime_priority, "control")
        while self._running and self.context.ok():
            try:
                self.control_step()
            except Exception:                       # publishing after the context went down: a shutdown
                if self.context.ok():
                    raise
                break

    def _chunk_loop(self) -> None:
        while self._running and self.context.ok():
            try:
                self._chunk_executor.spin_once(timeout_sec=0.1)
            except (ExternalShutdownException, rclpy.executors.ShutdownException):
                break
            except Exception:                       # the context went down under the executor: a shutdown
                if self.context.ok() and self._running:
                    raise
                break

    def take_commands(self) -> None:
        """Take every waiting target pose (newest last) and hand it over; chunks come ready from `arm_chunks`."""
        for sub, handler in self._command_subs:
            for msg in take_all(sub):
                handler(msg)

    def control_step(self) -> None:
        """One control period: read, take commands, decide the set point, command, publish."""
        cpu = time.thread_time()
        try:
            state = self.driver.read_state()
            self.take_commands()
            self.stats.tick(time.monotonic())
            self.state = state
            self._control_tick(state)
        except DriverError as exc:
            self.safety.events.add("driver_error", str(exc))
            self.get_logger().error(f"driver error: {exc}; holding", throttle_duration_sec=1.0)
            with self._lock:
                self._estop = True
            time.sleep(self.dt)
            return
        self._ticks += 1
        if self._ticks % self._publish_every == 0:
            sim = self.driver.sim_state() if self.pub_sim is not None else None   # this tick's scene, taken now
            with self._outbox_ready:
                self._outbox.append((state, sim))
                self._outbox_ready.notify()
        self.tick_cpu.append(time.thread_time() - cpu)

    def _control_tick(self, state: RobotState) -> None:
        now = time.monotonic()
        with self._lock:
            if self._reset_request is not None:
                self.driver.reset_next()
                self._announce_episode()
                self.stats = LoopStats(self.dt)         # a reset is not a control-loop overrun
                self._reset_request.set()
                self._reset_request = None
                self._target, self._chunk = None, None
                self._end_stream()
                self.setpoint = None
                self.mode = "hold"
                return
            if self.setpoint is None:
                self._seed_setpoint(state)
            target, self._target = self._target, None
            chunk, gripper = self._chunk, self._gripper
            estop, enabled, go_home = self._estop, self._enabled, self._go_home
            self.command_age = self.watchdog.age(now)
            if go_home:
                self._go_home = False
        if estop or not enabled:
            self._hold(state, "estop" if estop else "disabled")
            return self.driver.command_pose(*self.setpoint, gripper)
        if go_home or self.mode == "home":
            return self._home_tick(state, go_home, gripper)
        # Each new goal starts from the set point actually sent, which the reach filter or the box may have held
        # short of where the interpolator had got to.
        if target is not None:
            self.command_latency.append(self.now() - target[2])       # header stamp to the tick that uses it
            self.pose_interp.reset(*self.setpoint)
            self.pose_interp.set_goal(target[0], target[1], self._command_period)
            self.mode = "target"
        elif chunk is not None:
            t = self.now()
            pos, quat, gripper = chunk_target_at(chunk, t)
            # The chunk's gripper command is the gripper command until another comes: a hold that follows (the
            # watchdog, an e-stop) keeps the grasp instead of going back to an older arm/gripper_cmd.
            self._gripper = gripper
            self.pose_interp.reset(*self.setpoint)
            self.pose_interp.set_goal(pos, quat, self.dt)
            self.mode = "chunk"
            if t <= chunk.times[-1]:
                self.watchdog.feed(now)          # a chunk with steps ahead is a fresh command; past its end it is not
        if self.mode in ("target", "chunk") and self.watchdog.expired(now):
            self._watchdog_hold(now, chunk)
        self.safety.observe_tcp(state.ee_pos, self.dt)
        if self.mode == "hold":
            self.pose_interp.reset(*self.setpoint)
            pos, quat = self.setpoint
        else:
            pos, quat = self.pose_interp.step()
            pos = self.safety.limit_contact(self.safety.clip_to_box(pos), state.ee_pos, state.wrench[:3])
            pos, quat = self.reach.step(pos, quat, state.q)
            pos, quat = self.safety.limit_step(self.setpoint[0], self.setpoint[1], pos, quat, self.dt)
            # The measured arm can still be inside a margin (its configuration differs from the reference's for the
            # same pose, or it was pushed): no set point step takes it deeper. The reference is not put back: it
            # goes on drawing that joint out (its bound follows the measured joint), and the set point follows it
            # once a step no longer pushes deeper; put back, it held the arm there for good.
            if self._pushes_into_joint_limit(state, pos, quat):
                self.safety.events.add("joint_margin_hold")
                pos, quat = self.setpoint
        self.setpoint = (pos, quat)
        self.driver.command_pose(pos, quat, gripper)

    def _seed_setpoint(self, state: RobotState) -> None:
        """Set point, interpolator and reach reference at the measured pose: no motion."""
        self.setpoint = self.reach.reset(state.q, state.ee_pos, state.ee_quat)
        self.pose_interp.reset(*self.setpoint)

    def _watchdog_hold(self, now: float, chunk: ActionChunk | None) -> None:
        """Commands stopped: hold where the set point is. A chunk past its end is over, not paused."""
        self.mode = "hold"
        with self._lock:
            if chunk is not None and self._chunk is chunk:
                self._chunk = None
            stalled = self._stream >= 2 and self._stall_since is None
            self._stream = 0
            if stalled:
                self._stall_since = now
                self._stalls_unreported += 1
        self.safety.events.add("watchdog_hold", f"no command for {self.command_age:.3f} s")
        if stalled:
            self.safety.events.add("command_stall", f"commands stopped mid-episode; holding after "
                                                    f"{self.command_age:.3f} s")
            if STOPPING.is_set():       # the graph is stopping and the commander went first: no fault
                self.get_logger().info(f"commands ended with the shutdown ({self.command_age:.3f} s); holding pose")
            else:
                self.get_logger().error(f"commands stopped mid-episode: no command for {self.command_age:.3f} s "
                                        f"(watchdog {self.limits.watchdog_timeout} s); holding pose")

    def _hold(self, state: RobotState, reason: str) -> None:
        if self.mode != reason:
            self.mode = reason
            self.pose_interp.reset(*self.setpoint)

    def _home_tick(self, state: RobotState, start: bool, gripper: float) -> None:
        if start or self.mode != "home":
            self.joint_interp.reset(state.q)
            self.joint_interp.set_goal(self.safety.clip_joints(self.spec.q_home), 0.0)
            self.mode = "home"
        q = self.joint_interp.step()
        self.driver.command_joints(q, gripper)
        if not self.joint_interp.moving and np.abs(state.q - q).max() < 0.01:
            self.mode = "hold"
            self._seed_setpoint(state)


    def _pushes_into_joint_limit(self, state: RobotState, pos, quat) -> bool:
        near = self.safety.joints_near_limits(state.q)
        if near.size == 0:
            return False
        kin, jac = self.kinematics, self._limit_jac
        kin.data.qpos[kin.arm_qpos] = state.q
        mujoco.mj_kinematics(kin.model, kin.data)
        mujoco.mj_comPos(kin.model, kin.data)
        mujoco.mj_jacSite(kin.model, kin.data, jac[:3], jac[3:], kin.tcp_site)
        jac = jac[:, kin.arm_dof]
        twist = np.empty(6)
        twist[:3] = pos - self.setpoint[0]
        twist[3:] = tf.rotation_error(quat, self.setpoint[1])
        # The joint motion of the step: damped least squares, J^T (J J^T + l^2 I)^-1 twist, a 6x6 solve where
        # pinv's SVD was a sixth of the loop's CPU near a limit; the damping keeps it bounded near singularities.
        dq = jac.T @ np.linalg.solve(jac @ jac.T + self._limit_damping, twist)
        mid = self._joint_mid[near]
        return bool(np.any(dq[near] * np.sign(state.q[near] - mid) > 1e-9))

    # --- publishing ------------------------------------------------------------------------
    def _publish_loop(self) -> None:
        # Above the cameras and the policy server, below the control loop: the twin cameras wait for this
        # state, so its delay is capture latency.
        raise_thread_priority(self.get_logger(), max(0, int(self.cfg.realtime_priority) - 10), "state publishing")
        while self._running and self.context.ok():
            with self._outbox_ready:
                self._outbox_ready.wait_for(lambda: self._outbox or not self._running, timeout=0.1)
                items = list(self._outbox)
                self._outbox.clear()
            try:
                for item in items:
                    self._publish_state(*item)
            except Exception:                       # publishing after the context went down: a shutdown
                if self.context.ok():
                    raise
                break

    def _publish_state(self, s: RobotState, sim: np.ndarray | None) -> None:
        if sim is not None:                         # first: the twin cameras wait for it
            msg = Float64MultiArray()
            msg.data = np.concatenate(([s.stamp], sim)).tolist()
            self.pub_sim.publish(msg)
        self.pub_joints.publish(convert.joint_state_msg(self.joint_names, s.q, s.dq, s.tau, s.stamp))
        self.pub_pose.publish(convert.pose_msg(s.ee_pos, s.ee_quat, s.stamp))
        self.pub_wrench.publish(convert.wrench_msg(s.wrench, s.stamp))
        self.pub_gripper.publish(convert.joint_state_msg(["gripper"], [s.gripper_width], [0.0], None, s.stamp))
        self.states_published += 1

    def _publish_diagnostics(self) -> None:
        stats = self.stats.summary()
        for name, samples, scale, unit in (("chunk_latency", self.chunk_latency, 1e3, "ms"),
                                           ("command_latency", self.command_latency, 1e3, "ms"),
                                           ("tick_cpu", self.tick_cpu, 1e6, "us")):
            if len(samples):
                p50, p99 = samples.percentiles([50, 99], scale)
                stats[f"{name}_p50_{unit}"], stats[f"{name}_p99_{unit}"] = p50, p99
        stats["chunks_received"] = len(self.chunk_latency)
        level, message = self._health()
        values = {**{k: f"{v:.3f}" for k, v in stats.items()}, "command_age_s": f"{self.command_age:.3f}",
                  "mode": self.mode, "estop": str(self._estop), "enabled": str(self._enabled),
                  "max_tcp_excursion_mm": f"{1000 * self.safety.max_excursion:.1f}",
                  # a copy taken in one C call: the control and chunk threads add event kinds meanwhile
                  **{f"safety.{k}": str(v) for k, v in list(self.safety.events.counts.items())},
                  "last_safety_event": self.safety.events.last}
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: arm", hardware_id=self.spec.name,
                                  message=message, values=[KeyValue(key=k, value=v) for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(msg)

    def _health(self) -> tuple[bytes, str]:
        """The level and message for /diagnostics: ERROR on e-stop or a stall (commands stopped mid-episode) now
        or since the last report, WARN on a burst of rejected commands since the last report, else OK."""
        stalls, self._stalls_unreported = self._stalls_unreported, 0
        bursts, self._bursts_unreported = self._bursts_unreported, 0
        stall_since = self._stall_since
        if self._estop:
            return DiagnosticStatus.ERROR, f"{self.mode}: e-stop latched"
        if stall_since is not None or stalls:
            held = f"for {time.monotonic() - stall_since:.1f} s" if stall_since is not None else "briefly"
            return DiagnosticStatus.ERROR, (f"{self.mode}: watchdog hold {held}: commands stopped mid-episode "
                                            f"({stalls} stall(s) since the last report)")
        if bursts:
            return DiagnosticStatus.WARN, (f"{self.mode}: burst of rejected commands ({self._reject_times.maxlen} within "
                                           f"{BURST_WINDOW} s); last: {self._last_rejection}")
        return DiagnosticStatus.OK, self.mode

    def close(self) -> None:
        self._running = False
        self._chunk_thread.join(timeout=2.0)
        self._chunk_executor.shutdown(timeout_sec=1.0)
        self._chunk_node.destroy_node()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        with self._outbox_ready:
            self._outbox_ready.notify()
        self._publisher.join(timeout=2.0)
        self._command_node.destroy_node()
        try:
            self.driver.stop()
            self.driver.disconnect()
        except DriverError as exc:
            self.get_logger().error(f"while stopping the driver: {exc}")


def main(argv: list[str] | None = None) -> int:
    return run_node(ArmNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
