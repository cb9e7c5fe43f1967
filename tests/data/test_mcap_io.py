"""rosbag2 MCAP both ways (issue 34, item 4): `data export --format mcap` writes the stack's topics with standard
ROS 2 types, readable by the plain `mcap` reader and decodable by the real ROS 2 type support; `data import
--format mcap` reads it back exactly, and reads a bag of the graph's topics as `ros2 bag record` writes it
(episodes by time range or one per bag)."""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from robot_stack.cli import main
from robot_stack.data import EpisodeStore
from robot_stack.data.mcap_io import MSG_DEFS, msgdef, schema_name

os.environ.setdefault("MUJOCO_GL", "egl")
pytest.importorskip("mcap_ros2")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from robot_stack.sim.expert_data import generate
    path = tmp_path_factory.mktemp("mcap") / "experts.zarr"
    generate("reach", "panda", 2, seed=1000, out=str(path), image_size=32, progress=False, durable=False)
    return path


def _run(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if rc == 0 else None), out.err


@pytest.fixture(scope="module")
def bag(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("bag") / "experts.mcap"
    assert main(["data", "export", str(store), "--format", "mcap", str(out)]) == 0
    return out


def test_round_trip_is_exact(store, bag, tmp_path, capsys):
    rc, result, err = _run(["data", "import", str(bag), "--format", "mcap", str(tmp_path / "back.zarr")], capsys)
    assert rc == 0, err
    a, b = EpisodeStore.open(store), EpisodeStore.open(tmp_path / "back.zarr")
    assert b.num_episodes == a.num_episodes == 2
    assert sorted(b.streams) == sorted(a.streams)
    for k in range(a.num_episodes):
        for name in a.streams:
            x, y = a.read_stream(k, name), b.read_stream(k, name)
            assert y["data"].dtype == x["data"].dtype and y["data"].shape == x["data"].shape, name
            np.testing.assert_array_equal(y["data"], x["data"], err_msg=name)
            np.testing.assert_allclose(y["capture_stamp"], x["capture_stamp"], atol=1e-9, rtol=0)
            np.testing.assert_allclose(y["receive_stamp"], x["receive_stamp"], atol=1e-9, rtol=0)
        ma, mb = a.metadata(k), b.metadata(k)
        for key in ("task", "instruction", "seed", "success", "cameras", "robot"):
            assert mb[key] == ma[key], key


def test_plain_mcap_reader_sees_ros2_schemas_channels_and_counts(store, bag):
    from mcap.reader import make_reader

    a = EpisodeStore.open(store)
    rows = {name: a.streams[name].length for name in a.streams}
    with open(bag, "rb") as f:
        reader = make_reader(f)
        header = reader.get_header()
        summary = reader.get_summary()
        assert header.profile == "ros2"
        schemas = {s.id: s for s in summary.schemas.values()}
        channels = {c.topic: c for c in summary.channels.values()}
        kinds = {t: schemas[c.schema_id].name for t, c in channels.items()}
        assert kinds == {
            "/front/color/image_raw": "sensor_msgs/msg/Image", "/wrist/color/image_raw": "sensor_msgs/msg/Image",
            "/front/color/camera_info": "sensor_msgs/msg/CameraInfo",
            "/wrist/color/camera_info": "sensor_msgs/msg/CameraInfo",
            "/joint_states": "sensor_msgs/msg/JointState", "/arm/gripper": "sensor_msgs/msg/JointState",
            "/arm/ee_pose": "geometry_msgs/msg/PoseStamped",
            "/arm/action_chunk": "trajectory_msgs/msg/MultiDOFJointTrajectory",
            "/task/instruction": "std_msgs/msg/String",
            "/robot_stack/streams/tick": "std_msgs/msg/Float64MultiArray",
            "/robot_stack/streams/reward": "std_msgs/msg/Float64MultiArray",
            "/robot_stack/streams/task_state": "std_msgs/msg/Float64MultiArray"}
        assert all(s.encoding == "ros2msg" for s in schemas.values())
        assert all(c.message_encoding == "cdr" for c in channels.values())
        counts = {t: summary.statistics.channel_message_counts[c.id] for t, c in channels.items()}
        assert counts["/front/color/image_raw"] == rows["front_rgb"] == 20
        assert counts["/arm/ee_pose"] == rows["ee_pose"]
        assert counts["/joint_states"] == rows["joint_pos"]
        assert counts["/arm/action_chunk"] == rows["action_pose"]
        assert counts["/front/color/camera_info"] == rows["front_rgb"]
        assert counts["/task/instruction"] == 2
        seen: dict[str, int] = {}
        last = -1
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            seen[channel.topic] = seen.get(channel.topic, 0) + 1
            assert message.log_time >= last      # written in time order, as a recorder writes
            last = message.log_time
        assert seen == counts
        episodes = [r for r in reader.iter_metadata() if r.name == "robot_stack.episode"]
        assert [int(r.metadata["episode"]) for r in episodes] == [0, 1]
        # the expert episodes both start at 0 s: the second is laid after the first
        assert int(episodes[1].metadata["start_ns"]) > int(episodes[0].metadata["end_ns"])


def test_messages_decode_with_the_real_ros2_type_support(store, bag):
    """CDR written from our definitions reads back through rclpy's deserializer with the installed messages."""
    serialization = pytest.importorskip("rclpy.serialization")
    from geometry_msgs.msg import PoseStamped
    from mcap.reader import make_reader
    from sensor_msgs.msg import CameraInfo, Image, JointState
    from trajectory_msgs.msg import MultiDOFJointTrajectory

    a = EpisodeStore.open(store)
    ep0 = a.read_episode(0)
    first = {}
    with open(bag, "rb") as f:
        for schema, channel, message in make_reader(f).iter_messages():
            first.setdefault(channel.topic, message.data)
    img = serialization.deserialize_message(first["/front/color/image_raw"], Image)
    assert (img.height, img.width, img.encoding, img.step) == (32, 32, "rgb8", 96)
    np.testing.assert_array_equal(np.frombuffer(bytes(img.data), np.uint8).reshape(32, 32, 3), ep0["front_rgb"]["data"][0])
    assert img.header.frame_id == "front_color_optical_frame"
    pose = serialization.deserialize_message(first["/arm/ee_pose"], PoseStamped)
    p, o = pose.pose.position, pose.pose.orientation
    np.testing.assert_array_equal([p.x, p.y, p.z, o.x, o.y, o.z, o.w], ep0["ee_pose"]["data"][0])
    js = serialization.deserialize_message(first["/joint_states"], JointState)
    np.testing.assert_array_equal(js.position, ep0["joint_pos"]["data"][0])
    assert list(js.name) == [f"panda_joint{i}" for i in range(1, 8)]
    chunk = serialization.deserialize_message(first["/arm/action_chunk"], MultiDOFJointTrajectory)
    from robot_stack.ros.convert import parse_chunk
    parsed = parse_chunk(chunk)      # the arm node's own parser accepts it
    np.testing.assert_array_equal(np.r_[parsed.positions[0], parsed.quats[0]], ep0["action_pose"]["data"][0])
    assert parsed.gripper[0] == ep0["action_gripper"]["data"][0, 0]
    info = serialization.deserialize_message(first["/front/color/camera_info"], CameraInfo)
    np.testing.assert_allclose(np.reshape(info.k, (3, 3)), a.metadata(0)["cameras"]["front"]["k"])


def _installed_msg(datatype: str) -> Path | None:
    pkg, name = datatype.split("/")
    prefixes = [sys.prefix, *os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)]
    for prefix in filter(None, prefixes):
        path = Path(prefix) / "share" / pkg / "msg" / f"{name}.msg"
        if path.is_file():
            return path
    return None


