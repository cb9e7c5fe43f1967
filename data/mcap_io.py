"""rosbag2 MCAP files from and to episode stores: `robot-stack data export|import --format mcap`.

Export writes what `ros2 bag record` would have written from the running graph: profile ``ros2``, schemas
named ``pkg/msg/Type`` in ``ros2msg`` encoding (the definition and its dependencies, rosbag2's layout),
messages in CDR, topics absolute (``/arm/ee_pose``), log time = the sample's receive stamp, header stamp =
its capture stamp. Topics and types are the stack's own (see recorder_node, camera_node, arm_node)::

    /<cam>/color/image_raw          sensor_msgs/msg/Image (rgb8)         <cam>_rgb
      or .../image_raw/compressed   sensor_msgs/msg/CompressedImage (png) with --compressed
    /<cam>/color/camera_info        sensor_msgs/msg/CameraInfo           from the episode's camera calibration
    /joint_states                   sensor_msgs/msg/JointState           joint_pos (+ joint_vel)
    /arm/ee_pose                    geometry_msgs/msg/PoseStamped        ee_pose (x y z qx qy qz qw)
    /arm/wrench                     geometry_msgs/msg/WrenchStamped      wrench
    /arm/gripper                    sensor_msgs/msg/JointState           gripper
    /arm/action_chunk               trajectory_msgs/msg/MultiDOFJointTrajectory   action_pose + action_gripper
                                    (the policy server's chunk layout: joints "ee" and "gripper", one point a row)
    /teleop/intervention            std_msgs/msg/Bool                    intervention
    /task/instruction               std_msgs/msg/String                  the episode's instruction
    /robot_stack/streams/<name>     std_msgs/msg/Float64MultiArray       any other stream (tick, reward, ...)

Episodes that overlap in time (the expert's start at 0 s) are laid end to end, 1 s apart; MCAP metadata
records (``robot_stack.episode``: time range, shift, the episode's metadata) let import restore them exactly.
Import also takes a bag as `ros2 bag record` writes it from the graph (arm/target_pose + arm/gripper_cmd as
the recorder reads actions, or arm/action_chunk's first point). Its episodes: the given time ranges, else the
recorder's service calls (recorded with --include-services), else its status topic, else one per file.
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Iterable

import numpy as np

from .errors import StoreError
from .store import EpisodeStore

# Message definitions (ROS 2 Kilted's, comments dropped, nested types fully qualified), as rosbag2 stores them.
MSG_DEFS = {
    "builtin_interfaces/Time": "int32 sec\nuint32 nanosec",
    "builtin_interfaces/Duration": "int32 sec\nuint32 nanosec",
    "std_msgs/Header": "builtin_interfaces/Time stamp\nstring frame_id",
    "std_msgs/Float64": "float64 data",
    "std_msgs/String": "string data",
    "std_msgs/Bool": "bool data",
    "std_msgs/MultiArrayDimension": "string label\nuint32 size\nuint32 stride",
    "std_msgs/MultiArrayLayout": "std_msgs/MultiArrayDimension[] dim\nuint32 data_offset",
    "std_msgs/Float64MultiArray": "std_msgs/MultiArrayLayout layout\nfloat64[] data",
    "sensor_msgs/Image": "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\n"
                         "uint32 step\nuint8[] data",
    "sensor_msgs/CompressedImage": "std_msgs/Header header\nstring format\nuint8[] data",
    "sensor_msgs/RegionOfInterest": "uint32 x_offset\nuint32 y_offset\nuint32 height\nuint32 width\nbool do_rectify",
    "sensor_msgs/CameraInfo": "std_msgs/Header header\nuint32 height\nuint32 width\nstring distortion_model\n"
                              "float64[] d\nfloat64[9] k\nfloat64[9] r\nfloat64[12] p\nuint32 binning_x\n"
                              "uint32 binning_y\nsensor_msgs/RegionOfInterest roi",
    "sensor_msgs/JointState": "std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\n"
                              "float64[] effort",
    "geometry_msgs/Point": "float64 x\nfloat64 y\nfloat64 z",
    "geometry_msgs/Vector3": "float64 x\nfloat64 y\nfloat64 z",
    "geometry_msgs/Quaternion": "float64 x 0\nfloat64 y 0\nfloat64 z 0\nfloat64 w 1",
    "geometry_msgs/Pose": "geometry_msgs/Point position\ngeometry_msgs/Quaternion orientation",
    "geometry_msgs/PoseStamped": "std_msgs/Header header\ngeometry_msgs/Pose pose",
    "geometry_msgs/Wrench": "geometry_msgs/Vector3 force\ngeometry_msgs/Vector3 torque",
    "geometry_msgs/WrenchStamped": "std_msgs/Header header\ngeometry_msgs/Wrench wrench",
    "geometry_msgs/Transform": "geometry_msgs/Vector3 translation\ngeometry_msgs/Quaternion rotation",
    "geometry_msgs/Twist": "geometry_msgs/Vector3 linear\ngeometry_msgs/Vector3 angular",
    "trajectory_msgs/MultiDOFJointTrajectoryPoint": "geometry_msgs/Transform[] transforms\ngeometry_msgs/Twist[] "
                                                    "velocities\ngeometry_msgs/Twist[] accelerations\n"
                                                    "builtin_interfaces/Duration time_from_start",
    "trajectory_msgs/MultiDOFJointTrajectory": "std_msgs/Header header\nstring[] joint_names\n"
                                               "trajectory_msgs/MultiDOFJointTrajectoryPoint[] points",
}
SEPARATOR = "=" * 80
STREAM_TOPIC = "/robot_stack/streams/"
EPISODE_GAP_NS = 1_000_000_000
BASE_FRAME = "base"


def msgdef(datatype: str) -> str:
    """rosbag2's schema text for ``pkg/Type``: its definition, then each dependency after a separator line."""
    order: list[str] = []

    def visit(t: str) -> None:
        for line in MSG_DEFS[t].splitlines():
            ftype = line.split()[0].split("[")[0]
            if "/" in ftype and ftype not in order:
                order.append(ftype)
                visit(ftype)

    visit(datatype)
    parts = [MSG_DEFS[datatype]] + [f"{SEPARATOR}\nMSG: {t}\n{MSG_DEFS[t]}" for t in order]
    return "\n".join(parts) + "\n"


