"""numpy <-> ROS message conversion, with validation of everything that comes in.

Incoming messages are checked field by field (frame, finiteness, unit quaternion,
encoding, sizes); a bad message raises `MessageError` with the reason, and the caller
logs it and does not move.
"""
from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Pose, PoseStamped, Transform, Wrench, WrenchStamped
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Header
from trajectory_msgs.msg import MultiDOFJointTrajectory, MultiDOFJointTrajectoryPoint

from robot_stack.types import ActionChunk


class MessageError(ValueError):
    """An incoming message failed validation."""


# --- time -------------------------------------------------------------------------------
def to_time(seconds: float) -> Time:
    sec = math.floor(seconds)
    return Time(sec=int(sec), nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def from_time(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def to_duration(seconds: float) -> Duration:
    sec = math.floor(seconds)
    return Duration(sec=int(sec), nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def from_duration(d: Duration) -> float:
    return d.sec + d.nanosec * 1e-9


def header(stamp: float, frame_id: str) -> Header:
    return Header(stamp=to_time(stamp), frame_id=frame_id)


# --- poses ------------------------------------------------------------------------------
def pose_msg(pos: np.ndarray, quat: np.ndarray, stamp: float, frame_id: str = "base") -> PoseStamped:
    msg = PoseStamped(header=header(stamp, frame_id))
    _fill_pose(msg.pose, pos, quat)
    return msg


def _fill_pose(pose: Pose, pos, quat) -> None:
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in pos)
    o = pose.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in quat)


def _check_pose(pos: np.ndarray, quat: np.ndarray, what: str) -> None:
    if not (np.isfinite(pos).all() and np.isfinite(quat).all()):
        raise MessageError(f"{what}: non-finite values (pos={pos.tolist()}, quat={quat.tolist()})")
    n = float(np.linalg.norm(quat))
    if abs(n - 1.0) > 1e-3:
        raise MessageError(f"{what}: quaternion is not unit length (norm {n:.4f})")


def parse_pose(msg: PoseStamped, frame_id: str = "base") -> tuple[np.ndarray, np.ndarray, float]:
    """(pos, quat xyzw, stamp) of a target pose, or MessageError."""
    if msg.header.frame_id not in (frame_id, ""):
        raise MessageError(f"target pose in frame {msg.header.frame_id!r}; expected {frame_id!r}")
    p, o = msg.pose.position, msg.pose.orientation
    pos = np.array([p.x, p.y, p.z])
    quat = np.array([o.x, o.y, o.z, o.w])
    _check_pose(pos, quat, "target pose")
    return pos, quat, from_time(msg.header.stamp)


# --- joints and wrench ------------------------------------------------------------------------
def joint_state_msg(names, q, dq, tau, stamp: float) -> JointState:
    msg = JointState(header=header(stamp, "base"))
    msg.name = list(names)
    msg.position = [float(v) for v in q]
    msg.velocity = [float(v) for v in dq]
    msg.effort = [] if tau is None else [float(v) for v in tau]
    return msg


def wrench_msg(wrench: np.ndarray, stamp: float, frame_id: str = "base") -> WrenchStamped:
    msg = WrenchStamped(header=header(stamp, frame_id))
    w: Wrench = msg.wrench
    w.force.x, w.force.y, w.force.z = (float(v) for v in wrench[:3])
    w.torque.x, w.torque.y, w.torque.z = (float(v) for v in wrench[3:])
    return msg


# --- action chunks ------------------------------------------------------------------------
def chunk_msg(chunk: ActionChunk, frame_id: str = "base", stamp: float | None = None) -> MultiDOFJointTrajectory:
    """Chunk as a two-joint trajectory: joint "ee" (the TCP target) and joint "gripper".

    Each point carries two transforms: joint 'ee' (the TCP target) and joint 'gripper'
    (translation.x = command in [0, 1]); times are relative to header.stamp, which is
    `stamp` when given (a policy passes the capture time of its observation, so the arm
    node can measure capture-to-arm latency) or the first step's time.
    """
    t0 = float(chunk.times[0] if stamp is None else stamp)
    msg = MultiDOFJointTrajectory(header=header(t0, frame_id))
    msg.joint_names = ["ee", "gripper"]
    for t, pos, quat, g in zip(chunk.times, chunk.positions, chunk.quats, chunk.gripper):
        ee = Transform()
        ee.translation.x, ee.translation.y, ee.translation.z = (float(v) for v in pos)
        ee.rotation.x, ee.rotation.y, ee.rotation.z, ee.rotation.w = (float(v) for v in quat)
        grip = Transform()
        grip.translation.x = float(g)
        grip.rotation.w = 1.0
        msg.points.append(MultiDOFJointTrajectoryPoint(transforms=[ee, grip], time_from_start=to_duration(t - t0)))
    return msg


def end_of_stream_msg(stamp: float, frame_id: str = "base") -> MultiDOFJointTrajectory:
    """A chunk with no points: the sender's stream of chunks ends on purpose (the arm holds, with no stall alarm),
    as an empty trajectory stops a JointTrajectoryController."""
    msg = MultiDOFJointTrajectory(header=header(stamp, frame_id))
    msg.joint_names = ["ee", "gripper"]
    return msg


def parse_chunk(msg: MultiDOFJointTrajectory, frame_id: str = "base", max_points: int | None = None) -> ActionChunk:
    """The chunk in a message, or MessageError. `max_points`: more points are refused before any is read."""
    if msg.header.frame_id not in (frame_id, ""):
        raise MessageError(f"action chunk in frame {msg.header.frame_id!r}; expected {frame_id!r}")
    if list(msg.joint_names) != ["ee", "gripper"]:
        raise MessageError(f"action chunk joint_names must be ['ee', 'gripper'], got {list(msg.joint_names)}")
    n = len(msg.points)
    if not n:
        raise MessageError("action chunk has no points")
    if max_points is not None and n > max_points:
        raise MessageError(f"action chunk has {n} points; at most {max_points} are accepted")
    t0 = from_time(msg.header.stamp)
    rows = np.empty((n, 9))          # time from start, x y z, qx qy qz qw, gripper: one row per point
    for i, point in enumerate(msg.points):
        if len(point.transforms) != 2:
            raise MessageError(f"action chunk point {i} has {len(point.transforms)} transforms; expected 2")
        ee, g = point.transforms
        p, o, d = ee.translation, ee.rotation, point.time_from_start
        rows[i] = (d.sec + d.nanosec * 1e-9, p.x, p.y, p.z, o.x, o.y, o.z, o.w, g.translation.x)
    times, pos, quat, grip = t0 + rows[:, 0], rows[:, 1:4], rows[:, 4:8], rows[:, 8]
    if not (np.isfinite(pos).all() and np.isfinite(quat).all()):
        i = int(np.flatnonzero(~(np.isfinite(pos).all(axis=1) & np.isfinite(quat).all(axis=1)))[0])
        _check_pose(pos[i], quat[i], f"action chunk point {i}")
    norms = np.linalg.norm(quat, axis=1)
    bad = np.flatnonzero(np.abs(norms - 1.0) > 1e-3)
    if bad.size:
        _check_pose(pos[bad[0]], quat[bad[0]], f"action chunk point {bad[0]}")
    if not np.isfinite(grip).all() or np.any((grip < 0) | (grip > 1)):
        raise MessageError(f"action chunk gripper commands must be finite and in [0, 1], got "
                           f"{np.round(grip[:20], 3).tolist()}{' ...' if n > 20 else ''}")
    try:
        return ActionChunk(times, pos.copy(), quat.copy(), grip.copy())
    except ValueError as exc:
        raise MessageError(str(exc)) from exc


def chunk_bytes_limit(max_points: int) -> int:
    """The serialized size of the largest chunk message with `max_points` points that a sender may fill in full
    (velocities and accelerations too): a larger message is refused before it is deserialized."""
    from geometry_msgs.msg import Twist
    from rclpy.serialization import serialize_message

    point = MultiDOFJointTrajectoryPoint(transforms=[Transform(), Transform()], velocities=[Twist(), Twist()],
                                         accelerations=[Twist(), Twist()])
    msg = MultiDOFJointTrajectory(header=header(0.0, "base"), joint_names=["ee", "gripper"], points=[point] * max_points)
    return len(serialize_message(msg)) + 1024      # room for a longer frame id or joint name, still refused by parsing


# --- images ---------------------------------------------------------------------------------
_ENCODINGS = {"rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "mono8": (np.uint8, 1), "16UC1": (np.uint16, 1),
              "32FC1": (np.float32, 1)}


def image_msg(array: np.ndarray, stamp: float, frame_id: str, encoding: str = "rgb8") -> Image:
    dtype, channels = _ENCODINGS[encoding]
    array = np.ascontiguousarray(array, dtype=dtype)
    msg = Image(header=header(stamp, frame_id), height=array.shape[0], width=array.shape[1], encoding=encoding,
                is_bigendian=0, step=array.shape[1] * channels * array.itemsize)
    msg.data = array.tobytes()   # bytes -> the message's byte array without a Python-level loop
    return msg


def parse_image(msg: Image, encodings: tuple[str, ...] = ("rgb8",), shape: tuple[int, int] | None = None) -> np.ndarray:
    if msg.encoding not in encodings:
        raise MessageError(f"image encoding {msg.encoding!r}; expected one of {list(encodings)}")
    if shape is not None and (msg.height, msg.width) != tuple(shape):
        raise MessageError(f"image is {msg.height}x{msg.width}; expected {shape[0]}x{shape[1]}")
    dtype, channels = _ENCODINGS[msg.encoding]
    row = msg.width * channels * np.dtype(dtype).itemsize
    if msg.step != row or len(msg.data) != msg.height * row:
        raise MessageError(f"image data size {len(msg.data)} does not match {msg.height}x{msg.width} {msg.encoding}")
    array = np.frombuffer(msg.data, dtype=dtype).reshape(msg.height, msg.width, *([channels] if channels > 1 else []))
    return array[..., ::-1] if msg.encoding == "bgr8" else array


def camera_info_msg(k: np.ndarray, height: int, width: int, stamp: float, frame_id: str) -> CameraInfo:
    msg = CameraInfo(header=header(stamp, frame_id), height=height, width=width, distortion_model="plumb_bob")
    msg.d = [0.0] * 5
    msg.k = [float(v) for v in np.asarray(k).ravel()]
    msg.r = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
    p = np.zeros((3, 4))
    p[:, :3] = k
    msg.p = [float(v) for v in p.ravel()]
    return msg
