"""camera_node: publishes colour (and depth) images with CameraInfo from any CameraDriver.

Topics follow realsense-ros: `<name>/color/image_raw`, `<name>/color/camera_info`,
`<name>/depth/image_rect_raw` (16UC1, mm, aligned to colour). Header stamps are the
capture times the driver reports. Frames are read and published from one thread, so the
driver's blocking read sets the rate and a GL context stays on its thread.
"""
from __future__ import annotations

import threading

from omegaconf import OmegaConf
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float64MultiArray

from robot_stack.drivers.base import CameraDriver, DriverError
from robot_stack.nodes.common import node_config, run_node
from robot_stack.ros import convert, qos

CAMERA_PARAMS = ("camera", "name", "robot", "width", "height", "fps", "depth", "serial")


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
        self.cfg = node_config(self, "camera_node", CAMERA_PARAMS, key=lambda n: n if n == "camera" else f"camera.{n}")
        self.driver = driver or make_camera_driver(self.cfg)
        name = self.cfg.camera.name
        self.pub_color = self.create_publisher(Image, f"{name}/color/image_raw", qos.IMAGE)
        self.pub_info = self.create_publisher(CameraInfo, f"{name}/color/camera_info", qos.SENSOR)
        self.pub_depth = self.create_publisher(Image, f"{name}/depth/image_rect_raw", qos.IMAGE) \
            if self.cfg.camera.depth else None
        if hasattr(self.driver, "update_state"):
            self.create_subscription(Float64MultiArray, "sim/state", lambda m: self.driver.update_state(m.data),
                                     qos.SENSOR)
        self.frames = 0
        self.error: str | None = None
        self._running = True
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"camera_{name}", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30.0)
        if self.error:
            raise RuntimeError(self.error)

    def _loop(self) -> None:
        try:
            self.driver.connect()
        except (DriverError, RuntimeError) as exc:
            self.error = f"camera {self.cfg.camera.name} could not connect: {exc}"
            self._ready.set()
            return
        self._ready.set()
        while self._running and self.context.ok():
            try:
                frame = self.driver.read()
            except DriverError as exc:
                self.get_logger().error(str(exc), throttle_duration_sec=2.0)
                continue
            try:
                self._publish(frame)
            except Exception:                       # the context went down under us: a shutdown, not an error
                if self.context.ok():
                    raise
                break
            self.frames += 1
        try:
            self.driver.disconnect()             # on this thread: the GL context belongs to it
        except DriverError as exc:
            self.get_logger().error(f"while disconnecting: {exc}")

    def _publish(self, frame) -> None:
        h, w = frame.rgb.shape[:2]
        self.pub_color.publish(convert.image_msg(frame.rgb, frame.stamp, frame.frame_id))
        self.pub_info.publish(convert.camera_info_msg(frame.k, h, w, frame.stamp, frame.frame_id))
        if self.pub_depth is not None and frame.depth is not None:
            self.pub_depth.publish(convert.image_msg(frame.depth, frame.stamp, frame.frame_id, "16UC1"))

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=5.0)


def main(argv: list[str] | None = None) -> int:
    return run_node(CameraNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
