"""RealSenseCamera against the pyrealsense2 fake: device selection, alignment, stamps, intrinsics, failures."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from robot_stack.drivers.base import DriverError
from robot_stack.drivers.realsense import RealSenseCamera, RealSenseConfig, make_camera
from tests.drivers.fakes import fake_pyrealsense2 as fake

SERIAL = "043422251234"
OTHER = "213622070777"


@pytest.fixture
def rs(monkeypatch):
    fake.reset()
    monkeypatch.setitem(sys.modules, "pyrealsense2", fake)
    return fake


@pytest.fixture
def camera(rs):
    cam = RealSenseCamera(RealSenseConfig(name="wrist", serial=SERIAL))
    cam.connect()
    yield cam
    if cam.connected:
        cam.disconnect()


def test_selects_the_configured_serial_and_requests_both_streams(rs):
    rs.WORLD.devices = [fake.FakeDevice(OTHER), fake.FakeDevice(SERIAL)]
    cam = RealSenseCamera(RealSenseConfig(serial=SERIAL, width=848, height=480, fps=15))
    cam.connect()
    names = rs.LOG.names()
    assert rs.LOG.args("config.enable_device") == [(SERIAL,)]
    assert names.index("config.enable_device") < names.index("pipeline.start")
    assert rs.LOG.args("config.enable_stream") == [
        (fake.stream.color, 848, 480, fake.format.rgb8, 15), (fake.stream.depth, 848, 480, fake.format.z16, 15)]
    frame = cam.read()
    assert frame.rgb.shape == (480, 848, 3) and frame.rgb.dtype == np.uint8
    cam.disconnect()


def test_float_fps_from_yaml_reaches_the_sdk_as_an_int(rs):
    cam = make_camera({"name": "camera", "serial": "", "width": 640, "height": 480, "fps": 30.0, "depth": True})
    cam.connect()
    assert rs.LOG.args("config.enable_stream")[0][-1] == 30
    cam.disconnect()


def test_missing_serial_lists_the_connected_ones(rs):
    rs.WORLD.devices = [fake.FakeDevice(OTHER), fake.FakeDevice("999")]
    cam = RealSenseCamera(RealSenseConfig(serial=SERIAL))
    with pytest.raises(DriverError, match=f"{SERIAL}.*not connected.*{OTHER}, 999"):
        cam.connect()
    assert "pipeline.start" not in rs.LOG.names() and not cam.connected


def test_no_serial_needs_exactly_one_device(rs):
    rs.WORLD.devices = [fake.FakeDevice(OTHER), fake.FakeDevice(SERIAL)]
    with pytest.raises(DriverError, match=f"2 devices.*{OTHER}, {SERIAL}"):
        RealSenseCamera(RealSenseConfig(serial="")).connect()
    rs.WORLD.devices = []
    with pytest.raises(DriverError, match="0 devices.*none"):
        RealSenseCamera(RealSenseConfig(serial="")).connect()
    rs.WORLD.devices = [fake.FakeDevice(OTHER)]
    cam = RealSenseCamera(RealSenseConfig(serial=""))
    cam.connect()
    assert rs.LOG.args("config.enable_device") == [(OTHER,)]
    cam.disconnect()


def test_depth_is_aligned_to_colour(rs):
    cam = RealSenseCamera(RealSenseConfig(serial=SERIAL, width=640, height=480, depth_width=424, depth_height=240))
    cam.connect()
    assert rs.LOG.args("align") == [(fake.stream.color,)]
    frame = cam.read()
    assert rs.LOG.names()[-2:] == ["pipeline.wait_for_frames", "align.process"]
    assert frame.depth.shape == (480, 640) and frame.depth.dtype == np.uint16
    assert (frame.depth == fake.ALIGNED_DEPTH_UNITS).all()          # the aligned frame, in mm at scale 1 mm
    cam.disconnect()


def test_depth_scale_other_than_a_millimetre_is_converted(rs):
    rs.WORLD.devices = [fake.FakeDevice(SERIAL, depth_scale=0.0001)]      # D405: 0.1 mm units
    cam = RealSenseCamera(RealSenseConfig(serial=SERIAL))
    cam.connect()
    assert (cam.read().depth == fake.ALIGNED_DEPTH_UNITS // 10).all()
    cam.disconnect()


def test_no_depth_means_no_depth_stream_and_no_alignment(rs):
    cam = RealSenseCamera(RealSenseConfig(serial=SERIAL, depth=False))
    cam.connect()
    frame = cam.read()
    assert frame.depth is None and "align" not in rs.LOG.names()
    assert [a[0] for a in rs.LOG.args("config.enable_stream")] == [fake.stream.color]
    cam.disconnect()


def test_intrinsics_come_from_the_colour_stream_profile(camera):
    frame = camera.read()
    i = fake.intrinsics()
    np.testing.assert_allclose(frame.k, [[i.fx, 0, i.ppx], [0, i.fy, i.ppy], [0, 0, 1]])
    assert frame.frame_id == "wrist_color_optical_frame"


def test_frames_are_copies_the_sdk_cannot_overwrite(camera, rs):
    first = camera.read()
    second = camera.read()
    assert first.rgb[0, 0, 0] == 1 and second.rgb[0, 0, 0] == 2


# --- stamps ----------------------------------------------------------------------------------
def test_global_time_is_enabled_and_stamps_are_capture_times_on_the_host_clock(camera, rs):
    assert ("sensor.set_option", ("Stereo Module", fake.option.global_time_enabled, 1.0)) in rs.LOG.calls
    assert ("sensor.set_option", ("RGB Camera", fake.option.global_time_enabled, 1.0)) in rs.LOG.calls
    frame = camera.read()
    assert frame.stamp == pytest.approx((rs.WORLD.host_ms - rs.WORLD.latency_ms) / 1000.0)


def test_hardware_clock_stamps_are_put_on_the_host_clock_with_device_spacing(rs):
    rs.WORLD.devices = [fake.FakeDevice(SERIAL, supports_global_time=False)]
    host = [5000.0]
    cam = RealSenseCamera(RealSenseConfig(serial=SERIAL, fps=30), clock=lambda: host[0])
    cam.connect()
    assert "sensor.set_option" not in rs.LOG.names()
    first = cam.read().stamp
    host[0] += 0.045                                 # read late on the host
    second = cam.read().stamp
    assert first == pytest.approx(5000.0)
    assert second - first == pytest.approx(1 / 30, abs=1e-5)        # the camera's frame spacing
    cam.disconnect()


def test_require_global_time_refuses_other_domains(rs):
    rs.WORLD.devices = [fake.FakeDevice(SERIAL, supports_global_time=False)]
    cam = RealSenseCamera(RealSenseConfig(serial=SERIAL, require_global_time=True))
    cam.connect()
    with pytest.raises(DriverError, match=f"{SERIAL}.*global time"):
        cam.read()
    cam.disconnect()


def test_system_time_stamps_pass_through(camera, rs):
    rs.WORLD.force_domain = fake.timestamp_domain.system_time
    frame = camera.read()
    assert frame.stamp == pytest.approx(rs.WORLD.host_ms / 1000.0)


# --- failures --------------------------------------------------------------------------------
def test_start_failure_names_the_serial_and_leaves_nothing_running(rs):
    rs.LOG.fail("pipeline.start", RuntimeError("Couldn't resolve requests"))
    cam = RealSenseCamera(RealSenseConfig(serial=SERIAL))
    with pytest.raises(DriverError, match=f"{SERIAL}.*resolve requests"):
        cam.connect()
    assert not cam.connected and "pipeline.stop" not in rs.LOG.names()


def test_failure_after_start_stops_the_pipeline(rs):
    rs.LOG.fail("video_stream_profile.get_intrinsics", RuntimeError("device disconnected"))
    cam = RealSenseCamera(RealSenseConfig(serial=SERIAL))
    with pytest.raises(DriverError, match=f"{SERIAL}.*device disconnected"):
        cam.connect()
    assert rs.LOG.names()[-1] == "pipeline.stop" and not cam.connected


def test_frame_timeout_is_a_driver_error_naming_the_serial(camera, rs):
    rs.LOG.fail("pipeline.wait_for_frames", RuntimeError("Frame didn't arrive within 1000"))
    with pytest.raises(DriverError, match=f"{SERIAL}.*didn't arrive"):
        camera.read()
    assert rs.LOG.args("pipeline.wait_for_frames")[-1] == (camera.config.timeout_ms,)


def test_disconnect_stops_the_pipeline_once(camera, rs):
    camera.disconnect()
    camera.disconnect()
    assert rs.LOG.count("pipeline.stop") == 1
    with pytest.raises(DriverError, match="not connected"):
        camera.read()


def test_missing_pyrealsense2_is_a_driver_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)
    with pytest.raises(DriverError, match=r"pip install .robot_stack\[realsense\]."):
        RealSenseCamera(RealSenseConfig(serial=SERIAL)).connect()


def test_make_camera_rejects_unknown_settings():
    with pytest.raises(ValueError, match="unknown RealSense settings.*robot"):
        make_camera({"name": "camera", "robot": "panda"})


def test_config_rejects_fractional_sizes():
    with pytest.raises(ValueError, match="fps"):
        RealSenseConfig(fps=29.97)


def test_a_sensor_refusing_global_time_falls_back_to_hardware_stamps(rs):
    rs.LOG.fail("sensor.set_option", RuntimeError("option not writable while streaming"))
    cam = RealSenseCamera(RealSenseConfig(serial=SERIAL))
    cam.connect()                                    # the depth sensor refused, the camera still works
    assert cam.read().rgb.shape == (480, 640, 3)
    cam.disconnect()
    rs.LOG.fail("sensor.set_option", RuntimeError("option not writable while streaming"))
    strict = RealSenseCamera(RealSenseConfig(serial=SERIAL, require_global_time=True))
    with pytest.raises(DriverError, match=f"{SERIAL}.*global time"):
        strict.connect()
    assert not strict.connected
