"""policy_server: hosts trained policies and turns synchronised observations into action chunks.

Loads one or more checkpoints (parameter `checkpoints`: comma-separated directories; each
is served under its policy name, or `alias=DIR`). The active one is the `policy`
parameter, switched at run time with the standard parameter service
(`ros2 param set /policy_server policy grif`); an unknown name is refused and the old one
keeps serving. The task comes from every registered conditioning kind's topics
(/task/instruction, /task/goal_image, ...; latched, validated and size-limited by the kind);
`policy_server/enable` (std_srvs/SetBool) starts an episode — the policy is reset with the
task and what the kinds take from the first frames captured after the call (GRIF's start
image) — or pauses it. A task or policy change takes effect at the next chunk.

How the active policy is executed comes from its checkpoint (`execute_steps`, and `chunk_blend`,
which the server sets on the arm node's parameter of that name) unless the parameter of the same
name is given. Parameters are validated when set; a bad value is refused with the reason.

Once per `execute_steps` / `rate` seconds of capture time (the chunk's first `execute_steps`
steps are played before the next decision), as soon as every camera the policy reads has a new
frame of the same capture instant (stamps within `sync_slop`), those frames with the newest TCP
pose and gripper width make an Observation stamped with the oldest capture time among them;
the chunk goes out on /arm/action_chunk with that stamp in its header, so the arm node
measures capture-to-arm latency and drops steps already stale. Bad input (missing
conditioning, a wrong image size or encoding, a bad checkpoint) is reported on
/diagnostics and in the log; no chunk goes out, the arm node's watchdog holds the arm,
and the server goes on with the next valid request.
"""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import SetBool
from trajectory_msgs.msg import MultiDOFJointTrajectory

from robot_stack.nodes.common import declare_any, raise_thread_priority, run_node, take_newest
from robot_stack.policies import PolicyError, load_policy
from robot_stack.policies.conditioning import InputLimits, kinds
from robot_stack.ros import convert, qos
from robot_stack.ros.task_topics import TaskInputs
from robot_stack.types import Observation, Task


def parse_checkpoints(value: str) -> list[tuple[str | None, str]]:
    """'a=/x, /y' -> [("a", "/x"), (None, "/y")]."""
    out = []
    for item in [v.strip() for v in str(value).split(",") if v.strip()]:
        alias, _, path = item.rpartition("=") if "=" in item else ("", "", item)
        out.append((alias or None, path))
    return out


