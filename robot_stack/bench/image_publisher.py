"""A stand-alone image publisher process for `robot-stack bench transport` and `bench recording --source replay`.

Publishes frames of a given size and encoding at a fixed rate, stamping each with the
time it was handed to rclpy and numbering it in frame_id, so the receiver can measure
latency and count drops. The frames are built before the first publish, so the rate does
not depend on how fast they can be made: random pixels (transport), or frames pre-rendered
from a twin camera (`--twin-camera front`: what a recorder stores, at the size of the stream)
and replayed in a loop. `--count 0` publishes until SIGINT/SIGTERM. On exit it prints one
JSON line: frames published, the rate achieved, and how many periods it fell behind.
"""
from __future__ import annotations

import argparse
import json
import signal
import time

import numpy as np


def twin_frames(camera: str, robot: str, width: int, height: int, n: int) -> list[np.ndarray]:
    """`n` frames of a twin camera, the arm swept through a slow motion about home (rendered once, up front)."""
    from robot_stack.sim.camera import CameraRenderer
    from robot_stack.sim.scene import Scene

    scene = Scene(robot)
    scene.reset_to_home()
    renderer = CameraRenderer(scene, height, width)
    home = scene.q
    frames = []
    try:
        for i in range(n):
            phase = 2 * np.pi * i / n
            scene.set_q(home + 0.25 * np.sin(phase + np.arange(home.size)))
            frames.append(renderer.render(camera).copy())
    finally:
        renderer.close()
    return frames


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--encoding", default="rgb8", choices=["rgb8", "16UC1"])
    parser.add_argument("--count", type=int, default=1800, help="frames to publish; 0: until SIGINT/SIGTERM")
    parser.add_argument("--topic", default="bench/image")
    parser.add_argument("--twin-camera", metavar="NAME", help="replay frames pre-rendered from this twin camera")
    parser.add_argument("--robot", default="panda")
    parser.add_argument("--frames", type=int, default=30, help="distinct frames to pre-render (--twin-camera)")
    parser.add_argument("--camera-qos", action="store_true",
                        help="the camera node's publisher QoS (default: robot_stack.ros.qos.IMAGE)")
    args = parser.parse_args()

    import rclpy
    from sensor_msgs.msg import Image

    from robot_stack.ros import convert, qos

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    if args.twin_camera:
        frames = twin_frames(args.twin_camera, args.robot, args.width, args.height, args.frames)
        frame_id = f"{args.twin_camera}_color_optical_frame"
    else:
        rng = np.random.default_rng(0)
        shape = (args.height, args.width, 3) if args.encoding == "rgb8" else (args.height, args.width)
        dtype = np.uint8 if args.encoding == "rgb8" else np.uint16
        frames = [rng.integers(0, 255, shape).astype(dtype) for _ in range(4)]
        frame_id = None
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("bench_image_publisher")
    pub = node.create_publisher(Image, args.topic, qos.CAMERA_IMAGE if args.camera_qos else qos.IMAGE)
    msgs = [convert.image_msg(f, 0.0, "0", args.encoding) for f in frames]   # built once: measure transport
    while pub.get_subscription_count() == 0 and not stop:
        time.sleep(0.01)
    time.sleep(0.5)
    period = 1.0 / args.rate
    published, behind = 0, 0
    t0 = next_t = time.monotonic()
    while not stop and (args.count == 0 or published < args.count):
        msg = msgs[published % len(msgs)]
        msg.header.frame_id = frame_id or str(published)
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        published += 1
        next_t += period
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -period:
            behind += 1                   # late by more than a period: the next frames go out back to back
    elapsed = time.monotonic() - t0
    print(json.dumps({"topic": args.topic, "published": published, "seconds": round(elapsed, 2),
                      "rate_hz": round(published / elapsed, 2) if elapsed > 0 else 0.0,
                      "periods_late": behind}), flush=True)
    time.sleep(0.5)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
