"""RealSenseCamera: colour and aligned depth from one RealSense, stamped with capture time.

pyrealsense2 API used here (IntelRealSense/librealsense wrappers/python: pyrs_pipeline.cpp,
pyrs_device.cpp, pyrs_frame.cpp, pyrs_options.cpp; examples/align-depth2color.py):
  context().query_devices() -> devices; device.get_info(camera_info.serial_number),
  device.query_sensors(), sensor.supports(option), sensor.set_option(option, value)
  config().enable_device(serial), config.enable_stream(stream, width, height, format, framerate)
  pipeline(ctx).start(config) -> pipeline_profile; pipeline.wait_for_frames(timeout_ms); pipeline.stop()
  profile.get_stream(stream.color).as_video_stream_profile().get_intrinsics() -> fx, fy, ppx, ppy
  profile.get_device().first_depth_sensor().get_depth_scale() (metres per depth unit)
  align(stream.color).process(frames) -> frameset with get_color_frame() / get_depth_frame()
  frame.get_data(), frame.get_timestamp() (ms), frame.get_frame_timestamp_domain()
  timestamp_domain.global_time / hardware_clock / system_time; option.global_time_enabled
  Errors are rs2::error, a std::runtime_error: pybind11 raises them as RuntimeError.

Timestamps: with global time enabled (set here on every sensor that supports it) the SDK
maps the camera's hardware clock onto the host's system clock, so stamps are capture times
on the same clock as time.time(). A hardware_clock stamp is put on the host clock here;
a system_time stamp is the host's arrival time, later than capture by the transfer, and is
used as it is with a one-time warning.
"""
from __future__ import annotations

import importlib
import logging
import time
from typing import Callable

import numpy as np

from robot_stack.drivers.base import CameraDriver, DriverError
# Shared with the Franka driver: a device clock put on the host clock.
from robot_stack.drivers.common import ClockSync
from robot_stack.drivers.realsense.config import RealSenseConfig
from robot_stack.types import Frame

# what a missing vendor library's error tells the user to run: the extra that brings it (setup.py)
INSTALL = "pip install 'robot_stack[realsense]'"

log = logging.getLogger(__name__)


