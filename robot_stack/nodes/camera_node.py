"""camera_node: publishes colour (and depth) images with CameraInfo from any CameraDriver.

Topics follow realsense-ros: `<name>/color/image_raw`, `<name>/color/camera_info`,
`<name>/depth/image_rect_raw` (16UC1, mm, aligned to colour). Header stamps are the
capture times the driver reports. Frames are read and published from one thread, so the
driver's blocking read sets the rate and a GL context stays on its thread.

Once a second the node reports on `/diagnostics` how many frames it has published, the rate
it achieved against the configured one, and the longest interval between two frames, so a
frame that never existed (a renderer or a device that cannot keep the rate) can be told
from one a subscriber lost; and capture stamp to publish (p50, p99), this node's share of a
policy's observation age. The frame and spinning threads run at SCHED_FIFO
`realtime_priority` where permitted, so other processes do not preempt a frame halfway.
"""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from omegaconf import OmegaConf
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float64MultiArray

from robot_stack.drivers.base import CameraDriver, DriverError
from robot_stack.nodes.common import node_config, raise_thread_priority, run_node, startup_only
from robot_stack.ros import convert, qos

IMAGE_PUBLISHER_QOS = qos.CAMERA_IMAGE   # colour publisher (old name, kept for importers)

# s without a first frame before a failed read is an error rather than the start-up race (see _read_failed)
STARTUP_GRACE = 60.0

CAMERA_PARAMS = ("camera", "name", "robot", "width", "height", "fps", "depth", "serial", "realtime_priority")


def make_camera_driver(cfg) -> CameraDriver:
    c = OmegaConf.to_container(cfg.camera)
    kind = c.pop("driver")
    if kind == "mujoco":
        from robot_stack.drivers.mujoco.camera import MujocoCamera, MujocoCameraConfig
        return MujocoCamera(MujocoCameraConfig(**c))
    if kind == "realsense":
        from robot_stack.drivers.realsense import make_camera
        return make_camera(c)
    raise ValueError(f"unknown camera driver {kind!r}; valid drivers: mujoco, realsense")