class PolicyServer(Node):
    def __init__(self, **node_kwargs):
        super().__init__("policy_server", **node_kwargs)
        import torch
        torch.set_num_threads(int(declare_any(self, "threads") or 1))    # leave the other cores to the arm and cameras
        specs = parse_checkpoints(declare_any(self, "checkpoints"))
        if not specs:
            raise ValueError("policy_server needs the checkpoints parameter (comma-separated checkpoint directories)")
        self.policies = {}
        for alias, path in specs:
            try:
                policy = load_policy(path).serve()          # this process only decides
            except (PolicyError, OSError) as exc:
                raise ValueError(f"cannot load checkpoint {path}: {exc}") from exc
            self.policies[alias or policy.name] = policy
        active = str(declare_any(self, "policy") or next(iter(self.policies)))
        if active not in self.policies:
            raise ValueError(f"policy {active!r} is not loaded; loaded: {sorted(self.policies)}")
        self.active = active
        self.rate = _positive(declare_any(self, "rate") or 10.0, "rate")
        # chunk steps played before the next decision (receding horizon): 1 decides every period; more keeps a
        # diffusion policy on one sampled plan through a grasp instead of switching between samples every 0.1 s.
        # '' (default): the active checkpoint's setting.
        steps = declare_any(self, "execute_steps")
        self._execute_steps = None if steps == "" else _count(steps, "execute_steps")
        blend = declare_any(self, "chunk_blend")
        self._chunk_blend = None if blend == "" else _blend(blend)
        self.arm_node = str(declare_any(self, "arm_node") or "arm_node")   # whose chunk_blend follows the policy
        # frames whose capture stamps differ by more than this are not one capture instant (seconds); above half
        # the frame period of unsynchronised cameras (16.7 ms at 30 Hz), so their nearest frames always pair
        self.sync_slop = _positive(declare_any(self, "sync_slop") or 0.02, "sync_slop")
        self.limits = InputLimits(
            max_instruction_chars=_count(declare_any(self, "max_instruction_chars") or InputLimits.max_instruction_chars,
                                         "max_instruction_chars"),
            max_image_side=_count(declare_any(self, "max_image_side") or InputLimits.max_image_side, "max_image_side"))
        # SCHED_FIFO for the thread that spins the node, in main() (act() runs there), below the arm's control
        # loop (80): camera renderers do not preempt a decision halfway (BESO act() p99 7.8 ms alone, 23.5 ms
        # beside them). 0: off.
        priority = declare_any(self, "realtime_priority")
        self.realtime_priority = 50 if priority == "" else int(priority)

        self._lock = threading.Lock()
        self.images: dict[str, tuple[float, np.ndarray]] = {}
        self.pose: tuple[float, np.ndarray] | None = None
        self.gripper: float | None = None
        self.enabled = False
        self._episode_start: float | None = None     # enabled, waiting for frames captured after this time
        self._reset_needed = False                   # a new episode or policy: the policy starts over
        self._task_changed = False                   # a task input changed mid-episode: policy.update_task()
        self.errors = 0
        self.last_error = ""
        self.published = 0
        self.act_ms: deque[float] = deque(maxlen=2000)
        self.obs_age_ms: deque[float] = deque(maxlen=2000)   # capture stamp to the start of act(): time spent queued
        self._last_frames = 0.0          # newest capture stamp a decision has used
        self._last_stamp = -np.inf       # the last decision's observation stamp (its oldest frame)
        self.task_applied_stamp: float | None = None   # capture stamp of the first chunk under the latest task input:
                                                       # how `bench switch` finds the chunk that reflects a change

        cameras = sorted({c for p in self.policies.values() for c in p.data_spec().cameras})
        for cam in cameras:
            self.create_subscription(Image, f"{cam}/color/image_raw", lambda m, c=cam: self._on_image(c, m), qos.IMAGE)
        # The TCP pose and gripper width (100 Hz) are taken when a decision reads them, from a companion node that
        # no executor spins: delivered by the executor, they woke this thread 200 times a second.
        # Named by a rule of its own: the process's `-r __node:=NAME` (how launchers start it) renames every node
        # in it, and two nodes named policy_server would answer each other's parameter services.
        self._arm_state_node = rclpy.create_node(
            f"{self.get_name()}_arm_state", namespace=self.get_namespace(), context=self.context,
            cli_args=["--ros-args", "-r", f"__node:={self.get_name()}_arm_state"])
        self._pose_sub = self._arm_state_node.create_subscription(PoseStamped, "arm/ee_pose", lambda m: None,
                                                                  qos.SENSOR)
        self._gripper_sub = self._arm_state_node.create_subscription(JointState, "arm/gripper", lambda m: None,
                                                                     qos.SENSOR)
        self.task_inputs = TaskInputs(self, self.limits, self._error)
        self.create_service(SetBool, "policy_server/enable", self._srv_enable)
        self.pub_chunk = self.create_publisher(MultiDOFJointTrajectory, "arm/action_chunk", qos.COMMAND)
        self.pub_diag = self.create_publisher(DiagnosticArray, "diagnostics", 10)
        self.create_timer(1.0, self._publish_diagnostics)
        self._arm_params = None
        self._apply_chunk_blend()
        self.add_on_set_parameters_callback(self._on_set_parameters)     # after every declare: it validates them
        self.get_logger().info(f"policy_server up: {sorted(self.policies)} loaded, {self.active!r} active, "
                               f"{self.rate:g} Hz, a decision every {self.execute_steps} chunk step(s)")

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    @property
    def policy(self):
        return self.policies[self.active]

    @property
    def execute_steps(self) -> int:
        return self._execute_steps or self.policy.deploy["execute_steps"]

    @property
    def chunk_blend(self) -> float:
        return self.policy.deploy["chunk_blend"] if self._chunk_blend is None else self._chunk_blend

    def _apply_chunk_blend(self) -> None:
        """Set the arm node's chunk_blend to the active policy's (blending happens where the chunks play)."""
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters

        if self._arm_params is None:
            self._arm_params = self.create_client(SetParameters, f"{self.arm_node}/set_parameters")
        value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=float(self.chunk_blend))
        request = SetParameters.Request(parameters=[Parameter(name="chunk_blend", value=value)])
        blend = self.chunk_blend

        def send():
            if not self._arm_params.service_is_ready():
                return False
            self._arm_params.call_async(request).add_done_callback(
                lambda f: self.get_logger().info(f"arm chunk_blend {blend:g}: "
                                                 f"{'set' if f.result() and f.result().results[0].successful else 'refused'}"))
            return True
        if not send():                                  # the arm node may start after the server: retry for a while
            tries = {"left": 100}

            def retry():
                tries["left"] -= 1
                if send() or tries["left"] <= 0:
                    timer.cancel()
            timer = self.create_timer(0.1, retry)

    # --- inputs ---------------------------------------------------------------------------------
    def _on_image(self, cam: str, msg: Image) -> None:
        try:
            image = convert.parse_image(msg)
        except convert.MessageError as exc:
            return self._error(f"{cam} image: {exc}")
        with self._lock:
            self.images[cam] = (convert.from_time(msg.header.stamp), image)
        self._tick()

    def _take_arm_state(self) -> None:
        pose, gripper = take_newest(self._pose_sub), take_newest(self._gripper_sub)
        if pose is not None:
            self._on_pose(pose)
        if gripper is not None:
            self._on_gripper(gripper)

    def _on_pose(self, msg: PoseStamped) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        with self._lock:
            self.pose = (convert.from_time(msg.header.stamp), np.array([p.x, p.y, p.z, o.x, o.y, o.z, o.w]))

    def _on_gripper(self, msg: JointState) -> None:
        if msg.position:
            with self._lock:
                self.gripper = float(msg.position[0])

    def _srv_enable(self, request, response):
        with self._lock:
            pausing = self.enabled and not request.data
            self.enabled = bool(request.data)
            self._episode_start = self.now() if request.data else None
        if pausing:     # the chunks stop on purpose: an empty chunk tells the arm, which holds without a stall alarm
            self.pub_chunk.publish(convert.end_of_stream_msg(self.now()))
        response.success, response.message = True, f"{'enabled' if request.data else 'paused'}: {self.active}"
        return response

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Validate every parameter before any takes effect; a refusal names the reason. Never raises: an exception
        here would take the node, and with it the graph, down."""
        try:
            changes = {}
            for p in params:
                if p.name == "policy":
                    if not isinstance(p.value, str) or p.value not in self.policies:
                        return _refuse(f"policy {p.value!r} is not loaded; loaded: {sorted(self.policies)}")
                    changes["policy"] = p.value
                elif p.name == "rate":
                    changes["rate"] = _positive(p.value, "rate")
                elif p.name == "execute_steps":
                    changes["execute_steps"] = None if p.value == "" else _count(p.value, "execute_steps")
                elif p.name == "chunk_blend":
                    changes["chunk_blend"] = None if p.value == "" else _blend(p.value)
                elif p.name == "sync_slop":
                    changes["sync_slop"] = _positive(p.value, "sync_slop")
                elif p.name in ("checkpoints", "threads", "realtime_priority", "arm_node", "max_instruction_chars",
                                "max_image_side"):
                    return _refuse(f"{p.name} is read at start-up only; restart the server to change it")
        except ValueError as exc:
            return _refuse(str(exc))
        except Exception as exc:        # noqa: BLE001  (a callback must answer, whatever went wrong)
            return _refuse(f"{type(exc).__name__}: {exc}")
        with self._lock:
            if "policy" in changes:
                self.active = changes["policy"]
                self._reset_needed = True
            if "rate" in changes:
                self.rate = changes["rate"]
            if "execute_steps" in changes:
                self._execute_steps = changes["execute_steps"]
            if "chunk_blend" in changes:
                self._chunk_blend = changes["chunk_blend"]
            if "sync_slop" in changes:
                self.sync_slop = changes["sync_slop"]
        if "policy" in changes or "chunk_blend" in changes:
            self._apply_chunk_blend()
        if "policy" in changes:
            self.get_logger().info(f"switched to policy {self.active!r}")
        return SetParametersResult(successful=True)

    # --- the decision -------------------------------------------------------------------------
    def _task(self, fields: dict) -> Task:
        return Task(**fields)

    def _tick(self) -> None:
        """Decide when every camera the policy reads has a frame of one capture instant newer than the last
        decision, at most once per `execute_steps` / `rate` seconds of capture time.

        Event-driven rather than on a timer: the decision follows the frames' arrival, so the
        observation is as fresh as the cameras allow (a free-running 10 Hz timer sampled
        30 Hz frames up to 33 ms old). Frames of different instants are never combined, and
        decisions are spaced by capture stamps, not by when they ran: spaced by wall time, one
        late decision made the next instant's frames look early, so they were skipped and one
        of them was later paired with the instant after it (a chunk stamped a camera period
        old: BESO capture-to-act() p99 122 ms). No new frames, no decision: the arm's watchdog holds.
        """
        self._take_arm_state()
        with self._lock:
            if not self.enabled:
                return
            policy = self.policy
            spec = policy.data_spec()
            cams = spec.cameras
            if any(c not in self.images for c in cams) or self.pose is None or self.gripper is None:
                return
            fields, changed = self.task_inputs.take()
            self._task_changed |= changed
            frames = {c: self.images[c] for c in cams}
            stamps = [s for s, _ in frames.values()]
            if min(stamps) <= self._last_frames:
                return                          # a camera has nothing new yet
            if max(stamps) - min(stamps) > self.sync_slop:
                return                          # another camera's frame of this instant is still on its way
            period = min(self.execute_steps, spec.action_horizon) / self.rate
            self._last_frames = max(stamps)
            decide = min(stamps) - self._last_stamp >= period - 0.2 / self.rate
            if not decide:                      # at most one decision per `execute_steps` chunk steps
                if self._episode_start is not None or self._reset_needed or self._task_changed or policy.task is None:
                    return
                between = self._observation(frames, stamps)     # the frames between decisions: history only
            else:
                self._last_stamp = min(stamps)
                if self._episode_start is not None:
                    if min(stamps) < self._episode_start:
                        return                  # wait for frames captured after the episode started
                    images = {c: im for c, (_, im) in frames.items()}
                    fields = self.task_inputs.start_episode(images, spec.goal_camera)
                    self._episode_start = None
                    self._reset_needed = True
                obs = self._observation(frames, stamps)
                reset, changed = self._reset_needed or policy.task is None, self._task_changed
                self._reset_needed = self._task_changed = False
                task = self._task(fields)
        if not decide:
            try:
                policy.observe(between)
            except PolicyError as exc:
                self._error(str(exc))
            return
        try:
            if reset:
                policy.reset(task)
            elif changed:
                policy.update_task(task)
            self.obs_age_ms.append(1000 * (self.now() - obs.stamp))
            t0 = time.perf_counter()
            chunk = policy.act(obs)
            self.act_ms.append(1000 * (time.perf_counter() - t0))
        except PolicyError as exc:
            with self._lock:
                self._reset_needed = True        # retry the reset once the input is fixed
            return self._error(str(exc))
        self.pub_chunk.publish(convert.chunk_msg(chunk, stamp=obs.stamp))
        self.published += 1
        if reset or changed:
            self.task_applied_stamp = obs.stamp

    def _observation(self, frames: dict, stamps: list[float]) -> Observation:
        """The observation of one capture instant: the frames with the latest pose and gripper (held under the lock)."""
        return Observation(stamp=min(stamps + [self.pose[0]]), images={c: im for c, (_, im) in frames.items()},
                           ee_pose=self.pose[1], gripper=self.gripper)

    def close(self) -> None:
        self._arm_state_node.destroy_node()

    # --- reporting ----------------------------------------------------------------------------
    def _error(self, text: str) -> None:
        self.errors += 1
        self.last_error = text
        self.get_logger().error(text, throttle_duration_sec=1.0)

    def _publish_diagnostics(self) -> None:
        status = DiagnosticStatus(name="policy_server", hardware_id=self.active)
        status.level = DiagnosticStatus.ERROR if self.last_error else DiagnosticStatus.OK
        status.message = self.last_error or ("serving" if self.enabled else "paused")
        values = {"policy": self.active, "loaded": ",".join(sorted(self.policies)), "enabled": str(self.enabled),
                  "chunks_published": str(self.published), "errors": str(self.errors)}
        try:
            values.update({str(k): str(v) for k, v in self.policy.status().items()})   # e.g. SwitchVLA's mode
        except Exception as exc:        # noqa: BLE001  (a policy's report must not take the diagnostics down)
            values["status_error"] = f"{type(exc).__name__}: {exc}"
        if self.task_applied_stamp is not None:
            values["task_applied_stamp"] = f"{self.task_applied_stamp:.6f}"
        if self.act_ms:
            values["act_p50_ms"] = f"{np.percentile(self.act_ms, 50):.2f}"
            values["act_p99_ms"] = f"{np.percentile(self.act_ms, 99):.2f}"
            values["obs_age_p50_ms"] = f"{np.percentile(self.obs_age_ms, 50):.2f}"
            values["obs_age_p99_ms"] = f"{np.percentile(self.obs_age_ms, 99):.2f}"
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        self.pub_diag.publish(DiagnosticArray(header=convert.header(self.now(), ""), status=[status]))
        self.last_error = ""


def _refuse(reason: str) -> SetParametersResult:
    return SetParametersResult(successful=False, reason=reason)


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def _positive(value, name: str) -> float:
    number = _number(value, name)
    if number <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return number


def _count(value, name: str) -> int:
    number = _number(value, name)
    if number != int(number) or number < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    return int(number)


def _blend(value) -> float:
    number = _number(value, "chunk_blend")
    if not 0.0 <= number < 1.0:
        raise ValueError(f"chunk_blend must be in [0, 1), got {value!r}")
    return number


def main(argv=None) -> int:
    def serve() -> PolicyServer:
        server = PolicyServer()
        raise_thread_priority(server.get_logger(), server.realtime_priority, "policy")
        return server
    return run_node(serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
