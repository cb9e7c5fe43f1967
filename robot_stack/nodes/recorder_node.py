"""recorder_node: records the graph's topics into the zarr episode store.

Every sample is stored at its own rate with its capture stamp (the header stamp) and its
receive stamp; a control clock (`rate`, default 10 Hz) records tick times, and at commit,
when every capture stamp is known, each tick gets the index of the latest sample of every
stream captured at or before it (`align.<stream>`): how training windows line streams up. Callbacks only enqueue; one writer thread owns
the store, so recording never blocks the graph. Services (std_srvs/Trigger) start, stop,
mark success or failure (both end the episode) and discard.
"""
from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from geometry_msgs.msg import PoseStamped, WrenchStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray, String
from std_srvs.srv import Trigger

from robot_stack.data import EpisodeStore, StoreError
from robot_stack.nodes.common import declare_any, run_node
from robot_stack.ros import convert, qos


@dataclass
class _Episode:
    metadata: dict


class RecorderNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("recorder_node", **node_kwargs)
        path = declare_any(self, "store")
        if not path:
            raise ValueError("recorder_node needs the store parameter (a path for the zarr episode store)")
        self.robot = str(declare_any(self, "robot") or "panda")
        self.task = str(declare_any(self, "task") or "")
        self.operator = str(declare_any(self, "operator") or "human")
        cameras = str(declare_any(self, "cameras") or "front,wrist")
        rate = float(declare_any(self, "rate") or 10.0)
        try:
            self.store = EpisodeStore.open(path, "a") if Path(path).exists() else EpisodeStore.create(path)
        except StoreError as exc:
            raise RuntimeError(f"cannot record into {path}: {exc}") from exc
        self.instruction = ""
        self.sim_episode: dict = {}
        self.sim_state: list[float] | None = None      # twin only: the final state goes with each episode
        self.errors = 0
        self._episode: _Episode | None = None
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._writer_thread = threading.Thread(target=self._writer_loop, name="recorder_writer", daemon=True)
        self._writer_thread.start()

        sub = self.create_subscription
        sub(JointState, "joint_states", self._on_joints, qos.SENSOR)
        sub(PoseStamped, "arm/ee_pose", lambda m: self._pose("ee_pose", m), qos.SENSOR)
        sub(WrenchStamped, "arm/wrench", self._on_wrench, qos.SENSOR)
        sub(JointState, "arm/gripper", lambda m: self._sample("gripper", np.array(m.position[:1]), m.header.stamp),
            qos.SENSOR)
        sub(PoseStamped, "arm/target_pose", lambda m: self._pose("action_pose", m), qos.COMMAND)
        sub(Float64, "arm/gripper_cmd", lambda m: self._sample("action_gripper", np.array([m.data]), None), qos.RELIABLE)
        sub(Bool, "teleop/intervention", lambda m: self._sample("intervention", np.array([m.data]), None), qos.RELIABLE)
        sub(String, "task/instruction", self._on_instruction, qos.LATCHED)
        sub(String, "sim/episode", self._on_sim_episode, qos.LATCHED)
        sub(Float64MultiArray, "sim/state", lambda m: setattr(self, "sim_state", list(m.data)), qos.SENSOR)
        for cam in [c for c in cameras.split(",") if c]:
            sub(Image, f"{cam}/color/image_raw", lambda m, c=cam: self._on_image(f"{c}_rgb", m), qos.IMAGE)
        self.pub_status = self.create_publisher(String, "recorder/status", qos.LATCHED)
        self._publish_status(False)
        for name, handler in (("start", self._srv_start), ("stop", self._srv_stop), ("success", self._srv_success),
                              ("fail", self._srv_fail), ("discard", self._srv_discard)):
            self.create_service(Trigger, f"recorder/{name}", handler)
        self.create_timer(1.0 / rate, self._on_tick)

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _publish_status(self, recording: bool) -> None:
        """Whether an episode is being recorded and how many the store holds (latched, for operators' tools)."""
        self.pub_status.publish(String(data=json.dumps({"recording": recording,
                                                        "episodes": self.store.num_episodes})))

    # --- samples -----------------------------------------------------------------------------
    def _sample(self, stream: str, value: np.ndarray, stamp) -> None:
        received = self.now()
        captured = convert.from_time(stamp) if stamp is not None else received
        with self._lock:
            ep = self._episode
            if ep is None:
                return
            self._queue.put(("sample", stream, value, captured, received))

    def _pose(self, stream: str, msg: PoseStamped) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        self._sample(stream, np.array([p.x, p.y, p.z, o.x, o.y, o.z, o.w]), msg.header.stamp)

    def _on_joints(self, msg: JointState) -> None:
        self._sample("joint_pos", np.array(msg.position), msg.header.stamp)
        self._sample("joint_vel", np.array(msg.velocity), msg.header.stamp)

    def _on_wrench(self, msg: WrenchStamped) -> None:
        f, t = msg.wrench.force, msg.wrench.torque
        self._sample("wrench", np.array([f.x, f.y, f.z, t.x, t.y, t.z]), msg.header.stamp)

    def _on_image(self, stream: str, msg: Image) -> None:
        try:
            image = convert.parse_image(msg).copy()
        except convert.MessageError as exc:
            self.errors += 1
            self.get_logger().error(f"{stream}: {exc}", throttle_duration_sec=2.0)
            return
        self._sample(stream, image, msg.header.stamp)

    def _on_instruction(self, msg: String) -> None:
        self.instruction = msg.data

    def _on_sim_episode(self, msg: String) -> None:
        """The twin's episode (task, seed): stored so the episode can be replayed from the same start."""
        try:
            self.sim_episode = json.loads(msg.data)
        except json.JSONDecodeError as exc:
            self.get_logger().error(f"sim/episode: {exc}")

    def _on_tick(self) -> None:
        """The control clock; alignment to it is computed at commit, when every capture stamp is known."""
        tick = self.now()
        with self._lock:
            if self._episode is not None:
                self._queue.put(("sample", "tick", np.array(tick), tick, tick))

    # --- episode control -----------------------------------------------------------------------
    def _request(self, kind: str, *args) -> tuple[bool, str]:
        done: dict = {"event": threading.Event()}
        self._queue.put((kind, done, *args))
        if not done["event"].wait(timeout=30.0):
            return False, f"{kind} timed out"
        return done["ok"], done["message"]

    def _srv_start(self, request, response):
        with self._lock:
            if self._episode is not None:
                response.success, response.message = False, "already recording"
                return response
            meta = {"task": self.task, "instruction": self.instruction, "robot": self.robot,
                    "operator": self.operator, "start_time": self.now()}
            if self.sim_episode:
                meta.update(source="twin", seed=self.sim_episode.get("seed"), task=self.sim_episode.get("task", self.task))
            self._episode = _Episode(meta)
            self._queue.put(("begin", meta))
        self._publish_status(True)
        response.success, response.message = True, f"recording episode {self.store.num_episodes}"
        return response

    def _end(self, response, success: bool | None, discard: bool = False):
        with self._lock:
            if self._episode is None:
                response.success, response.message = False, "not recording"
                return response
            self._episode = None
        response.success, response.message = self._request("discard" if discard else "commit", success)
        return response

    def _srv_stop(self, request, response):
        return self._end(response, None)

    def _srv_success(self, request, response):
        return self._end(response, True)

    def _srv_fail(self, request, response):
        return self._end(response, False)

    def _srv_discard(self, request, response):
        return self._end(response, None, discard=True)

    # --- the writer thread ------------------------------------------------------------------------
    @staticmethod
    def _append_alignment(writer, stamps: dict[str, list[float]]) -> None:
        """For each control tick and stream, the index of the latest sample captured at or before the tick."""
        ticks = np.asarray(stamps.get("tick", []))
        if ticks.size == 0:
            return
        for stream, caps in stamps.items():
            if stream != "tick":
                index = np.searchsorted(np.asarray(caps), ticks, side="right") - 1
                writer.append_many(f"align.{stream}", index.astype(np.int64), ticks)

    def _writer_loop(self) -> None:
        writer = None
        stamps: dict[str, list[float]] = {}
        while True:
            item = self._queue.get()
            kind = item[0]
            try:
                if kind == "stop":
                    if writer is not None:
                        writer.discard()
                    return
                if kind == "begin":
                    writer = self.store.begin_episode(item[1])
                    stamps = {}
                elif kind == "sample" and writer is not None:
                    writer.append(item[1], item[2], item[3], item[4])
                    stamps.setdefault(item[1], []).append(item[3])
                elif kind in ("commit", "discard"):
                    done = item[1]
                    if writer is None:
                        done.update(ok=False, message="no episode")
                    elif kind == "commit":
                        self._append_alignment(writer, stamps)
                        extra = {"final_sim_state": self.sim_state} if self.sim_state is not None else {}
                        k = writer.commit(success=item[2], end_time=self.now(), **extra)
                        done.update(ok=True, message=f"episode {k} committed")
                    else:
                        writer.discard()
                        done.update(ok=True, message="episode discarded")
                    writer = None
                    self._publish_status(False)
                    done["event"].set()
            except StoreError as exc:
                self.errors += 1
                self.get_logger().error(f"recording error: {exc}")
                if kind in ("commit", "discard"):
                    item[1].update(ok=False, message=str(exc))
                    item[1]["event"].set()

    def close(self) -> None:
        self._queue.put(("stop",))
        self._writer_thread.join(timeout=10.0)
        self.store.close()


def main(argv: list[str] | None = None) -> int:
    return run_node(RecorderNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