def schema_name(datatype: str) -> str:
    pkg, name = datatype.split("/")
    return f"{pkg}/msg/{name}"


def _ns(seconds: float) -> int:
    return int(round(float(seconds) * 1e9))


def _stamp(ns: int) -> dict:
    return {"sec": int(ns // 1_000_000_000), "nanosec": int(ns % 1_000_000_000)}


def _header(ns: int, frame_id: str) -> dict:
    return {"stamp": _stamp(ns), "frame_id": frame_id}


def _from_stamp(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _latest(stamps: np.ndarray, at: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(stamps, at + 1e-6, side="right") - 1, 0, max(len(stamps) - 1, 0))


# ---- export --------------------------------------------------------------------------------------
class _Out:
    """A ros2-profile MCAP writer: schemas registered once, messages of an episode buffered and written in time order."""

    def __init__(self, path: Path):
        from mcap.writer import CompressionType
        from mcap_ros2.writer import Writer
        self.file = open(path, "wb")
        self.writer = Writer(self.file, compression=CompressionType.ZSTD)
        self.schemas: dict[str, object] = {}
        self.pending: list[tuple[int, int, str, str, dict]] = []
        self.counts: dict[str, int] = {}

    def add(self, topic: str, datatype: str, message: dict, log_ns: int) -> None:
        self.pending.append((log_ns, len(self.pending), topic, datatype, message))

    def flush(self) -> None:
        for log_ns, _, topic, datatype, message in sorted(self.pending, key=lambda m: (m[0], m[1])):
            schema = self.schemas.get(datatype)
            if schema is None:
                schema = self.schemas[datatype] = self.writer.register_msgdef(schema_name(datatype), msgdef(datatype))
            self.writer.write_message(topic, schema, message, log_time=log_ns, publish_time=log_ns,
                                      sequence=self.counts.get(topic, 0))
            self.counts[topic] = self.counts.get(topic, 0) + 1
        self.pending.clear()

    def close(self) -> None:
        self.flush()
        self.writer.finish()
        self.file.close()


def _png(img: np.ndarray) -> bytes:
    import imageio.v3 as iio
    return iio.imwrite("<bytes>", img, extension=".png")


def export_mcap(store_path: str | Path, out: str | Path, *, overwrite: bool = False,
                episodes: Iterable[int] | None = None, compressed: bool = False) -> dict:
    """Write the episodes of the store at `store_path` into the new MCAP file `out` (see the module docstring)."""
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise StoreError(f"{out}: already exists (pass --overwrite to replace it)")
        if not out.is_file() or out.read_bytes()[:8] != b"\x89MCAP0\r\n":
            raise StoreError(f"{out}: refusing to overwrite: not an MCAP file")
    store = EpisodeStore.open(store_path)
    ep_list = list(range(store.num_episodes)) if episodes is None else [store._check_index(k) for k in episodes]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
    writer = _Out(tmp)
    prev_end = -1
    summary = []
    try:
        writer.writer.add_metadata("robot_stack.streams", {
            name: json.dumps({"dtype": np.dtype(s.dtype).name, "shape": list(s.shape)}) for name, s in store.streams.items()})
        for k in ep_list:
            data = store.read_episode(k)
            meta = store.metadata(k)
            stamps = [v["receive_stamp"] for v in data.values() if len(v["receive_stamp"])] + \
                     [v["capture_stamp"] for v in data.values() if len(v["capture_stamp"])]
            if not stamps:
                continue
            first = min(_ns(s.min()) for s in stamps)
            last = max(_ns(s.max()) for s in stamps)
            shift = prev_end + EPISODE_GAP_NS - first if first <= prev_end else 0
            shift = max(shift, -first)     # log times are unsigned
            _episode_messages(writer, data, meta, shift, compressed)
            writer.flush()
            start, end = first + shift, last + shift
            prev_end = end
            kept = {key: v for key, v in meta.items() if key not in ("episode", "streams")}
            writer.writer.add_metadata("robot_stack.episode", {
                "episode": str(k), "start_ns": str(start), "end_ns": str(end), "shift_ns": str(shift),
                "metadata": json.dumps(kept)})
            summary.append({"episode": k, "start_s": start / 1e9, "end_s": end / 1e9})
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        try:
            writer.file.close()
        finally:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        store.close()
    return {"bag": str(out), "episodes": summary, "messages": dict(sorted(writer.counts.items()))}


def _episode_messages(w: _Out, data: dict, meta: dict, shift: int, compressed: bool) -> None:
    done: set[str] = set()
    robot = str(meta.get("robot") or "robot")
    cameras = meta.get("cameras") or {}

    def times(stream: str) -> tuple[np.ndarray, np.ndarray]:
        d = data[stream]
        return (np.round(d["capture_stamp"] * 1e9).astype(np.int64) + shift,
                np.round(d["receive_stamp"] * 1e9).astype(np.int64) + shift)

    for name in [n for n in data if n.endswith("_rgb") and data[n]["data"].ndim == 4 and data[n]["data"].shape[-1] == 3
                 and data[n]["data"].dtype == np.uint8]:
        cam = name[:-4]
        frame_id = f"{cam}_color_optical_frame"
        cap, rec = times(name)
        calib = cameras.get(cam) or {}
        for img, c, r in zip(data[name]["data"], cap, rec):
            h, wd = img.shape[:2]
            if compressed:
                w.add(f"/{cam}/color/image_raw/compressed", "sensor_msgs/CompressedImage",
                      {"header": _header(c, frame_id), "format": "rgb8; png compressed rgb8", "data": _png(img)}, r)
            else:
                w.add(f"/{cam}/color/image_raw", "sensor_msgs/Image",
                      {"header": _header(c, frame_id), "height": h, "width": wd, "encoding": "rgb8", "is_bigendian": 0,
                       "step": wd * 3, "data": np.ascontiguousarray(img).tobytes()}, r)
            if calib.get("k") is not None:
                k = np.asarray(calib["k"], dtype=np.float64).reshape(3, 3)
                p = np.zeros((3, 4))
                p[:, :3] = k
                w.add(f"/{cam}/color/camera_info", "sensor_msgs/CameraInfo",
                      {"header": _header(c, frame_id), "height": int(calib.get("height", h)),
                       "width": int(calib.get("width", wd)), "distortion_model": "plumb_bob", "d": [0.0] * 5,
                       "k": k.ravel().tolist(), "r": np.eye(3).ravel().tolist(), "p": p.ravel().tolist(),
                       "binning_x": 0, "binning_y": 0,
                       "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False}}, r)
        done.add(name)

    def pose_msgs(stream: str, topic: str) -> None:
        cap, rec = times(stream)
        for v, c, r in zip(data[stream]["data"], cap, rec):
            w.add(topic, "geometry_msgs/PoseStamped", {"header": _header(c, BASE_FRAME), "pose": {
                "position": {"x": float(v[0]), "y": float(v[1]), "z": float(v[2])},
                "orientation": {"x": float(v[3]), "y": float(v[4]), "z": float(v[5]), "w": float(v[6])}}}, r)
        done.add(stream)

    if "ee_pose" in data and data["ee_pose"]["data"].shape[1:] == (7,):
        pose_msgs("ee_pose", "/arm/ee_pose")
    if "joint_pos" in data and data["joint_pos"]["data"].ndim == 2:
        q = data["joint_pos"]["data"]
        cap, rec = times("joint_pos")
        vel = data.get("joint_vel")
        same = vel is not None and vel["data"].shape == q.shape and np.array_equal(vel["capture_stamp"],
                                                                                   data["joint_pos"]["capture_stamp"])
        names = [f"{robot}_joint{i + 1}" for i in range(q.shape[1])]
        for i, (c, r) in enumerate(zip(cap, rec)):
            w.add("/joint_states", "sensor_msgs/JointState", {
                "header": _header(c, ""), "name": names, "position": q[i].astype(float).tolist(),
                "velocity": vel["data"][i].astype(float).tolist() if same else [], "effort": []}, r)
        done.add("joint_pos")
        if same:
            done.add("joint_vel")
    if "gripper" in data:
        cap, rec = times("gripper")
        for v, c, r in zip(data["gripper"]["data"], cap, rec):
            w.add("/arm/gripper", "sensor_msgs/JointState", {"header": _header(c, ""), "name": ["gripper"],
                  "position": [float(np.ravel(v)[0])], "velocity": [0.0], "effort": []}, r)
        done.add("gripper")
    if "wrench" in data and data["wrench"]["data"].shape[1:] == (6,):
        cap, rec = times("wrench")
        for v, c, r in zip(data["wrench"]["data"], cap, rec):
            w.add("/arm/wrench", "geometry_msgs/WrenchStamped", {"header": _header(c, BASE_FRAME), "wrench": {
                "force": dict(zip("xyz", map(float, v[:3]))), "torque": dict(zip("xyz", map(float, v[3:])))}}, r)
        done.add("wrench")
    if "action_pose" in data and data["action_pose"]["data"].shape[1:] == (7,) and len(data["action_pose"]["data"]):
        a = data["action_pose"]["data"]
        cap, rec = times("action_pose")
        grip = data.get("action_gripper")
        g = (np.ravel(grip["data"][_latest(grip["capture_stamp"], data["action_pose"]["capture_stamp"])])
             if grip is not None and len(grip["data"]) else np.zeros(len(a)))
        for v, gv, c, r in zip(a, g, cap, rec):
            ee = {"translation": dict(zip("xyz", map(float, v[:3]))), "rotation": dict(zip("xyzw", map(float, v[3:7])))}
            gt = {"translation": {"x": float(gv), "y": 0.0, "z": 0.0}, "rotation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}}
            w.add("/arm/action_chunk", "trajectory_msgs/MultiDOFJointTrajectory", {
                "header": _header(c, BASE_FRAME), "joint_names": ["ee", "gripper"],
                "points": [{"transforms": [ee, gt], "velocities": [], "accelerations": [],
                            "time_from_start": {"sec": 0, "nanosec": 0}}]}, r)
        done.add("action_pose")
        if grip is not None and np.array_equal(grip["capture_stamp"], data["action_pose"]["capture_stamp"]):
            done.add("action_gripper")
    if "intervention" in data and data["intervention"]["data"].size == len(data["intervention"]["data"]):
        cap, rec = times("intervention")
        for v, c, r in zip(data["intervention"]["data"], cap, rec):
            w.add("/teleop/intervention", "std_msgs/Bool", {"data": bool(np.ravel(v)[0])}, r)
        done.add("intervention")
    if meta.get("instruction"):
        starts = [times(n)[1].min() for n in data if len(data[n]["receive_stamp"])]
        w.add("/task/instruction", "std_msgs/String", {"data": str(meta["instruction"])}, int(min(starts)))
    for name in data:
        if name in done:
            continue
        cap, rec = times(name)
        values = data[name]["data"]
        shape = values.shape[1:]
        dims = [{"label": f"dim{i}", "size": int(s), "stride": int(np.prod(shape[i:], dtype=int))}
                for i, s in enumerate(shape)]
        for v, c, r in zip(values, cap, rec):
            w.add(STREAM_TOPIC + name, "std_msgs/Float64MultiArray", {
                "layout": {"dim": dims, "data_offset": 0}, "data": np.asarray(v, dtype=np.float64).ravel().tolist()}, r)


# ---- import --------------------------------------------------------------------------------------
def parse_range(text: str) -> tuple[float, float]:
    """"START:END" in seconds -> (start, end)."""
    try:
        a, b = text.split(":")
        start, end = float(a), float(b)
    except ValueError:
        raise ValueError(f"--episode: expected START:END in seconds, got {text!r}") from None
    if not end > start:
        raise ValueError(f"--episode {text}: END must be after START")
    return start, end


def _decode_image(msg, compressed: bool, path: Path, topic: str) -> np.ndarray:
    if compressed:
        import imageio.v3 as iio
        img = iio.imread(bytes(msg.data))
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = img[..., :3]
        fmt = str(msg.format).split(";")[0].strip().lower()
        return img[..., ::-1] if fmt == "bgr8" else img   # image_transport's "<encoding>; <codec> ..." format
    if msg.encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"{path}: {topic}: image encoding {msg.encoding!r}; expected rgb8 or bgr8")
    row = msg.width * 3
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if msg.step < row or len(buf) < msg.height * msg.step:
        raise ValueError(f"{path}: {topic}: image data size {len(buf)} does not match {msg.height}x{msg.width}")
    img = buf[:msg.height * msg.step].reshape(msg.height, msg.step)[:, :row].reshape(msg.height, msg.width, 3)
    return img[..., ::-1] if msg.encoding == "bgr8" else img


RECORDER_SERVICES = ("start", "stop", "success", "fail", "discard")
_WANTED = ("/joint_states", "/arm/ee_pose", "/arm/target_pose", "/arm/wrench", "/arm/gripper", "/arm/gripper_cmd",
           "/arm/action_chunk", "/teleop/intervention", "/task/instruction", "/recorder/status")


def _wanted(topic: str) -> bool:
    return (topic in _WANTED or topic.startswith(STREAM_TOPIC) or topic.endswith("/color/image_raw")
            or topic.endswith("/color/image_raw/compressed") or topic.endswith("/color/camera_info"))


def _trigger_event(data: bytes) -> tuple[int, bytes, int, bool | None] | None:
    """(event_type, client_gid, sequence_number, response success or None) of a std_srvs/srv/Trigger_Event in
    CDR, as rosbag2 records service events (`ros2 bag record --include-services`); None if it does not parse.
    Read by hand: mcap-ros2-support refuses the type name ('Trigger_Event' has an underscore)."""
    import struct
    try:
        if data[:2] not in (b"\x00\x01", b"\x00\x00"):
            return None
        fmt = "<" if data[1] == 1 else ">"
        b = data[4:]
        event_type = b[0]
        gid = bytes(b[12:28])
        seq = struct.unpack_from(fmt + "q", b, 32)[0]
        n_req = struct.unpack_from(fmt + "I", b, 40)[0]
        pos = 44 + n_req                       # uint8 structure_needs_at_least_one_member per request
        pos = (pos + 3) & ~3
        n_resp = struct.unpack_from(fmt + "I", b, pos)[0]
        success = bool(b[pos + 4]) if n_resp else None
        return event_type, gid, seq, success
    except (IndexError, struct.error):
        return None


def _recorder_episodes(calls: list[tuple[int, str, bytes]], status: list[tuple[int, bool]]) -> list[tuple]:
    """Episodes (start_ns, end_ns, success) from the recorder's service calls, else its status transitions.

    One call = the events of one (client, sequence number) on a service's event topic (or events less than
    0.5 s apart where they do not parse); refused calls (response success false: "already recording", "not
    recording") do nothing. start opens an episode, stop/success/fail close it (success None/True/False),
    discard drops it; an episode still open at the end of the bag was never committed and is left out."""
    grouped: dict[tuple, dict] = {}
    last_seen: dict[str, tuple] = {}
    for log, service, data in sorted(calls, key=lambda c: c[0]):
        ev = _trigger_event(data)
        if ev is not None:
            key = (service, ev[1], ev[2])
        else:
            prev = last_seen.get(service)
            key = prev if prev is not None and log - grouped[prev]["last"] < 500_000_000 else (service, log)
        call = grouped.setdefault(key, {"service": service, "t": log, "last": log, "ok": None})
        call["last"] = log
        last_seen[service] = key
        if ev is not None and ev[3] is not None:
            call["ok"] = ev[3]
    episodes, open_at = [], None
    if grouped:
        for call in sorted(grouped.values(), key=lambda c: c["t"]):
            if call["ok"] is False:
                continue
            if call["service"] == "start":
                open_at = call["t"] if open_at is None else open_at
            elif call["service"] == "discard":
                open_at = None
            elif open_at is not None:
                episodes.append((open_at, call["t"], {"success": True, "fail": False}.get(call["service"])))
                open_at = None
        return episodes
    recording = False
    for log, now in sorted(status):
        if now and not recording:
            open_at = log
        elif recording and not now and open_at is not None:
            episodes.append((open_at, log, None))
        recording = now
    return episodes


def _read_bag(path: Path, namespace: str):
    """The stack's topics of a bag decoded: [(stream, value, capture_ns, log_ns)], instructions, camera infos,
    metadata records, and the recorder's episodes where its services or status were recorded.

    Only the topics read are decoded: a bag may hold others whose types mcap-ros2-support cannot parse."""
    from mcap.exceptions import McapError
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    prefix = "/" + namespace.strip("/") if namespace.strip("/") else ""
    samples: list[tuple[str, np.ndarray, int, int]] = []
    instructions: list[tuple[int, str]] = []
    infos: dict[str, dict] = {}
    metadata: dict[str, list[dict]] = {}
    calls: list[tuple[int, str, bytes]] = []
    status: list[tuple[int, bool]] = []
    decoders: dict[int, object] = {}
    factory = DecoderFactory()
    have_target = False
    try:
        with open(path, "rb") as f:
            reader = make_reader(f)
            for record in reader.iter_metadata():
                metadata.setdefault(record.name, []).append(dict(record.metadata))
            for schema, channel, message in reader.iter_messages(log_time_order=True):
                topic = channel.topic if channel.topic.startswith("/") else "/" + channel.topic
                if prefix:
                    if not topic.startswith(prefix + "/"):
                        continue
                    topic = topic[len(prefix):]
                log = int(message.log_time)
                service = topic[len("/recorder/"):-len("/_service_event")] \
                    if topic.startswith("/recorder/") and topic.endswith("/_service_event") else None
                if service in RECORDER_SERVICES:
                    calls.append((log, service, bytes(message.data)))
                    continue
                if not _wanted(topic) or schema is None:
                    continue
                decode = decoders.get(schema.id)
                if decode is None:
                    decode = decoders[schema.id] = factory.decoder_for(channel.message_encoding, schema)
                    if decode is None:
                        raise ValueError(f"{path}: {topic}: cannot decode {channel.message_encoding!r} messages")
                msg = decode(message.data)
                stamp = _from_stamp(msg.header.stamp) if hasattr(msg, "header") else log
                kind = schema.name
                if topic == "/recorder/status" and kind.endswith("String"):
                    try:
                        status.append((log, bool(json.loads(msg.data).get("recording"))))
                    except (ValueError, AttributeError):
                        pass
                elif topic == "/joint_states" and kind.endswith("JointState"):
                    samples.append(("joint_pos", np.asarray(msg.position, dtype=np.float64), stamp, log))
                    if len(msg.velocity):
                        samples.append(("joint_vel", np.asarray(msg.velocity, dtype=np.float64), stamp, log))
                elif topic in ("/arm/ee_pose", "/arm/target_pose") and kind.endswith("PoseStamped"):
                    p, o = msg.pose.position, msg.pose.orientation
                    stream = "ee_pose" if topic == "/arm/ee_pose" else "action_pose"
                    have_target |= stream == "action_pose"
                    samples.append((stream, np.array([p.x, p.y, p.z, o.x, o.y, o.z, o.w]), stamp, log))
                elif topic == "/arm/wrench" and kind.endswith("WrenchStamped"):
                    fo, to = msg.wrench.force, msg.wrench.torque
                    samples.append(("wrench", np.array([fo.x, fo.y, fo.z, to.x, to.y, to.z]), stamp, log))
                elif topic == "/arm/gripper" and kind.endswith("JointState"):
                    samples.append(("gripper", np.asarray(msg.position[:1], dtype=np.float64), stamp, log))
                elif topic == "/arm/gripper_cmd" and kind.endswith("Float64"):
                    samples.append(("action_gripper_cmd", np.array([msg.data]), log, log))
                elif topic == "/arm/action_chunk" and kind.endswith("MultiDOFJointTrajectory"):
                    if list(msg.joint_names) != ["ee", "gripper"] or not msg.points or len(msg.points[0].transforms) != 2:
                        raise ValueError(f"{path}: {topic}: not the stack's action chunk (joints ee, gripper)")
                    pt = msg.points[0]
                    ee, g = pt.transforms
                    t = stamp + _from_stamp(pt.time_from_start)
                    tr, ro = ee.translation, ee.rotation
                    samples.append(("chunk_pose", np.array([tr.x, tr.y, tr.z, ro.x, ro.y, ro.z, ro.w]), t, log))
                    samples.append(("chunk_gripper", np.array([g.translation.x]), t, log))
                elif topic == "/teleop/intervention" and kind.endswith("Bool"):
                    samples.append(("intervention", np.array([msg.data]), log, log))
                elif topic == "/task/instruction" and kind.endswith("String"):
                    instructions.append((log, str(msg.data)))
                elif topic.startswith(STREAM_TOPIC) and kind.endswith("Float64MultiArray"):
                    shape = tuple(int(d.size) for d in msg.layout.dim)
                    samples.append((topic[len(STREAM_TOPIC):], np.asarray(msg.data, dtype=np.float64).reshape(shape),
                                    log, log))
                elif topic.endswith("/color/image_raw") and kind.endswith("/Image"):
                    cam = topic[1:-len("/color/image_raw")]
                    samples.append((f"{cam}_rgb", _decode_image(msg, False, path, topic), stamp, log))
                elif topic.endswith("/color/image_raw/compressed") and kind.endswith("CompressedImage"):
                    cam = topic[1:-len("/color/image_raw/compressed")]
                    samples.append((f"{cam}_rgb", _decode_image(msg, True, path, topic), stamp, log))
                elif topic.endswith("/color/camera_info") and kind.endswith("CameraInfo"):
                    cam = topic[1:-len("/color/camera_info")]
                    infos.setdefault(cam, {"k": np.asarray(msg.k, dtype=np.float64).reshape(3, 3).tolist(),
                                           "height": int(msg.height), "width": int(msg.width)})
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (McapError, ValueError, EOFError, KeyError, AttributeError, TypeError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(str(path)):
            raise
        raise ValueError(f"{path}: unreadable MCAP: {type(exc).__name__}: {exc}") from exc
    # Actions: what the recorder records (arm/target_pose + arm/gripper_cmd), else the chunks' first points
    has_chunks = any(s[0] == "chunk_pose" for s in samples)
    renames = {"chunk_pose": "action_pose", "chunk_gripper": "action_gripper", "action_gripper_cmd": "action_gripper"}
    out = []
    for s in samples:
        if s[0] in ("chunk_pose", "chunk_gripper") and have_target:
            continue
        if s[0] == "action_gripper_cmd" and has_chunks and not have_target:
            continue
        out.append((renames.get(s[0], s[0]), *s[1:]))
    return out, instructions, infos, metadata, _recorder_episodes(calls, status)


def import_mcap(paths: list[str | Path] | str | Path, out: str | Path, *, ranges: list[tuple[float, float]] | None = None,
                namespace: str = "", task: str = "", overwrite: bool = False, durable: bool = True) -> dict:
    """Bags of the stack's topics (see the module docstring) into a new episode store at `out`.

    Episodes: `ranges` (seconds on the bag's clock, by log time) when given; else the episodes a robot-stack
    export recorded in the bag's metadata (stamps and metadata restored); else one episode per bag."""
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not paths:
        raise ValueError("no MCAP file to import")
    out = Path(out)
    from .lerobot_io import new_store
    from .tools import _check_output
    _check_output(out, paths, overwrite)      # before reading the bags: a wrong OUT fails fast
    bags = [(p, *_read_bag(p, namespace)) for p in paths]
    written = []
    with new_store(out, paths, overwrite, durable, {"source": "mcap", "bags": [str(p) for p in paths]}) as store:
        for path, samples, instructions, infos, metadata, recorded in bags:
            dtypes = {n: json.loads(v) for rec in metadata.get("robot_stack.streams", []) for n, v in rec.items()}
            if ranges:
                episodes = [(int(a * 1e9), int(b * 1e9), 0, None) for a, b in ranges]
            elif metadata.get("robot_stack.episode"):
                episodes = [(int(m["start_ns"]), int(m["end_ns"]), int(m["shift_ns"]), json.loads(m["metadata"]))
                            for m in metadata["robot_stack.episode"]]
            elif recorded:
                episodes = [(a, b, 0, None if ok is None else {"success": ok}) for a, b, ok in recorded]
            else:
                logs = [s[3] for s in samples]
                if not logs:
                    raise ValueError(f"{path}: no messages on the stack's topics (namespace {namespace or '/'!r})")
                episodes = [(min(logs), max(logs), 0, None)]
            for start, end, shift, meta in episodes:
                chosen = [s for s in samples if start <= s[3] <= end]
                if not chosen:
                    raise ValueError(f"{path}: no messages between {start / 1e9:.3f} s and {end / 1e9:.3f} s")
                if meta is None or set(meta) == {"success"}:   # not an export's own metadata
                    meta = {"task": task, "operator": "rosbag", "bag": str(path), "start_s": start / 1e9,
                            "end_s": end / 1e9, **(meta or {})}
                meta = dict(meta)
                if infos and "cameras" not in meta:
                    meta["cameras"] = infos
                said = [text for t, text in instructions if t <= end]
                if said and not meta.get("instruction"):
                    meta["instruction"] = said[-1]
                success = meta.pop("success", None)
                streams: dict[str, list] = {}
                for name, value, cap, log in chosen:
                    streams.setdefault(name, []).append((cap, log, value))
                with store.begin_episode(meta) as writer:
                    for name, rows in streams.items():
                        rows.sort(key=lambda r: r[0])
                        values = np.stack([r[2] for r in rows])
                        spec = dtypes.get(name)
                        if spec is not None:
                            values = values.reshape(len(rows), *spec["shape"]).astype(spec["dtype"])
                        cap = (np.array([r[0] for r in rows], dtype=np.int64) - shift) / 1e9
                        rec = (np.array([r[1] for r in rows], dtype=np.int64) - shift) / 1e9
                        writer.append_many(name, values, cap, rec)
                    k = writer.commit(success=success)
                written.append({"episode": k, "bag": str(path), "rows": {n: len(r) for n, r in streams.items()}})
    return {"store": str(out), "episodes": written}
