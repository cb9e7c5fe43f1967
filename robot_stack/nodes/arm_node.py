"""arm_node: the one place an arm is commanded, and the owner of safety.

A control loop runs at the arm's rate (1 kHz Panda, 500 Hz UR5e) over any ArmDriver: each
period it reads the state, hands it to the ROS-free `Controller` (control/controller.py:
interpolation, chunk playing, watchdog, safety envelope) and sends the set point it returns.
ROS callbacks only parse and hand commands to the controller; they never touch the driver.

By default (`controller_process: true`) that loop and the driver run in a process of their own
(control/process.py), beside the node, through shared memory: the node's executor, publishers and
chunk parsing share one interpreter lock, and as a thread of the node the loop was late 6-18x as
often as a bare real-time loop beside it. The node keeps the same topics, services and diagnostics;
if that process dies or stops ticking the node reports it on /diagnostics and exits non-zero, and
if the node dies the controller holds the pose. With `controller_process: false`, or when the
caller passes a driver object or steps the loop itself (`start_loop=False`), the loop is a thread
of the node.

Action chunks are taken, size-checked, parsed and validated on a thread of their own
(`arm_chunks`): a chunk is as large as its sender makes it, and the control thread only
ever picks up a checked ActionChunk.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque

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

from robot_stack.control.controller import Controller
from robot_stack.control.loop_stats import RecentSamples
from robot_stack.control.safety import SafetyLimits, SafetyViolation
from robot_stack.drivers import registry
from robot_stack.drivers.base import ArmDriver, DriverError, SimulatedArm
from robot_stack.nodes.common import STOPPING, node_config, raise_thread_priority, run_node, take_all
from robot_stack.ros import convert, qos
from robot_stack.robots.spec import get_robot
from robot_stack.types import RobotState

ARM_PARAMS = ("robot", "driver", "robot_ip", "task", "seed", "realtime", "chunk_blend", "controller_process")
BURST_WINDOW = 1.0              # s: `reject_burst` rejected commands within this is a burst (WARN on /diagnostics)


def make_arm_driver(cfg, clock) -> ArmDriver:
    """The driver `cfg.driver` from the driver registry, which imports only that driver's package."""
    return registry.make_arm_driver(cfg.driver, cfg, clock=clock)


