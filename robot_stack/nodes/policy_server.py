"""policy_server: hosts trained policies and turns synchronised observations into action chunks.

Loads one or more checkpoints (parameter `checkpoints`: comma-separated directories; each
is served under its policy name, or `alias=DIR`). The active one is the `policy`
parameter, switched at run time with the standard parameter service
(`ros2 param set /policy_server policy grif`); an unknown name is refused and the old one
keeps serving. The task comes from /task/instruction and /task/goal_image (latched);
`policy_server/enable` (std_srvs/SetBool) starts an episode — the policy is reset with the
task and the first frames captured after the call as the start image — or pauses it.
A task or policy change takes effect at the next chunk.

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
from std_msgs.msg import String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import MultiDOFJointTrajectory

from robot_stack.nodes.common import declare_any, raise_thread_priority, run_node, take_newest
from robot_stack.policies import PolicyError, load_policy
from robot_stack.ros import convert, qos
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
        self.rate = float(declare_any(self, "rate") or 10.0)
        # chunk steps played before the next decision (receding horizon): 1 decides every period; more keeps a
        # diffusion policy on one sampled plan through a grasp instead of switching between samples every 0.1 s
        steps = declare_any(self, "execute_steps")
        self.execute_steps = 1 if steps == "" else int(steps)
        if self.execute_steps < 1:
            raise ValueError(f"execute_steps must be at least 1, got {self.execute_steps}")
        # frames whose capture stamps differ by more than this are not one capture instant (seconds); above half
        # the frame period of unsynchronised cameras (16.7 ms at 30 Hz), so their nearest frames always pair
        self.sync_slop = float(declare_any(self, "sync_slop") or 0.02)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # SCHED_FIFO for the thread that spins the node, in main() (act() runs there), below the arm's control
        # loop (80): camera renderers do not preempt a decision halfway (BESO act() p99 7.8 ms alone, 23.5 ms
        # beside them). 0: off.
        priority = declare_any(self, "realtime_priority")
        self.realtime_priority = 50 if priority == "" else int(priority)

        self._lock = threading.Lock()
        self.images: dict[str, tuple[float, np.ndarray]] = {}
        self.pose: tuple[float, np.ndarray] | None = None
        self.gripper: float | None = None
        self.instruction: str | None = None
        self.goal_image: np.ndarray | None = None
        self.enabled = False
        self._episode_start: float | None = None     # enabled, waiting for frames captured after this time
        self._task_dirty = False
        self._start_image: np.ndarray | None = None
        self.errors = 0
        self.last_error = ""
        self.published = 0
        self.act_ms: deque[float] = deque(maxlen=2000)
        self.obs_age_ms: deque[float] = deque(maxlen=2000)   # capture stamp to the start of act(): time spent queued
        self._last_frames = 0.0          # newest capture stamp a decision has used
        self._last_stamp = -np.inf       # the last decision's observation stamp (its oldest frame)

        cameras = sorted({c for p in self.policies.values() for c in p.data_spec().cameras})
        for cam in cameras:
            self.create_subscription(Image, f"{cam}/color/image_raw", lambda m, c=cam: self._on_image(c, m), qos.IMAGE)
        # The TCP pose and gripper width (100 Hz) are taken when a decision reads them, from a companion node that
        # no executor spins: delivered by the executor, they woke this thread 200 times a second.
        self._arm_state_node = rclpy.create_node(f"{self.get_name()}_arm_state", namespace=self.get_namespace(),
                                                 context=self.context)
        self._pose_sub = self._arm_state_node.create_subscription(PoseStamped, "arm/ee_pose", lambda m: None,
                                                                  qos.SENSOR)
        self._gripper_sub = self._arm_state_node.create_subscription(JointState, "arm/gripper", lambda m: None,
                                                                     qos.SENSOR)
        self.create_subscription(String, "task/instruction", self._on_instruction, qos.LATCHED)
        self.create_subscription(Image, "task/goal_image", self._on_goal, qos.LATCHED)
        self.create_service(SetBool, "policy_server/enable", self._srv_enable)
        self.pub_chunk = self.create_publisher(MultiDOFJointTrajectory, "arm/action_chunk", qos.COMMAND)
        self.pub_diag = self.create_publisher(DiagnosticArray, "diagnostics", 10)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f"policy_server up: {sorted(self.policies)} loaded, {self.active!r} active, "
                               f"{self.rate:g} Hz, a decision every {self.execute_steps} chunk step(s)")

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    @property
    def policy(self):
        return self.policies[self.active]

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

    def _on_instruction(self, msg: String) -> None:
        with self._lock:
            self.instruction = msg.data or None
            self._task_dirty = True

    def _on_goal(self, msg: Image) -> None:
        if msg.height == 0 or msg.width == 0:       # an empty image clears the goal
            with self._lock:
                self.goal_image, self._task_dirty = None, True
            return
        try:
            image = convert.parse_image(msg)
        except convert.MessageError as exc:
            return self._error(f"goal image: {exc}")
        with self._lock:
            self.goal_image = np.array(image)
            self._task_dirty = True

    def _srv_enable(self, request, response):
        with self._lock:
            self.enabled = bool(request.data)
            self._episode_start = self.now() if request.data else None
        response.success, response.message = True, f"{'enabled' if request.data else 'paused'}: {self.active}"
        return response

    def _on_set_parameters(self, params) -> SetParametersResult:
        for p in params:
            if p.name == "policy":
                if p.value not in self.policies:
                    return SetParametersResult(successful=False,
                                               reason=f"policy {p.value!r} is not loaded; loaded: {sorted(self.policies)}")
                with self._lock:
                    self.active = str(p.value)
                    self._task_dirty = True
                self.get_logger().info(f"switched to policy {self.active!r}")
        return SetParametersResult(successful=True)

    # --- the decision -------------------------------------------------------------------------
    def _task(self) -> Task:
        return Task(goal_image=self.goal_image, start_image=self._start_image, instruction=self.instruction)

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
                if self._episode_start is not None or self._task_dirty or policy.task is None:
                    return
                between = self._observation(frames, stamps)     # the frames between decisions: history only
            else:
                self._last_stamp = min(stamps)
                if self._episode_start is not None:
                    if min(stamps) < self._episode_start:
                        return                  # wait for frames captured after the episode started
                    self._start_image = frames[spec.goal_camera][1]
                    self._episode_start = None
                    self._task_dirty = True
                obs = self._observation(frames, stamps)
                dirty, self._task_dirty = self._task_dirty, False
                task = self._task()
        if not decide:
            try:
                policy.observe(between)
            except PolicyError as exc:
                self._error(str(exc))
            return
        try:
            if dirty or policy.task is None:
                policy.reset(task)
            self.obs_age_ms.append(1000 * (self.now() - obs.stamp))
            t0 = time.perf_counter()
            chunk = policy.act(obs)
            self.act_ms.append(1000 * (time.perf_counter() - t0))
        except PolicyError as exc:
            with self._lock:
                self._task_dirty = True          # retry the reset once the input is fixed
            return self._error(str(exc))
        self.pub_chunk.publish(convert.chunk_msg(chunk, stamp=obs.stamp))
        self.published += 1

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
        if self.act_ms:
            values["act_p50_ms"] = f"{np.percentile(self.act_ms, 50):.2f}"
            values["act_p99_ms"] = f"{np.percentile(self.act_ms, 99):.2f}"
            values["obs_age_p50_ms"] = f"{np.percentile(self.obs_age_ms, 50):.2f}"
            values["obs_age_p99_ms"] = f"{np.percentile(self.obs_age_ms, 99):.2f}"
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        self.pub_diag.publish(DiagnosticArray(header=convert.header(self.now(), ""), status=[status]))
        self.last_error = ""


def main(argv=None) -> int:
    def serve() -> PolicyServer:
        server = PolicyServer()
        raise_thread_priority(server.get_logger(), server.realtime_priority, "policy")
        return server
    return run_node(serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