class RealSenseCamera(CameraDriver):
    def __init__(self, config: RealSenseConfig | None = None, clock: Callable[[], float] = time.time, vendor=None):
        self.config = config or RealSenseConfig()
        self.name = self.config.name
        self._vendor = vendor                    # injected pyrealsense2 module; imported in connect() otherwise
        self._rs = None
        self._pipeline = None
        self._align = None
        self._serial = self.config.serial
        self._depth_scale = 0.001
        self._sync = ClockSync(clock)
        self._warned_domain = False
        self.k: np.ndarray | None = None

    @property
    def connected(self) -> bool:
        return self._pipeline is not None

    def _where(self) -> str:
        return f"RealSense {self._serial or '(any)'}"

    def _call(self, what: str, fn, *args):
        """Call into pyrealsense2; its errors come back as DriverError naming the camera."""
        try:
            return fn(*args)
        except DriverError:
            raise
        except RuntimeError as exc:
            raise DriverError(f"{self._where()}: {what} failed: {exc}") from exc

    def _import(self):
        if self._vendor is not None:
            return self._vendor
        try:
            return importlib.import_module("pyrealsense2")
        except ImportError as exc:
            raise DriverError(f"{self._where()}: pyrealsense2 is not installed ({INSTALL}): {exc}") from exc

    def connect(self) -> None:
        if self.connected:
            return
        rs = self._rs = self._import()
        c = self.config
        try:
            ctx = self._call("context", rs.context)
            devices = list(self._call("query_devices", ctx.query_devices))
            serials = [self._call("get_info", d.get_info, rs.camera_info.serial_number) for d in devices]
            device = self._select(devices, serials)
            self._enable_global_time(device)
            pipeline = self._call("pipeline", rs.pipeline, ctx)
            request = rs.config()
            request.enable_device(self._serial)
            request.enable_stream(rs.stream.color, c.width, c.height, rs.format.rgb8, c.fps)
            if c.depth:
                request.enable_stream(rs.stream.depth, c.depth_width, c.depth_height, rs.format.z16, c.fps)
            profile = self._call(f"start ({c.width}x{c.height} at {c.fps} fps)", pipeline.start, request)
            self._pipeline = pipeline             # from here on, a failure must stop it
            color = profile.get_stream(rs.stream.color).as_video_stream_profile()
            i = self._call("get_intrinsics", color.get_intrinsics)
            self.k = np.array([[i.fx, 0.0, i.ppx], [0.0, i.fy, i.ppy], [0.0, 0.0, 1.0]])
            if c.depth:
                sensor = profile.get_device().first_depth_sensor()
                self._depth_scale = float(self._call("get_depth_scale", sensor.get_depth_scale))
                self._align = rs.align(rs.stream.color)
        except RuntimeError as exc:          # DriverError included: release, then name the camera
            self._release()
            if isinstance(exc, DriverError):
                raise
            raise DriverError(f"{self._where()}: connect failed: {exc}") from exc
        except BaseException:
            self._release()
            raise

    def _select(self, devices, serials):
        """The configured device, or the only one; otherwise say which are connected."""
        connected = ", ".join(serials) if serials else "none"
        if self.config.serial:
            if self.config.serial not in serials:
                raise DriverError(f"{self._where()}: not connected; connected serials: {connected}")
            return devices[serials.index(self.config.serial)]
        if len(devices) != 1:
            raise DriverError(f"RealSense: no serial configured and {len(devices)} devices connected "
                              f"(serials: {connected}); set camera.serial")
        self._serial = serials[0]
        return devices[0]

    def _enable_global_time(self, device) -> None:
        """Ask every sensor for global time; a sensor that refuses only matters when it is required."""
        rs = self._rs
        for sensor in self._call("query_sensors", device.query_sensors):
            if not sensor.supports(rs.option.global_time_enabled):
                continue
            try:
                sensor.set_option(rs.option.global_time_enabled, 1.0)
            except RuntimeError as exc:
                if self.config.require_global_time:
                    raise DriverError(f"{self._where()}: cannot enable global time: {exc}") from exc
                log.warning("%s: cannot enable global time (%s); stamps from the hardware clock", self._where(), exc)

    def disconnect(self) -> None:
        error = self._release()
        if error is not None:
            raise DriverError(f"{self._where()}: stop failed: {error}") from error

    def _release(self):
        pipeline, self._pipeline, self._align = self._pipeline, None, None
        if pipeline is not None:
            try:
                pipeline.stop()
            except RuntimeError as exc:
                return exc
        return None

    def read(self) -> Frame:
        if self._pipeline is None:
            raise DriverError(f"{self._where()}: not connected")
        try:
            return self._read()
        except DriverError:
            raise
        except RuntimeError as exc:
            raise DriverError(f"{self._where()}: read failed: {exc}") from exc

    def _read(self) -> Frame:
        c = self.config
        frames = self._call("wait_for_frames", self._pipeline.wait_for_frames, c.timeout_ms)
        if self._align is not None:
            frames = self._call("align", self._align.process, frames)
        color = frames.get_color_frame()
        if not color:
            raise DriverError(f"{self._where()}: frameset without a colour frame")
        # Copies: the SDK recycles a frame's buffer once the frame object is released.
        rgb = np.array(np.asanyarray(color.get_data()), dtype=np.uint8)
        if rgb.shape != (c.height, c.width, 3):
            raise DriverError(f"{self._where()}: colour frame is {rgb.shape}, expected {(c.height, c.width, 3)}")
        depth = None
        if self._align is not None:
            d = frames.get_depth_frame()
            if not d:
                raise DriverError(f"{self._where()}: frameset without a depth frame")
            depth = self._to_millimetres(np.asanyarray(d.get_data()))
            if depth.shape != rgb.shape[:2]:
                raise DriverError(f"{self._where()}: aligned depth is {depth.shape}, colour is {rgb.shape[:2]}")
        return Frame(stamp=self._stamp(color), rgb=rgb, k=self.k.copy(), depth=depth, frame_id=c.frame_id)

    def _to_millimetres(self, raw: np.ndarray) -> np.ndarray:
        """Depth units are depth_scale metres (1 mm on most D400s, 0.1 mm on a D405)."""
        if abs(self._depth_scale - 0.001) < 1e-9:
            return np.array(raw, dtype=np.uint16)
        mm = np.rint(raw.astype(np.float64) * (self._depth_scale * 1000.0))
        return np.clip(mm, 0, np.iinfo(np.uint16).max).astype(np.uint16)

    def _stamp(self, frame) -> float:
        rs = self._rs
        domain = frame.get_frame_timestamp_domain()
        seconds = frame.get_timestamp() / 1000.0
        if domain == rs.timestamp_domain.global_time:
            return seconds                           # already the host's system clock
        if self.config.require_global_time:
            raise DriverError(f"{self._where()}: frame stamped in {domain}, global time required "
                              f"(firmware or the sensor may not support it)")
        if domain == rs.timestamp_domain.hardware_clock:
            return self._sync.stamp(seconds)
        if not self._warned_domain:
            self._warned_domain = True
            log.warning("%s: frames are stamped on arrival (%s), not at capture", self._where(), domain)
        return seconds


def make_camera(config: dict, clock: Callable[[], float] = time.time) -> RealSenseCamera:
    """The camera node's factory: `config` is its `camera` section without `driver`."""
    fields = set(RealSenseConfig.__dataclass_fields__)
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(f"unknown RealSense settings {unknown}; valid: {sorted(fields)}")
    return RealSenseCamera(RealSenseConfig(**config), clock=clock)