class CameraNode(Node):
    def __init__(self, driver: CameraDriver | None = None, **node_kwargs):
        super().__init__("camera_node", **node_kwargs)
        self.cfg = node_config(self, "camera_node", CAMERA_PARAMS,
                               key=lambda n: n if n in ("camera", "realtime_priority") else f"camera.{n}")
        startup_only(self)
        self.driver = driver or make_camera_driver(self.cfg)
        name = self.cfg.camera.name
        self.pub_color = self.create_publisher(Image, f"{name}/color/image_raw", qos.CAMERA_IMAGE)   # a second of history
        self.pub_info = self.create_publisher(CameraInfo, f"{name}/color/camera_info", qos.SENSOR)
        self.pub_depth = self.create_publisher(Image, f"{name}/depth/image_rect_raw", qos.IMAGE) \
            if self.cfg.camera.depth else None
        if hasattr(self.driver, "update_state"):
            self.create_subscription(Float64MultiArray, "sim/state", lambda m: self.driver.update_state(m.data),
                                     qos.SENSOR)
        self.frames = 0                          # published since the node started
        self.fps = float(self.cfg.camera.fps)
        self._first_publish: float | None = None   # monotonic time of the first published frame
        self._last_publish: float | None = None
        self._max_interval = 0.0                   # longest time between two published frames, since the last report
        self._publish_age: deque[float] = deque(maxlen=300)   # capture stamp to publish (s): this node's share of latency
        self.pub_diag = self.create_publisher(DiagnosticArray, "diagnostics", 10)
        self.create_timer(1.0, self._publish_diagnostics)
        self.error: str | None = None
        self._running = True
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"camera_{name}", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30.0)
        if self.error:
            raise RuntimeError(self.error)

    def _loop(self) -> None:
        raise_thread_priority(self.get_logger(), int(self.cfg.realtime_priority), "camera frame")
        try:
            self.driver.connect()
        except (DriverError, RuntimeError) as exc:
            self.error = f"camera {self.cfg.camera.name} could not connect: {exc}"
            self._ready.set()
            return
        self._ready.set()
        started = time.monotonic()
        while self._running and self.context.ok():
            try:
                frame = self.driver.read()
            except DriverError as exc:
                self._read_failed(exc, time.monotonic() - started)
                continue
            try:
                self._publish(frame)
            except Exception:                       # the context went down under us: a shutdown, not an error
                if self.context.ok():
                    raise
                break
            now = time.monotonic()
            if self._last_publish is None:
                self._first_publish = now
            else:
                self._max_interval = max(self._max_interval, now - self._last_publish)
            self._last_publish = now
            self.frames += 1
        try:
            self.driver.disconnect()             # on this thread: the GL context belongs to it
        except DriverError as exc:
            self.get_logger().error(f"while disconnecting: {exc}")

    def _read_failed(self, exc: DriverError, since_start: float) -> None:
        """Before the first frame, a failed read is most often the normal start-up race: a launcher starts the
        nodes together, and the twin cameras have no simulator state until arm_node publishes sim/state, which
        under load takes many seconds (imports, the model). That is a wait (WARN), and an ERROR only once it
        has lasted STARTUP_GRACE; after the first frame every failed read is an ERROR."""
        if self._first_publish is None and since_start < STARTUP_GRACE:
            self.get_logger().warning(f"waiting for the first frame ({since_start:.0f} s): {exc}",
                                      throttle_duration_sec=5.0)
        else:
            self.get_logger().error(str(exc), throttle_duration_sec=2.0)

    def _publish(self, frame) -> None:
        h, w = frame.rgb.shape[:2]
        self.pub_color.publish(convert.image_msg(frame.rgb, frame.stamp, frame.frame_id))
        self._publish_age.append(self.get_clock().now().nanoseconds * 1e-9 - frame.stamp)
        self.pub_info.publish(convert.camera_info_msg(frame.k, h, w, frame.stamp, frame.frame_id))
        if self.pub_depth is not None and frame.depth is not None:
            self.pub_depth.publish(convert.image_msg(frame.depth, frame.stamp, frame.frame_id, "16UC1"))

    def diagnostics(self) -> dict[str, str]:
        """Frames published since start, the rate achieved over that time against the configured `fps`, and the
        longest interval between frames since the last call."""
        frames, first, last = self.frames, self._first_publish, self._last_publish
        rate = (frames - 1) / (last - first) if frames > 1 and last > first else 0.0
        values = {"frames_published": str(frames), "fps_configured": f"{self.fps:g}", "fps_achieved": f"{rate:.2f}",
                  "frames_short_of_configured": str(max(0, round((last - first) * self.fps) + 1 - frames)
                                                    if frames else 0),
                  "max_interval_ms": f"{1000 * self._max_interval:.1f}"}
        if self._publish_age:
            ages = 1000 * np.array(self._publish_age)
            values["capture_to_publish_p50_ms"] = f"{np.percentile(ages, 50):.2f}"
            values["capture_to_publish_p99_ms"] = f"{np.percentile(ages, 99):.2f}"
        self._max_interval = 0.0
        return values

    def _publish_diagnostics(self) -> None:
        values = self.diagnostics()
        ok = self.error is None and float(values["fps_achieved"]) >= 0.95 * self.fps
        status = DiagnosticStatus(level=DiagnosticStatus.OK if ok else DiagnosticStatus.WARN,
                                  name=f"{self.get_name()}: camera {self.cfg.camera.name}",
                                  hardware_id=str(self.cfg.camera.name), message=self.error or "",
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(msg)

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=5.0)


def main(argv: list[str] | None = None) -> int:
    def serve() -> CameraNode:
        node = CameraNode()
        raise_thread_priority(node.get_logger(), int(node.cfg.realtime_priority), "camera spin")   # sim/state arrives here
        return node
    return run_node(serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
