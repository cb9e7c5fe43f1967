"""recorder_node: records the graph's topics into the zarr episode store.

Every sample is stored at its own rate with its capture stamp (the header stamp) and its
receive stamp; a control clock (`rate`, default 10 Hz) records tick times, and at commit,
when every capture stamp is known, each tick gets the index of the latest sample of every
stream captured at or before it (`align.<stream>`): how training windows line streams up. Callbacks only enqueue; one writer thread owns
the store, so recording never blocks the graph. Services (std_srvs/Trigger) start, stop,
mark success or failure (both end the episode) and discard.

Every stream of an episode is counted where a sample can be lost: `published` (the span of the
publisher's sequence numbers over the samples received, from the middleware's message info),
`lost_in_transport` (published but never handed to the recorder: sequence gaps), `received`,
`dropped` (the write queue was full), `written`. `recorder/status` (latched JSON) carries these
counts once a second while recording and the final ones after each commit or discard.
"""
from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from geometry_msgs.msg import PoseStamped, WrenchStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray, String
from std_srvs.srv import Trigger

from robot_stack.data import EpisodeStore, StoreError
from robot_stack.nodes.common import declare_any, run_node, startup_only
from robot_stack.ros import convert, qos


IMAGE_QOS = qos.RECORDER_IMAGE   # image subscriptions (old name, kept for importers)
QUEUE_MB = 512.0           # write-queue bound (sample payload); past it samples are dropped and counted


class StreamCounts:
    """Where the samples of one stream went: `received`/`enqueued`/`dropped` change under the recorder's lock
    (subscription callbacks), `written` on the writer thread only."""

    __slots__ = ("received", "enqueued", "dropped", "written", "_seq")

    def __init__(self):
        self.received = self.enqueued = self.dropped = self.written = 0
        self._seq: dict[bytes, list[int]] = {}      # publisher gid -> [first, last, count] publication sequence

    def on_receive(self, info) -> None:
        self.received += 1
        seq = info.get("publication_sequence_number") if info else None
        if seq is None:
            return
        gid = bytes((info.get("publisher_gid") or {}).get("data", b""))
        span = self._seq.get(gid)
        if span is None:
            self._seq[gid] = [seq, seq, 1]
        else:
            span[0], span[1], span[2] = min(span[0], seq), max(span[1], seq), span[2] + 1

    def as_dict(self) -> dict:
        out = {"received": self.received, "enqueued": self.enqueued, "dropped": self.dropped, "written": self.written}
        if self._seq:
            published = sum(last - first + 1 for first, last, _ in self._seq.values())
            out["published"] = published
            out["lost_in_transport"] = published - sum(n for _, _, n in self._seq.values())
        return out