def _fields(text: str, pkg: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if not line or "=" in line.split()[1 if len(line.split()) > 1 else 0]:
            continue   # comments, constants
        ftype, name = line.split()[:2]
        base, _, array = ftype.partition("[")
        if base[0].isupper():                 # a type of the same package
            base = f"{pkg}/{base}"
        out.append((base + (f"[{array}" if array else ""), name))
    return out


@pytest.mark.parametrize("datatype", sorted(MSG_DEFS))
def test_message_definitions_match_the_installed_ros2_interfaces(datatype):
    path = _installed_msg(datatype)
    if path is None:
        pytest.skip(f"no installed {datatype}.msg (ros extra)")
    pkg = datatype.split("/")[0]
    assert _fields(MSG_DEFS[datatype], pkg) == _fields(path.read_text(), pkg)


def _graph_bag(path: Path, t0: float, n: int = 12, rate: float = 10.0):
    """A bag as `ros2 bag record` writes it from the running graph: wall-clock stamps, the recorder's topics."""
    from mcap_ros2.writer import Writer

    msgs = []
    rng = np.random.default_rng(0)
    for i in range(n):
        t = t0 + i / rate
        ns = int(round(t * 1e9))
        hdr = {"stamp": {"sec": ns // 10**9, "nanosec": ns % 10**9}, "frame_id": "base"}
        img = rng.integers(0, 255, (4, 6, 3), dtype=np.uint8)
        bgr = img[..., ::-1].copy()
        msgs.append((ns + 2_000_000, "/front/color/image_raw", "sensor_msgs/Image", {
            "header": {**hdr, "frame_id": "front_color_optical_frame"}, "height": 4, "width": 6, "encoding": "bgr8",
            "is_bigendian": 0, "step": 18, "data": bgr.tobytes()}, img))
        msgs.append((ns + 1_000_000, "/arm/ee_pose", "geometry_msgs/PoseStamped", {"header": hdr, "pose": {
            "position": {"x": 0.4 + i * 0.01, "y": 0.0, "z": 0.3}, "orientation": {"x": 1.0, "y": 0.0, "z": 0.0, "w": 0.0}}},
            None))
        msgs.append((ns + 1_000_000, "/joint_states", "sensor_msgs/JointState", {
            "header": hdr, "name": [f"j{k}" for k in range(7)], "position": [float(i)] * 7, "velocity": [0.5] * 7,
            "effort": []}, None))
        msgs.append((ns + 500_000, "/arm/target_pose", "geometry_msgs/PoseStamped", {"header": hdr, "pose": {
            "position": {"x": 0.5 + i * 0.01, "y": 0.1, "z": 0.2}, "orientation": {"x": 1.0, "y": 0.0, "z": 0.0, "w": 0.0}}},
            None))
        msgs.append((ns + 600_000, "/arm/gripper_cmd", "std_msgs/Float64", {"data": 1.0 if i < n // 2 else 0.0}, None))
    msgs.append((int(t0 * 1e9) - 5_000_000, "/task/instruction", "std_msgs/String", {"data": "pick up the red block"},
                 None))
    msgs.append((int(t0 * 1e9), "/other/topic", "std_msgs/String", {"data": "ignored"}, None))
    with open(path, "wb") as f:
        w = Writer(f)
        schemas = {}
        for log, topic, kind, msg, _ in sorted(msgs, key=lambda m: m[0]):
            if kind not in schemas:
                schemas[kind] = w.register_msgdef(schema_name(kind), msgdef(kind))
            w.write_message(topic, schemas[kind], msg, log_time=log, publish_time=log)
        w.finish()
    return [m[4] for m in sorted(msgs, key=lambda m: m[0]) if m[4] is not None]


def test_graph_recording_one_episode_per_bag_and_by_time_ranges(tmp_path, capsys):
    t0 = 1_765_000_000.0          # wall clock, as the graph stamps
    frames = _graph_bag(tmp_path / "rec.mcap", t0)
    rc, result, err = _run(["data", "import", str(tmp_path / "rec.mcap"), "--format", "mcap", str(tmp_path / "one.zarr"),
                            "--task", "pick_place"], capsys)
    assert rc == 0, err
    s = EpisodeStore.open(tmp_path / "one.zarr")
    assert s.num_episodes == 1
    ep = s.read_episode(0)
    assert set(ep) == {"front_rgb", "ee_pose", "joint_pos", "joint_vel", "action_pose", "action_gripper"}
    np.testing.assert_array_equal(ep["front_rgb"]["data"], np.stack(frames))      # bgr8 turned into rgb
    np.testing.assert_allclose(ep["front_rgb"]["capture_stamp"], t0 + np.arange(12) / 10.0, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ep["front_rgb"]["receive_stamp"] - ep["front_rgb"]["capture_stamp"], 0.002, atol=1e-6)
    np.testing.assert_allclose(ep["action_pose"]["data"][:, 0], 0.5 + np.arange(12) * 0.01)
    assert ep["action_gripper"]["data"].ravel().tolist() == [1.0] * 6 + [0.0] * 6
    meta = s.metadata(0)
    assert meta["instruction"] == "pick up the red block" and meta["task"] == "pick_place"

    ranges = [f"{t0 - 0.01}:{t0 + 0.45}", f"{t0 + 0.55}:{t0 + 2.0}"]
    rc, result, err = _run(["data", "import", str(tmp_path / "rec.mcap"), "--format", "mcap", str(tmp_path / "two.zarr"),
                            "--episode", ranges[0], "--episode", ranges[1]], capsys)
    assert rc == 0, err
    s = EpisodeStore.open(tmp_path / "two.zarr")
    assert s.num_episodes == 2
    assert [len(s.read_stream(k, "front_rgb")["data"]) for k in range(2)] == [5, 6]
    assert s.read_stream(1, "ee_pose")["data"][0, 0] == pytest.approx(0.46)


def test_compressed_images_round_trip(store, tmp_path, capsys):
    from mcap.reader import make_reader

    out = tmp_path / "c.mcap"
    rc, result, err = _run(["data", "export", str(store), "--format", "mcap", str(out), "--compressed",
                            "--episodes", "1"], capsys)
    assert rc == 0, err
    with open(out, "rb") as f:
        summary = make_reader(f).get_summary()
    topics = {c.topic: summary.schemas[c.schema_id].name for c in summary.channels.values()}
    assert topics["/front/color/image_raw/compressed"] == "sensor_msgs/msg/CompressedImage"
    assert "/front/color/image_raw" not in topics
    rc, result, err = _run(["data", "import", str(out), "--format", "mcap", str(tmp_path / "c.zarr")], capsys)
    assert rc == 0, err
    a, b = EpisodeStore.open(store), EpisodeStore.open(tmp_path / "c.zarr")
    assert b.num_episodes == 1
    np.testing.assert_array_equal(b.read_stream(0, "front_rgb")["data"], a.read_stream(1, "front_rgb")["data"])


def test_bad_files_are_one_line_errors_naming_the_file(store, bag, tmp_path, capsys):
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"\x89MCAP0\r\n" + b"\x00garbage" * 10)
    rc, _, err = _run(["data", "import", str(junk), "--format", "mcap", str(tmp_path / "x.zarr")], capsys)
    assert rc == 2 and str(junk) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.zarr").exists()
    rc, _, err = _run(["data", "import", str(tmp_path / "none.mcap"), "--format", "mcap", str(tmp_path / "y.zarr")],
                      capsys)
    assert rc == 2 and "none.mcap" in err and len(err.strip().splitlines()) == 1
    rc, _, err = _run(["data", "export", str(store), "--format", "mcap", str(bag)], capsys)
    assert rc == 2 and "already exists" in err
    rc, _, err = _run(["data", "import", str(bag), "--format", "mcap", str(tmp_path / "z.zarr"), "--episode", "5:1"],
                      capsys)
    assert rc == 2 and "END must be after START" in err


def _trigger_event_cdr(event_type: int, seq: int, success: bool | None, gid: bytes = b"c" * 16) -> bytes:
    """std_srvs/srv/Trigger_Event in little-endian CDR, as rosbag2 records a service event."""
    import struct
    body = struct.pack("<B3xiI", event_type, 0, 0) + gid + b"\0" * 4 + struct.pack("<q", seq)
    if success is None:                                    # a request event: one (empty) request
        body += struct.pack("<I", 1) + b"\0" + b"\0" * 3 + struct.pack("<I", 0)
    else:                                                  # a response event
        text = b"done\0"
        body += struct.pack("<I", 0) + struct.pack("<I", 1) + struct.pack("<?3xI", success, len(text)) + text
    return b"\x00\x01\x00\x00" + body


def test_episodes_from_the_recorders_service_calls_and_status(tmp_path, capsys):
    from mcap.writer import Writer as McapWriter
    from mcap_ros2.writer import Writer

    t0 = 1_765_000_000.0
    path = tmp_path / "session.mcap"
    with open(path, "wb") as f:
        w = Writer(f)
        pose = w.register_msgdef("geometry_msgs/msg/PoseStamped", msgdef("geometry_msgs/PoseStamped"))
        for i in range(40):
            ns = int(round((t0 + i / 10) * 1e9))
            msg = {"header": {"stamp": {"sec": ns // 10**9, "nanosec": ns % 10**9}, "frame_id": "base"},
                   "pose": {"position": {"x": float(i), "y": 0.0, "z": 0.0}, "orientation": {"w": 1.0}}}
            w.write_message("/arm/ee_pose", pose, msg, log_time=ns + 1000, publish_time=ns + 1000)
        raw: McapWriter = w._writer          # the service events: a type mcap-ros2-support cannot encode
        schema = raw.register_schema("std_srvs/srv/Trigger_Event", "ros2msg", b"service_msgs/ServiceEventInfo info\n")
        channels = {s: raw.register_channel(f"/recorder/{s}/_service_event", "cdr", schema)
                    for s in ("start", "success", "fail", "discard")}
        calls = [(0.25, "start", True), (1.25, "success", True), (1.55, "start", True), (2.0, "discard", True),
                 (2.25, "start", True), (2.5, "start", False), (3.25, "fail", True), (3.5, "start", True)]
        for seq, (t, service, ok) in enumerate(calls):
            ns = int(round((t0 + t) * 1e9))
            raw.add_message(channels[service], log_time=ns, publish_time=ns, data=_trigger_event_cdr(1, seq, None))
            raw.add_message(channels[service], log_time=ns + 2_000_000, publish_time=ns + 2_000_000,
                            data=_trigger_event_cdr(2, seq, ok))
        w.finish()
    rc, result, err = _run(["data", "import", str(path), "--format", "mcap", str(tmp_path / "s.zarr")], capsys)
    assert rc == 0, err
    s = EpisodeStore.open(tmp_path / "s.zarr")
    assert s.num_episodes == 2                                      # the discarded and the unfinished one are not
    assert s.read_stream(0, "ee_pose")["data"][:, 0].tolist() == list(range(3, 13))
    assert s.read_stream(1, "ee_pose")["data"][:, 0].tolist() == list(range(23, 33))
    assert [s.metadata(k)["success"] for k in range(2)] == [True, False]

    # without service events: the recorder's latched status, recording true from start to commit
    path = tmp_path / "status.mcap"
    with open(path, "wb") as f:
        w = Writer(f)
        pose = w.register_msgdef("geometry_msgs/msg/PoseStamped", msgdef("geometry_msgs/PoseStamped"))
        text = w.register_msgdef("std_msgs/msg/String", msgdef("std_msgs/String"))
        events = [(int(round((t0 + i / 10) * 1e9)) + 1000, "/arm/ee_pose", pose, {
            "header": {"stamp": {"sec": 0, "nanosec": 0}, "frame_id": "base"},
            "pose": {"position": {"x": float(i), "y": 0.0, "z": 0.0}, "orientation": {"w": 1.0}}}) for i in range(20)]
        for t, rec in ((0.0, False), (0.45, True), (1.0, True), (1.45, False)):
            events.append((int(round((t0 + t) * 1e9)), "/recorder/status", text,
                           {"data": json.dumps({"recording": rec, "episodes": 0})}))
        for log, topic, schema, msg in sorted(events, key=lambda e: e[0]):
            w.write_message(topic, schema, msg, log_time=log, publish_time=log)
        w.finish()
    rc, result, err = _run(["data", "import", str(path), "--format", "mcap", str(tmp_path / "t.zarr")], capsys)
    assert rc == 0, err
    s = EpisodeStore.open(tmp_path / "t.zarr")
    assert s.num_episodes == 1
    assert s.read_stream(0, "ee_pose")["data"][:, 0].tolist() == list(range(5, 15))


def test_service_events_serialized_by_ros2_parse():
    """The hand-read Trigger_Event layout against rclpy's own serializer (padding bytes differ, fields must not)."""
    serialization = pytest.importorskip("rclpy.serialization")
    from std_srvs.srv import Trigger

    from robot_stack.data.mcap_io import _trigger_event

    response = Trigger.Event()
    response.info.event_type, response.info.sequence_number, response.info.client_gid = 2, 7, [99] * 16
    response.response = [Trigger.Response(success=False, message="not recording")]
    assert _trigger_event(serialization.serialize_message(response)) == (2, b"c" * 16, 7, False)
    request = Trigger.Event()
    request.info.event_type, request.info.sequence_number, request.info.client_gid = 1, 8, [99] * 16
    request.request = [Trigger.Request()]
    assert _trigger_event(serialization.serialize_message(request)) == (1, b"c" * 16, 8, None)
    assert _trigger_event(b"junk") is None
