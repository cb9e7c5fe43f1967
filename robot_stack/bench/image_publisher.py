"""A stand-alone image publisher process for `robot-stack bench transport`.

Publishes frames of a given size and encoding at a fixed rate, stamping each with the
time it was handed to rclpy and numbering it in frame_id, so the receiver can measure
latency and count drops.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--encoding", default="rgb8", choices=["rgb8", "16UC1"])
    parser.add_argument("--count", type=int, default=1800)
    parser.add_argument("--topic", default="bench/image")
    args = parser.parse_args()

    import rclpy
    from sensor_msgs.msg import Image

    from robot_stack.ros import convert, qos

    rclpy.init()
    node = rclpy.create_node("bench_image_publisher")
    pub = node.create_publisher(Image, args.topic, qos.IMAGE)
    rng = np.random.default_rng(0)
    shape = (args.height, args.width, 3) if args.encoding == "rgb8" else (args.height, args.width)
    dtype = np.uint8 if args.encoding == "rgb8" else np.uint16
    frames = [rng.integers(0, 255, shape).astype(dtype) for _ in range(4)]
    msgs = [convert.image_msg(f, 0.0, "0", args.encoding) for f in frames]   # built once: measure transport
    while pub.get_subscription_count() == 0:
        time.sleep(0.01)
    time.sleep(0.5)
    next_t = time.monotonic()
    for i in range(args.count):
        msg = msgs[i % len(msgs)]
        msg.header.frame_id = str(i)
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        next_t += 1.0 / args.rate
        time.sleep(max(0.0, next_t - time.monotonic()))
    time.sleep(0.5)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
