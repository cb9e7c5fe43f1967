"""A fake `pyrealsense2` with the wrapper's names and signatures (wrappers/python/pyrs_*.cpp).

Install with `monkeypatch.setitem(sys.modules, "pyrealsense2", fake_pyrealsense2)` after
`reset()`. Connected devices are listed in WORLD.devices. Frames come in the hardware-clock
domain unless global time was enabled on the sensors; raw depth differs from aligned depth
(size and values), so a test can tell whether alignment happened. Integer parameters
reject floats, as pybind11's int conversion does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import time

import numpy as np

from tests.drivers.fakes import CallLog

LOG = CallLog()

RAW_DEPTH_UNITS = 2000            # what the unaligned depth frame holds
ALIGNED_DEPTH_UNITS = 1500        # what align(color).process() produces


class stream:
    color = "stream.color"
    depth = "stream.depth"


class format:                     # noqa: A001 - the wrapper's name
    rgb8 = "format.rgb8"
    bgr8 = "format.bgr8"
    z16 = "format.z16"


class camera_info:
    serial_number = "camera_info.serial_number"
    name = "camera_info.name"


class option:
    global_time_enabled = "option.global_time_enabled"


class timestamp_domain:
    hardware_clock = "timestamp_domain.hardware_clock"
    system_time = "timestamp_domain.system_time"
    global_time = "timestamp_domain.global_time"


def _int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what}: incompatible function arguments: {value!r} is not an int")
    return value


@dataclass
class intrinsics:
    width: int = 640
    height: int = 480
    ppx: float = 321.5
    ppy: float = 238.25
    fx: float = 615.0
    fy: float = 614.5
    model: str = "distortion.inverse_brown_conrady"
    coeffs: list = field(default_factory=lambda: [0.0] * 5)


class FakeDevice:
    """One camera on the bus."""

    def __init__(self, serial: str, depth_scale: float = 0.001, supports_global_time: bool = True):
        self.serial = serial
        self.depth_scale = depth_scale
        self.supports_global_time = supports_global_time
        self.global_time = False
        self.sensors = [sensor(self, "Stereo Module"), sensor(self, "RGB Camera")]


class World:
    def __init__(self):
        self.devices = [FakeDevice("043422251234")]
        self.hw_ms = 81234.5                       # camera clock (ms since it powered up)
        self.host_ms = 1.7e12                      # host system clock (ms since the epoch)
        self.latency_ms = 12.0                     # capture to arrival
        self.force_domain: str | None = None       # e.g. timestamp_domain.system_time
        self.frame_number = 0


class sensor:
    def __init__(self, dev: FakeDevice, name: str):
        self._dev, self._name = dev, name

    def supports(self, option):
        LOG.record("sensor.supports", self._name, option)
        return option == globals()["option"].global_time_enabled and self._dev.supports_global_time

    def set_option(self, option, value):
        LOG.record("sensor.set_option", self._name, option, value)
        if not self.supports(option):
            raise RuntimeError(f"set_option: option {option} not supported by {self._name}")
        self._dev.global_time = bool(value)

    def get_option(self, option):
        return float(self._dev.global_time)

    def get_depth_scale(self):
        LOG.record("depth_sensor.get_depth_scale")
        return self._dev.depth_scale


class device:
    def __init__(self, dev: FakeDevice):
        self._dev = dev

    def get_info(self, info):
        LOG.record("device.get_info", info)
        if info == camera_info.serial_number:
            return self._dev.serial
        return "Intel RealSense D435"

    def query_sensors(self):
        LOG.record("device.query_sensors")
        return list(self._dev.sensors)

    def first_depth_sensor(self):
        return self._dev.sensors[0]


class context:
    def __init__(self):
        LOG.record("context")

    def query_devices(self):
        LOG.record("context.query_devices")
        return [device(d) for d in WORLD.devices]


class config:
    def __init__(self):
        LOG.record("config")
        self.serial: str | None = None
        self.streams: dict[str, tuple] = {}

    def enable_device(self, serial):
        LOG.record("config.enable_device", serial)
        self.serial = serial

    def enable_stream(self, stream_type, width, height, format, framerate):
        LOG.record("config.enable_stream", stream_type, width, height, format, framerate)
        self.streams[stream_type] = (_int(width, "width"), _int(height, "height"), format,
                                     _int(framerate, "framerate"))


class video_stream_profile:
    def __init__(self, width: int, height: int):
        self._w, self._h = width, height

    def as_video_stream_profile(self):
        return self

    def width(self):
        return self._w

    def height(self):
        return self._h

    def get_intrinsics(self):
        LOG.record("video_stream_profile.get_intrinsics")
        return intrinsics(width=self._w, height=self._h)


class pipeline_profile:
    def __init__(self, dev: FakeDevice, streams: dict):
        self._dev, self._streams = dev, streams

    def get_stream(self, stream_type, stream_index=-1):
        w, h, _, _ = self._streams[stream_type]
        return video_stream_profile(w, h)

    def get_device(self):
        return device(self._dev)


class video_frame:
    def __init__(self, data: np.ndarray, hw_ms: float, domain: str):
        self._data, self._hw_ms, self._domain = data, hw_ms, domain

    def __bool__(self):
        return self._data is not None

    def get_data(self):
        return self._data

    def get_timestamp(self):
        if self._domain == timestamp_domain.hardware_clock:
            return self._hw_ms
        if self._domain == timestamp_domain.global_time:          # capture time on the host clock
            return WORLD.host_ms - WORLD.latency_ms
        return WORLD.host_ms                                       # system_time: arrival

    def get_frame_timestamp_domain(self):
        return self._domain


class composite_frame:
    def __init__(self, color: video_frame, depth: video_frame | None, aligned: bool = False):
        self._color, self._depth, self.aligned = color, depth, aligned

    def get_color_frame(self):
        return self._color

    def get_depth_frame(self):
        return self._depth


class align:
    def __init__(self, align_to):
        LOG.record("align", align_to)
        self._to = align_to

    def process(self, frames):
        LOG.record("align.process")        # not the frames: a node reading for minutes would keep every one
        if self._to != stream.color:
            raise RuntimeError("only alignment to colour is faked")
        h, w = frames.get_color_frame().get_data().shape[:2]
        depth = frames.get_depth_frame()
        aligned = video_frame(np.full((h, w), ALIGNED_DEPTH_UNITS, np.uint16), depth._hw_ms, depth._domain)
        return composite_frame(frames.get_color_frame(), aligned, aligned=True)


class pipeline:
    def __init__(self, ctx=None):
        LOG.record("pipeline", ctx)
        self._config: config | None = None
        self._dev: FakeDevice | None = None
        self._next_frame: float | None = None       # monotonic time of the next frame set

    def start(self, config):
        LOG.record("pipeline.start", config)
        matches = [d for d in WORLD.devices if config.serial in (None, d.serial)]
        if not matches:
            raise RuntimeError("No device connected")
        if stream.color in config.streams and config.streams[stream.color][2] not in (format.rgb8, format.bgr8):
            raise RuntimeError("Couldn't resolve requests")
        self._config, self._dev = config, matches[0]
        return pipeline_profile(self._dev, config.streams)

    def wait_for_frames(self, timeout_ms=5000):
        LOG.record("pipeline.wait_for_frames", timeout_ms)
        _int(timeout_ms, "timeout_ms")
        if self._config is None:
            raise RuntimeError("wait_for_frames cannot be called before start()")
        w, h, _, fps = self._config.streams[stream.color]
        # the device delivers a frame set every 1/fps s and wait_for_frames blocks until it has one; returning at
        # once let a camera node's SCHED_FIFO capture thread spin on both cores and starve everything else
        now = time.monotonic()
        if self._next_frame is not None and self._next_frame > now:
            time.sleep(self._next_frame - now)
        self._next_frame = max(self._next_frame or now, now) + 1.0 / fps
        WORLD.frame_number += 1
        WORLD.hw_ms += 1000.0 / fps
        WORLD.host_ms += 1000.0 / fps
        domain = WORLD.force_domain or (timestamp_domain.global_time if self._dev.global_time
                                        else timestamp_domain.hardware_clock)
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[..., 0] = WORLD.frame_number % 256
        rgb[..., 1] = np.arange(w, dtype=np.uint16)[None, :] % 256
        color = video_frame(rgb, WORLD.hw_ms, domain)
        depth = None
        if stream.depth in self._config.streams:
            dw, dh, _, _ = self._config.streams[stream.depth]
            depth = video_frame(np.full((dh, dw), RAW_DEPTH_UNITS, np.uint16), WORLD.hw_ms, domain)
        return composite_frame(color, depth)

    def stop(self):
        LOG.record("pipeline.stop")
        if self._config is None:
            raise RuntimeError("stop() cannot be called before start()")
        self._config = None


WORLD = World()


def reset() -> None:
    global LOG, WORLD
    LOG = CallLog()
    WORLD = World()
