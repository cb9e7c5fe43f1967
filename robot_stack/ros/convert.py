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


def parse_chunk(msg: MultiDOFJointTrajectory, frame_id: str = "base") -> ActionChunk:
    if msg.header.frame_id not in (frame_id, ""):
        raise MessageError(f"action chunk in frame {msg.header.frame_id!r}; expected {frame_id!r}")
    if list(msg.joint_names) != ["ee", "gripper"]:
        raise MessageError(f"action chunk joint_names must be ['ee', 'gripper'], got {list(msg.joint_names)}")
    if not msg.points:
        raise MessageError("action chunk has no points")
    t0 = from_time(msg.header.stamp)
    times, pos, quat, grip = [], [], [], []
    for i, point in enumerate(msg.points):
        if len(point.transforms) != 2:
            raise MessageError(f"action chunk point {i} has {len(point.transforms)} transforms; expected 2")
        ee, g = point.transforms
        times.append(t0 + from_duration(point.time_from_start))
        pos.append([ee.translation.x, ee.translation.y, ee.translation.z])
        quat.append([ee.rotation.x, ee.rotation.y, ee.rotation.z, ee.rotation.w])
        grip.append(g.translation.x)
    pos, quat, grip = np.array(pos), np.array(quat), np.array(grip)
    for i in range(len(times)):
        _check_pose(pos[i], quat[i], f"action chunk point {i}")
    if not np.isfinite(grip).all() or np.any((grip < 0) | (grip > 1)):
        raise MessageError(f"action chunk gripper commands must be finite and in [0, 1], got {grip.tolist()}")
    try:
        return ActionChunk(np.array(times), pos, quat, grip)
    except ValueError as exc:
        raise MessageError(str(exc)) from exc


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
