"""The driver's own ROS 2 participant: /joint_states in, JointTrajectory points out, on a context of its own.

The driver runs inside the control loop (the arm node's control thread, or the controller process), so its
node must never be spun by the arm node's executor, where a callback queue or a graph event could delay a
tick. It gets its own `rclpy.Context`, node and single-threaded executor, spun by a daemon thread: a callback
only maps names to indices and swaps one reference (`latest`), which the control thread reads without a lock.
Signal handlers stay the host's (the controller process installs its own before the driver connects).
"""
from __future__ import annotations

import threading
import time
from typing import NamedTuple

import numpy as np

from robot_stack.drivers.ros2_control.config import Ros2ControlConfig

UNKNOWN_NODE = "_NODE_NAME_UNKNOWN_"     # what the graph says of a publisher whose node discovery has not shown yet
GRAPH_RETRY = 0.2                         # s between graph look-ups for a publisher not yet known


class JointSnapshot(NamedTuple):
    """The newest complete arm state from /joint_states, in the spec's joint order."""

    q: np.ndarray
    dq: np.ndarray
    tau: np.ndarray | None
    gripper_width: float
    stamp: float             # the message's header stamp (s, the publisher's clock); 0 when it carried none
    received: float          # time.monotonic() at receipt: what staleness is measured against


class NameMap:
    """Indices of the configured joints in a message's `name` list, cached per name list (a publisher keeps its
    order, but different publishers, and the UR driver, list joints in an order of their own)."""

    def __init__(self, arm: tuple[str, ...], fingers: tuple[str, ...]):
        self.arm, self.fingers = arm, fingers
        self._cache: dict[tuple[str, ...], tuple[np.ndarray | None, np.ndarray]] = {}

    def indices(self, names) -> tuple[np.ndarray | None, np.ndarray]:
        """(arm indices, or None if an arm joint is missing; indices of the finger joints present)."""
        key = tuple(names)
        found = self._cache.get(key)
        if found is None:
            where = {n: i for i, n in enumerate(key)}
            arm = np.array([where[n] for n in self.arm]) if all(n in where for n in self.arm) else None
            found = (arm, np.array([where[n] for n in self.fingers if n in where], dtype=int))
            if len(self._cache) < 64:
                self._cache[key] = found
        return found


def snapshot_from(msg, names: NameMap, received: float, previous: JointSnapshot | None) -> JointSnapshot | None:
    """A JointState as a snapshot of our arm, or None when it holds no finite position for every arm joint (a
    gripper-only message updates the width of the previous snapshot without making it fresher)."""
    arm, fingers = names.indices(msg.name)
    position = np.asarray(msg.position, dtype=float)
    n = len(msg.name)
    if len(position) != n:
        return None
    width = float(position[fingers].sum()) if len(fingers) else (previous.gripper_width if previous else 0.0)
    if arm is None:
        if previous is not None and len(fingers) and np.isfinite(width):
            return previous._replace(gripper_width=width)
        return None
    q = position[arm]
    if not np.isfinite(q).all():
        return None
    velocity, effort = np.asarray(msg.velocity, dtype=float), np.asarray(msg.effort, dtype=float)
    dq = velocity[arm] if len(velocity) == n else np.zeros(len(arm))
    tau = effort[arm] if len(effort) == n else None
    stamp = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec
    return JointSnapshot(q, np.nan_to_num(dq), tau, width if np.isfinite(width) else 0.0, stamp, received)


class Ros2ControlBridge:
    """Subscribes to the joint states, publishes trajectory points; `start()` / `close()` own the context."""

    def __init__(self, config: Ros2ControlConfig):
        self.config = config
        self.names = NameMap(config.joint_names, config.gripper_joint_names)
        self.latest: JointSnapshot | None = None
        self.ignored = 0                          # messages from other publishers (the arm node's own echo)
        self._publisher_ok: dict[bytes, bool] = {}
        self._graph_checked = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.context = self.node = self.executor = None

    def start(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from rclpy.signals import SignalHandlerOptions
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray
        from trajectory_msgs.msg import JointTrajectory

        c = self.config
        self.context = rclpy.Context()
        rclpy.init(args=[], context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(c.node_name, context=self.context, start_parameter_services=False)
        # Best effort takes both a reliable broadcaster and a best-effort one; a JTC subscribes reliably, depth 10.
        self.node.create_subscription(JointState, c.state_topic, self._on_joint_state, qos_profile_sensor_data)
        reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.trajectory_pub = self.node.create_publisher(JointTrajectory, c.trajectory_topic, reliable)
        self.gripper_pub = self.node.create_publisher(Float64MultiArray, c.gripper_command_topic, reliable) \
            if c.gripper_command_topic else None
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="ros2_control_bridge", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException
        while not self._stop.is_set():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except ExternalShutdownException:
                return
            except Exception:                      # the context went down under the executor: a close
                if self._stop.is_set() or not self.context.ok():
                    return
                raise

    def close(self) -> None:
        import rclpy
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self.executor is not None:
            self.executor.shutdown(timeout_sec=1.0)
        if self.node is not None:
            self.node.destroy_node()
        if self.context is not None:
            rclpy.try_shutdown(context=self.context)
        self.context = self.node = self.executor = self._thread = None

    # --- joint states (executor thread) --------------------------------------------------------
    def _from_expected_publisher(self, info) -> bool:
        """Whether the message comes from the `state_publisher` node, looked up in the graph by publisher id."""
        want = self.config.state_publisher
        if not want:
            return True
        gid = bytes(info["publisher_gid"]["data"]) if info.get("publisher_gid") else b""
        ok = self._publisher_ok.get(gid)
        if ok is None and time.monotonic() - self._graph_checked > GRAPH_RETRY:
            self._graph_checked = time.monotonic()
            for endpoint in self.node.get_publishers_info_by_topic(self.config.state_topic):
                if endpoint.node_name != UNKNOWN_NODE:
                    self._publisher_ok[bytes(endpoint.endpoint_gid)] = endpoint.node_name == want
            ok = self._publisher_ok.get(gid)
        return bool(ok)

    def _on_joint_state(self, msg, info) -> None:
        if not self._from_expected_publisher(info):
            self.ignored += 1
            return
        snap = snapshot_from(msg, self.names, time.monotonic(), self.latest)
        if snap is not None:
            self.latest = snap

    # --- commands (control thread) -------------------------------------------------------------
    def publish_point(self, q: np.ndarray, time_from_start: float) -> None:
        """One point, stamped zero: the controller starts it on receipt, so the two hosts' clocks need not agree."""
        from builtin_interfaces.msg import Duration
        from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

        ns = int(round(time_from_start * 1e9))
        point = JointTrajectoryPoint(positions=[float(v) for v in q],
                                     time_from_start=Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000))
        self.trajectory_pub.publish(JointTrajectory(joint_names=list(self.config.joint_names), points=[point]))

    def publish_gripper(self, positions: list[float]) -> None:
        from std_msgs.msg import Float64MultiArray
        if self.gripper_pub is not None:
            self.gripper_pub.publish(Float64MultiArray(data=[float(v) for v in positions]))
