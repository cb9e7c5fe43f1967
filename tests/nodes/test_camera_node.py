"""Twin cameras mirror the arm node's simulator and publish images with capture stamps."""
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image

from robot_stack.nodes.arm_node import ArmNode
from robot_stack.nodes.camera_node import CameraNode
from robot_stack.nodes.recorder_node import IMAGE_QOS
from robot_stack.ros import convert, qos
from tests.nodes.conftest import wait_for


def test_twin_camera_publishes_color_depth_and_info(ros):
    ros.add(ArmNode(context=ros.context, parameter_overrides=[
        Parameter("robot", value="ur5e"), Parameter("task", value="lift")]))
    cam = ros.add(CameraNode(context=ros.context, parameter_overrides=[
        Parameter("camera", value="twin_front"), Parameter("robot", value="ur5e"), Parameter("width", value=96),
        Parameter("height", value=64), Parameter("fps", value=20.0), Parameter("depth", value=True)]))
    client = ros.node("viewer")
    color, depth, info = [], [], []
    client.create_subscription(Image, "front/color/image_raw", color.append, qos.IMAGE)
    client.create_subscription(Image, "front/depth/image_rect_raw", depth.append, qos.IMAGE)
    client.create_subscription(CameraInfo, "front/color/camera_info", info.append, qos.SENSOR)
    wait_for(lambda: len(color) >= 10 and depth and info, timeout=15.0, what="images")
    rgb = convert.parse_image(color[-1], shape=(64, 96))
    assert rgb.std() > 5                                       # a rendered scene, not a blank
    d = convert.parse_image(depth[-1], encodings=("16UC1",), shape=(64, 96))
    assert 300 < np.median(d) < 3000                          # table and robot 0.3-3 m away, in mm
    stamps = [convert.from_time(m.header.stamp) for m in color[-10:]]
    assert np.all(np.diff(stamps) > 0)                        # capture stamps move forward
    now = client.get_clock().now().nanoseconds * 1e-9
    assert 0 <= now - stamps[-1] < 1.0
    assert info[-1].k[0] > 0 and info[-1].width == 96 and color[-1].header.frame_id == "front_color_optical_frame"
    assert cam.frames >= 10


def test_camera_reports_frames_published_on_diagnostics(ros):
    """The camera's count of published frames (on /diagnostics) is the middleware's: the publication sequence
    number of the last frame a subscriber receives."""
    ros.add(ArmNode(context=ros.context, parameter_overrides=[
        Parameter("robot", value="panda"), Parameter("task", value="lift")]))
    cam = ros.add(CameraNode(context=ros.context, parameter_overrides=[
        Parameter("camera", value="twin_wrist"), Parameter("width", value=32), Parameter("height", value=24),
        Parameter("fps", value=20.0)]))
    client = ros.node("viewer")
    color, diags = [], []
    client.create_subscription(Image, "wrist/color/image_raw", lambda m, info: color.append(info), IMAGE_QOS)
    client.create_subscription(DiagnosticArray, "diagnostics",
                               lambda m: diags.extend(s for s in m.status if s.name.endswith("camera wrist")), 10)
    wait_for(lambda: len(diags) >= 2, timeout=15.0, what="camera diagnostics")
    values = {kv.key: kv.value for kv in diags[-1].values}
    assert int(values["frames_published"]) >= 1 and values["fps_configured"] == "20"
    assert float(values["fps_achieved"]) > 0 and float(values["max_interval_ms"]) > 0
    # capture stamp to publish: the camera's share of a policy's observation age
    assert 0 < float(values["capture_to_publish_p50_ms"]) <= float(values["capture_to_publish_p99_ms"]) < 1000
    cam.close()                                                # no more frames: the counts can be compared
    published = cam.frames
    wait_for(lambda: color and color[-1]["publication_sequence_number"] >= published, what="the last frame")
    assert color[-1]["publication_sequence_number"] == published == int(cam.diagnostics()["frames_published"])


def test_parse_image_rejects_wrong_sizes_and_encodings():
    msg = convert.image_msg(np.zeros((4, 6, 3), np.uint8), 1.0, "cam")
    for kwargs, text in [({"shape": (4, 5)}, "expected 4x5"), ({"encodings": ("mono8",)}, "encoding")]:
        try:
            convert.parse_image(msg, **kwargs)
        except convert.MessageError as exc:
            assert text in str(exc)
        else:
            raise AssertionError("accepted a bad image")
    msg.data = msg.data[:-3]
    try:
        convert.parse_image(msg)
    except convert.MessageError as exc:
        assert "size" in str(exc)
    else:
        raise AssertionError("accepted truncated data")


def test_parameters_read_at_start_up_are_refused_later_with_a_reason(ros, tmp_path):
    """A node that reads its parameters once refuses a later set instead of reporting it as set (issue 35, item 4)."""
    from robot_stack.nodes.recorder_node import RecorderNode

    ros.add(ArmNode(context=ros.context, parameter_overrides=[Parameter("robot", value="panda")]))
    cam = ros.add(CameraNode(context=ros.context, parameter_overrides=[
        Parameter("camera", value="twin_front"), Parameter("width", value=64), Parameter("height", value=48)]))
    recorder = ros.add(RecorderNode(context=ros.context, parameter_overrides=[
        Parameter("store", value=str(tmp_path / "store")), Parameter("cameras", value="front")]))
    for node, name, value in ((cam, "fps", 5.0), (cam, "width", "abc"), (recorder, "rate", [1, 2]),
                              (recorder, "store", "/elsewhere")):
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful and "start-up only" in result.reason, (name, result.reason)
    assert cam.get_parameter("width").value == 64
    frames = cam.frames
    wait_for(lambda: cam.frames > frames + 3, timeout=10.0, what="the camera still publishing")