class ArmNode(Node):
    def __init__(self, driver: ArmDriver | None = None, start_loop: bool = True, **node_kwargs):
        """`start_loop=False` leaves ticking to the caller (tests step `control_step()` themselves); it and a `driver`
        object both keep the loop in this process, where the caller can reach it."""
        super().__init__("arm_node", **node_kwargs)
        self.cfg = node_config(self, "arm_node", ARM_PARAMS)
        self.spec = get_robot(self.cfg.robot.name)
        self.limits = SafetyLimits(**OmegaConf.to_container(self.cfg.robot.safety))
        chunk_blend = float(self.cfg.chunk_blend)
        if not 0.0 <= chunk_blend < 1.0:
            raise ValueError(f"chunk_blend must be in [0, 1), got {chunk_blend}")
        self.joint_names = [f"{self.spec.name}_joint{i + 1}" for i in range(self.spec.dof)]
        self._publish_every = max(1, round(self.spec.control_hz / self.cfg.publish_rate))
        self.remote = bool(self.cfg.controller_process) and driver is None and start_loop
        self.controller_fault: str | None = None
        if self.remote:
            from robot_stack.control.process import RemoteController
            self.driver = None
            self.controller = RemoteController(OmegaConf.to_container(self.cfg, resolve=True),
                                               priority=int(self.cfg.realtime_priority),
                                               publish_every=self._publish_every, clock=self.now)
            self.simulated = self.controller.process.simulated
            self.tick_cpu = self.controller.tick_cpu
            self.get_logger().info(f"controller process pid {self.controller.process.pid}, "
                                   f"shared memory {self.controller.process.shared.name}")
        else:
            self.controller = Controller(self.spec, self.limits,
                                         command_period=float(self.cfg.default_command_period),
                                         chunk_blend=chunk_blend, clock=self.now, on_stall=self._log_stall)
            self.driver = driver or make_arm_driver(self.cfg, clock=self.now)
            try:
                self.driver.connect()
            except DriverError as exc:
                raise RuntimeError(f"arm driver {self.cfg.driver} could not connect: {exc}") from exc
            self.simulated = isinstance(self.driver, SimulatedArm)
            self.tick_cpu = RecentSamples(5000)       # CPU seconds of one control step: how much of the period it uses
        self.dt = self.controller.dt

        self._reset_lock = threading.Lock()
        self._reset_request: threading.Event | None = None
        self._reject_times: deque[float] = deque(maxlen=max(1, int(self.cfg.reject_burst)))
        self._bursts_unreported = 0
        self._last_rejection = ""
        self._reject_logged: dict[str, tuple[float, int]] = {}    # per kind: when last logged, how many since
        self.state: RobotState | None = None
        self.command_receive = RecentSamples(2000)    # target stamp -> taken from the subscription: the middleware's part
        self.remote_setpoint: tuple[np.ndarray, np.ndarray] | None = None

        self.pub_joints = self.create_publisher(JointState, "joint_states", qos.SENSOR)
        self.pub_pose = self.create_publisher(PoseStamped, "arm/ee_pose", qos.SENSOR)
        self.pub_wrench = self.create_publisher(WrenchStamped, "arm/wrench", qos.SENSOR)
        self.pub_gripper = self.create_publisher(JointState, "arm/gripper", qos.SENSOR)
        self.pub_diag = self.create_publisher(DiagnosticArray, "diagnostics", 10)
        # [tick stamp, target stamp (NaN: none), gripper] for each tick that took a command: what replay plays back
        self.pub_taken = self.create_publisher(Float64MultiArray, "arm/commands_taken", qos.COMMAND_LOG)
        self.pub_sim = self.create_publisher(Float64MultiArray, "sim/state", qos.SENSOR) \
            if self.simulated else None
        # Commands are taken by the control thread itself, every tick, from subscriptions on a
        # companion node that no executor spins: a command waits for the next tick, not for
        # the executor's turn under the GIL (p99 command path 6-7 ms through the executor).
        # Each companion is named by a rule of its own (cli_args): launchers start the process with
        # `-r __node:=NAME`, which renames every node in it, and three nodes named arm_node would share one
        # rosout publisher and answer each other's parameter services.
        self._command_node = rclpy.create_node(f"{self.get_name()}_commands", namespace=self.get_namespace(),
                                               context=self.context,
                                               cli_args=["--ros-args", "-r", f"__node:={self.get_name()}_commands"])
        # With the controller in its own process a thread of this node at the control priority waits on the
        # subscription and hands each target over as it arrives (`_command_loop`).
        self._command_subs = [
            (self._command_node.create_subscription(PoseStamped, "arm/target_pose", lambda m: None, qos.COMMAND),
             self._on_target),
        ]
        # Chunks arrive serialized on a node of their own, spun by its own thread: the size is checked before
        # the message is turned into Python objects (a 10,000-point chunk took 0.6 s to take and parse, in C
        # code that holds the GIL), then parsing and validation run there, never in the control thread.
        self._chunk_bytes_limit = convert.chunk_bytes_limit(self.limits.max_chunk_steps)
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
        self._seed = int(self.cfg.seed)
        if self.simulated:
            self.create_service(Trigger, "sim/reset", self._srv_sim_reset)
            # The twin announces each episode (task, seed), so recordings can be replayed exactly.
            self.pub_episode = self.create_publisher(String, "sim/episode", qos.LATCHED)
            self._announce_episode()
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
        # (tick stamp, target stamp, gripper, the twin's physics time or NaN)
        self._taken: deque[tuple[float, float, float, float]] = deque(maxlen=1000)
        self.states_published = 0
        self._publisher = threading.Thread(target=self._publish_loop, name="arm_publish", daemon=True)
        self._publisher.start()
        self._chunk_thread = threading.Thread(target=self._chunk_loop, name="arm_chunks", daemon=True)
        self._chunk_thread.start()
        self._thread = threading.Thread(target=self._command_loop if self.remote else self._control_loop,
                                        name="arm_commands" if self.remote else "arm_control", daemon=True)
        if start_loop or self.remote:
            self._thread.start()
        if self.remote:
            self.create_timer(0.05, self._watch_controller)
        self.get_logger().info(f"arm_node up: {self.spec.name} via {self.cfg.driver} at {self.spec.control_hz} Hz")

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- the controller's state, as the node reports it ----------------------------------------
    @property
    def safety(self):
        return self.controller.safety

    @property
    def stats(self):
        return self.controller.stats

    @property
    def mode(self) -> str:
        return self.controller.mode

    @property
    def setpoint(self):
        """The set point last sent (with the controller in its own process: the one in its newest state row)."""
        return self.remote_setpoint if self.remote else self.controller.setpoint

    @property
    def chunk_blend(self) -> float:
        return self.controller.chunk_blend

    @property
    def command_age(self) -> float:
        return self.controller.command_age

    @property
    def _chunk(self):
        return self.controller.chunk

    @property
    def _estop(self) -> bool:
        return self.controller.estop

    # --- ROS callbacks: parse and hand over ----------------------------------------------------
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

    def _on_target(self, msg: PoseStamped) -> None:
        try:
            pos, quat, stamp = convert.parse_pose(msg)
            self.command_receive.append(self.now() - stamp)
            self.controller.set_target(pos, quat, stamp)
        except (convert.MessageError, SafetyViolation) as exc:
            self._reject("target pose", exc)

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
        """Parse, check and hand over a chunk; runs off the control thread, which only picks the result up. A chunk
        with no points ends the command stream on purpose (a paused policy server), as an empty trajectory stops a
        JointTrajectoryController: the arm holds, and no stall is reported."""
        if not msg.points:
            return self.controller.end_stream()
        try:
            chunk = convert.parse_chunk(msg, max_points=self.limits.max_chunk_steps)
            self.controller.set_chunk(chunk, stamp=convert.from_time(msg.header.stamp))
        except (convert.MessageError, SafetyViolation) as exc:
            self._reject("action chunk", exc)

    def _on_gripper(self, msg: Float64) -> None:
        try:
            self.controller.set_gripper(msg.data)
        except SafetyViolation as exc:
            self._reject("gripper command", exc)

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
            self.controller.chunk_blend = blend
        return SetParametersResult(successful=True)

    def _srv_stop(self, request, response):
        self.controller.stop()
        response.success, response.message = True, "e-stop latched; call arm/recover to release"
        return response

    def _srv_recover(self, request, response):
        if not self._service_lock.allow("arm/recover", response):
            return response
        if not self.remote:                         # the controller process recovers its own driver
            try:
                self.driver.recover()
            except DriverError as exc:
                response.success, response.message = False, str(exc)
                return response
        self.controller.recover()
        response.success, response.message = True, "recovered; holding pose"
        return response

    def _srv_home(self, request, response):
        if not self._service_lock.allow("arm/home", response):
            return response
        response.success, response.message = self.controller.home()
        return response

    def _srv_enable(self, request, response):
        # Disabling holds the arm, as arm/stop does: never locked; enabling lets it move again.
        if request.data and not self._service_lock.allow("arm/enable", response):
            return response
        self.controller.enable(bool(request.data))
        response.success, response.message = True, "enabled" if request.data else "disabled: holding pose"
        return response

    def _srv_sim_reset(self, request, response):
        if self.remote:
            try:
                self._seed = self.controller.reset()
            except RuntimeError as exc:
                response.success, response.message = False, str(exc)
                return response
            self._announce_episode()
            response.success, response.message = True, f"seed={self._seed}"
            return response
        done = threading.Event()
        with self._reset_lock:
            self._reset_request = done
        if not done.wait(timeout=5.0):
            response.success, response.message = False, "the control loop did not reset within 5 s"
            return response
        response.success, response.message = True, f"seed={self.driver.config.seed}"
        return response

    def _announce_episode(self) -> None:
        if self.remote:
            robot, task, seed = self.spec.name, str(self.cfg.task), self._seed
        else:
            c = self.driver.config
            robot, task, seed = c.robot, c.task, int(c.seed)
        self.pub_episode.publish(String(data=json.dumps({"robot": robot, "task": task, "seed": seed})))

    def _log_stall(self, age: float) -> None:
        if STOPPING.is_set():       # the graph is stopping and the commander went first: no fault
            self.get_logger().info(f"commands ended with the shutdown ({age:.3f} s); holding pose")
        else:
            self.get_logger().error(f"commands stopped mid-episode: no command for {age:.3f} s "
                                    f"(watchdog {self.limits.watchdog_timeout} s); holding pose")

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

    def _command_loop(self) -> None:
        """Targets to the controller process as they arrive: blocked on the subscription (a wait set, the interpreter
        lock released), at the control priority, with no executor in the path (through one, p99 5-7 ms)."""
        from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

        raise_thread_priority(self.get_logger(), self.cfg.realtime_priority, "command")
        sub = self._command_subs[0][0]
        wait_set = _rclpy.WaitSet(1, 0, 0, 0, 0, 0, self.context.handle)
        while self._running and self.context.ok():
            wait_set.clear_entities()
            wait_set.add_subscription(sub.handle)
            wait_set.wait(100_000_000)              # 0.1 s at most: close() is noticed
            try:
                self.take_commands()
            except Exception:                       # the context went down under the wait: a shutdown
                if self.context.ok() and self._running:
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
        """One control period: read, take commands, the controller's set point to the driver, queue the state."""
        cpu = time.thread_time()
        try:
            state = self.driver.read_state()
            self.take_commands()
            self.state = state
            with self._reset_lock:
                reset, self._reset_request = self._reset_request, None
            if reset is not None:                   # between ticks, on this thread: the driver is not thread-safe
                self.driver.reset_next()
                self._announce_episode()
                self.controller.reset()
                reset.set()
            else:
                setpoint = self.controller.tick(state)
                setpoint.send(self.driver)
                self._note_taken(state.stamp, setpoint.gripper)
        except DriverError as exc:
            self.controller.fault(str(exc))
            self.get_logger().error(f"driver error: {exc}; holding", throttle_duration_sec=1.0)
            time.sleep(self.dt)
            return
        self._ticks += 1
        if self._ticks % self._publish_every == 0:
            sim = self.driver.sim_state() if self.pub_sim is not None else None   # this tick's scene, taken now
            with self._outbox_ready:
                self._outbox.append((state, sim))
                self._outbox_ready.notify()
        self.tick_cpu.append(time.thread_time() - cpu)

    def _note_taken(self, tick_stamp: float, gripper: float) -> None:
        """Queue this tick's `arm/commands_taken` row, if it took a command (`Controller.took_command`)."""
        if not self.controller.took_command(gripper):
            return
        stamp = self.controller.taken_stamp
        # The twin's physics time at this tick: a loop running late lets the physics lag the stamps by tens of ms,
        # and a replay handing the command over at the stamp did it at another physics step (objects 1.7 cm off).
        physics = float(self.driver.sim_state()[0]) if self.simulated else np.nan
        with self._outbox_ready:
            self._taken.append((tick_stamp, np.nan if stamp is None else stamp, gripper, physics))
            self._outbox_ready.notify()

    # --- publishing ------------------------------------------------------------------------
    def _publish_loop(self) -> None:
        # Above the cameras and the policy server, below the control loop: the twin cameras wait for this
        # state, so its delay is capture latency.
        raise_thread_priority(self.get_logger(), max(0, int(self.cfg.realtime_priority) - 10), "state publishing")
        if self.remote:
            return self._publish_remote_states()
        while self._running and self.context.ok():
            with self._outbox_ready:
                self._outbox_ready.wait_for(lambda: self._outbox or self._taken or not self._running, timeout=0.1)
                items, taken = list(self._outbox), list(self._taken)
                self._outbox.clear()
                self._taken.clear()
            try:
                for item in items:
                    self._publish_state(*item)
                for row in taken:
                    self.pub_taken.publish(Float64MultiArray(data=list(row)))
            except Exception:                       # publishing after the context went down: a shutdown
                if self.context.ok():
                    raise
                break

    def _publish_remote_states(self) -> None:
        """The controller process's state rows, oldest first, as they appear in shared memory."""
        from robot_stack.control.process import state_fields

        process = self.controller.process
        rows, taken = process.new_state_buffer(), process.new_taken_buffer()
        last = last_taken = 0
        while self._running and self.context.ok():
            n, last, _ = process.states_since(last, rows)
            n_taken, last_taken, _ = process.taken_since(last_taken, taken)
            if n == 0 and n_taken == 0:
                process.wait_for_state(0.1)         # the controller announces each row: no polling
                continue
            try:
                for row in taken[:n_taken]:
                    self.pub_taken.publish(Float64MultiArray(data=row[1:].tolist()))
                for row in rows[:n]:
                    f = state_fields(process.layout, row)
                    self.remote_setpoint = (f["setpoint_pos"].copy(), f["setpoint_quat"].copy())
                    state = RobotState(stamp=float(f["stamp"]), q=f["q"], dq=f["dq"], ee_pos=f["ee_pos"],
                                       ee_quat=f["ee_quat"], gripper_width=float(f["gripper_width"]),
                                       wrench=f["wrench"], tau=f["tau"], mode="ok")
                    self.state = state
                    self._publish_state(state, f["sim"] if self.simulated else None)
            except Exception:                       # publishing after the context went down: a shutdown
                if self.context.ok():
                    raise
                break

    def _watch_controller(self) -> None:
        """The controller process died or stopped ticking: say so on /diagnostics and in the log, then raise, which
        ends the node's spin with an error (exit code 1), so the launcher brings the graph down."""
        if self.controller_fault is not None or not self._running:
            return
        fault = self.controller.fault()
        if fault is None:
            return
        self.controller_fault = fault
        self.get_logger().error(f"{fault}; the arm is not controlled by this node any more: exiting")
        self._publish_diagnostics()
        from robot_stack.control.process import ControllerError
        raise ControllerError(fault)

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
        c = self.controller
        stats = c.stats.summary()
        for name, samples, scale, unit in (("chunk_latency", c.chunk_latency, 1e3, "ms"),
                                           ("command_latency", c.command_latency, 1e3, "ms"),
                                           ("command_receive", self.command_receive, 1e3, "ms"),
                                           ("tick_cpu", self.tick_cpu, 1e6, "us")):
            if len(samples):
                p50, p99 = samples.percentiles([50, 99], scale)
                stats[f"{name}_p50_{unit}"], stats[f"{name}_p99_{unit}"] = p50, p99
        stats["chunks_received"] = len(c.chunk_latency)
        level, message = self._health()
        values = {**{k: f"{v:.3f}" for k, v in stats.items()}, "command_age_s": f"{self.command_age:.3f}",
                  "mode": c.mode, "estop": str(c.estop), "enabled": str(c.enabled),
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
        c = self.controller
        stalls = c.take_stalls()
        bursts, self._bursts_unreported = self._bursts_unreported, 0
        stall_since = c.stall_since
        if self.controller_fault is not None:
            return DiagnosticStatus.ERROR, f"controller process lost: {self.controller_fault}"
        if c.estop:
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
        if self.remote:
            self.controller.close()                 # the controller process stops its driver
            return
        try:
            self.driver.stop()
            self.driver.disconnect()
        except DriverError as exc:
            self.get_logger().error(f"while stopping the driver: {exc}")


def main(argv: list[str] | None = None) -> int:
    return run_node(ArmNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