@dataclass
class _Episode:
    metadata: dict
    counts: dict = field(default_factory=dict)         # stream -> StreamCounts

    def count(self, stream: str) -> StreamCounts:
        c = self.counts.get(stream)
        if c is None:
            c = self.counts[stream] = StreamCounts()
        return c


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
        self.queue_bytes = float(declare_any(self, "queue_mb") or QUEUE_MB) * 1e6
        startup_only(self)
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
        self._enqueued_bytes = 0              # under self._lock only
        self._written_bytes = 0               # writer thread only: queued payload = the difference
        self.max_queued_bytes = 0
        self._last: _Episode | None = None    # the episode whose counts the status reports
        self._writer_thread = threading.Thread(target=self._writer_loop, name="recorder_writer", daemon=True)
        self._writer_thread.start()

        sub = self.create_subscription
        sub(JointState, "joint_states", self._on_joints, qos.RECORDER_STATE)
        sub(PoseStamped, "arm/ee_pose", lambda m: self._pose("ee_pose", m), qos.RECORDER_STATE)
        sub(WrenchStamped, "arm/wrench", self._on_wrench, qos.RECORDER_STATE)
        sub(JointState, "arm/gripper", lambda m: self._sample("gripper", np.array(m.position[:1]), m.header.stamp),
            qos.RECORDER_STATE)
        sub(PoseStamped, "arm/target_pose", lambda m: self._pose("action_pose", m), qos.COMMAND)
        sub(Float64, "arm/gripper_cmd", lambda m: self._sample("action_gripper", np.array([m.data]), None), qos.RELIABLE)
        sub(Float64MultiArray, "arm/commands_taken", self._on_taken, qos.COMMAND_LOG)
        sub(Bool, "teleop/intervention", lambda m: self._sample("intervention", np.array([m.data]), None), qos.RELIABLE)
        sub(String, "task/instruction", self._on_instruction, qos.LATCHED)
        sub(String, "sim/episode", self._on_sim_episode, qos.LATCHED)
        sub(Float64MultiArray, "sim/state", lambda m: setattr(self, "sim_state", list(m.data)), qos.SENSOR)
        for cam in [c for c in cameras.split(",") if c]:
            sub(Image, f"{cam}/color/image_raw", self._image_callback(f"{cam}_rgb"), qos.RECORDER_IMAGE)
        self.pub_status = self.create_publisher(String, "recorder/status", qos.LATCHED)
        self.create_timer(1.0, self._on_status_timer)
        self._publish_status(False)
        for name, handler in (("start", self._srv_start), ("stop", self._srv_stop), ("success", self._srv_success),
                              ("fail", self._srv_fail), ("discard", self._srv_discard)):
            self.create_service(Trigger, f"recorder/{name}", handler)
        self.create_timer(1.0 / rate, self._on_tick)

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def status(self, recording: bool) -> dict:
        """Whether an episode is being recorded, how many the store holds, the sample counts of the current (or
        last) episode per stream, and the write queue (payload now and its high-water mark, MB)."""
        ep = self._last
        queued = self._enqueued_bytes - self._written_bytes
        return {"recording": recording, "episodes": self.store.num_episodes,
                "streams": {k: c.as_dict() for k, c in sorted(ep.counts.items())} if ep is not None else {},
                "queue": {"items": self._queue.qsize(), "mb": round(queued / 1e6, 1),
                          "max_mb": round(self.max_queued_bytes / 1e6, 1),
                          "limit_mb": round(self.queue_bytes / 1e6, 1)},
                "errors": self.errors}

    def _publish_status(self, recording: bool) -> None:
        """recorder/status (latched, for operators' tools and benchmarks): see `status`."""
        self.pub_status.publish(String(data=json.dumps(self.status(recording))))

    def _on_status_timer(self) -> None:
        if self._episode is not None:
            self._publish_status(True)

    # --- samples -----------------------------------------------------------------------------
    def _sample(self, stream: str, value: np.ndarray, stamp, info=None) -> None:
        """Count and enqueue one sample: the only work done on the executor thread."""
        received = self.now()
        if stamp is None:
            captured = received
        else:
            captured = stamp if isinstance(stamp, float) else convert.from_time(stamp)
        with self._lock:
            ep = self._episode
            if ep is None:
                return
            counts = ep.count(stream)
            counts.on_receive(info)
            size = value.nbytes
            queued = self._enqueued_bytes - self._written_bytes
            if queued + size > self.queue_bytes:
                counts.dropped += 1
                return
            self._enqueued_bytes += size
            self.max_queued_bytes = max(self.max_queued_bytes, queued + size)
            counts.enqueued += 1
            self._queue.put(("sample", stream, value, captured, received, counts))

    def _pose(self, stream: str, msg: PoseStamped) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        self._sample(stream, np.array([p.x, p.y, p.z, o.x, o.y, o.z, o.w]), msg.header.stamp)

    def _on_joints(self, msg: JointState, info) -> None:          # two arguments: rclpy passes the message info
        self._sample("joint_pos", np.array(msg.position), msg.header.stamp, info)
        self._sample("joint_vel", np.array(msg.velocity), msg.header.stamp, info)

    def _on_taken(self, msg: Float64MultiArray, info) -> None:     # two arguments: rclpy passes the message info
        """[tick stamp, target stamp, gripper, physics time] of a tick that took a command: (target stamp, gripper,
        the twin's physics time or NaN) at the tick."""
        if len(msg.data) == 4:
            self._sample("action_taken", np.array(msg.data[1:4]), float(msg.data[0]), info)

    def _on_wrench(self, msg: WrenchStamped) -> None:
        f, t = msg.wrench.force, msg.wrench.torque
        self._sample("wrench", np.array([f.x, f.y, f.z, t.x, t.y, t.z]), msg.header.stamp)

    def _image_callback(self, stream: str):
        def on_image(msg: Image, info) -> None:         # two arguments: rclpy passes the message info
            self._on_image(stream, msg, info)
        return on_image

    def _on_image(self, stream: str, msg: Image, info=None) -> None:
        try:
            image = convert.parse_image(msg)          # a view of the message's buffer; the message is not reused
        except convert.MessageError as exc:
            self.errors += 1
            self.get_logger().error(f"{stream}: {exc}", throttle_duration_sec=2.0)
            return
        self._sample(stream, image, msg.header.stamp, info)

    def _on_instruction(self, msg: String) -> None:
        self.instruction = msg.data

    def _on_sim_episode(self, msg: String) -> None:
        """The twin's episode (task, seed): stored so the episode can be replayed from the same start."""
        try:
            self.sim_episode = json.loads(msg.data)
        except json.JSONDecodeError as exc:
            self.get_logger().error(f"sim/episode: {exc}")

    def _twin_episode(self) -> dict:
        """The twin's episode (source, seed, task) as metadata, {} off the twin. Taken at start and again at
        commit: the latched sim/episode of the reset before an episode can reach us after recorder/start
        (seen on a loaded machine), but not after the episode's end."""
        if not self.sim_episode:
            return {}
        return {"source": "twin", "seed": self.sim_episode.get("seed"), "task": self.sim_episode.get("task", self.task)}

    def _on_tick(self) -> None:
        """The control clock; alignment to it is computed at commit, when every capture stamp is known."""
        tick = self.now()
        self._sample("tick", np.array(tick), tick)

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
            meta.update(self._twin_episode())
            self._episode = self._last = _Episode(meta)
            self._queue.put(("begin", meta, self._episode))
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
                    stamps, episode = {}, item[2]
                elif kind == "sample":
                    self._written_bytes += item[2].nbytes
                    if writer is not None:
                        writer.append(item[1], item[2], item[3], item[4])
                        stamps.setdefault(item[1], []).append(item[3])
                        item[5].written += 1
                elif kind in ("commit", "discard"):
                    done = item[1]
                    if writer is None:
                        done.update(ok=False, message="no episode")
                    elif kind == "commit":
                        self._append_alignment(writer, stamps)
                        extra = {"final_sim_state": self.sim_state} if self.sim_state is not None else {}
                        extra.update(self._twin_episode())   # again: sim/episode can arrive after recorder/start
                        if self.instruction:                 # so can the latched instruction published just before
                            extra["instruction"] = self.instruction
                        with self._lock:                     # where each stream's samples went, losses included
                            extra["stream_counts"] = {k: c.as_dict() for k, c in sorted(episode.counts.items())}
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
