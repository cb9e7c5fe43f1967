"""Forward kinematics and the TCP Jacobian of an arm from its DH table, in plain numpy.

The geometry is the one the twin's MJCF is generated from (`sim/assets/generate.py`):
the DH chain, then the flange offset, the hand's yaw about the flange and the TCP
offset along the tool z axis. Frames are the arm's base frame, which is the twin's
world frame (the arm stands at the origin), so these figures agree with MuJoCo's and
anything that only needs kinematics (the arm node's joint-limit check, a real-arm
driver) can do without a simulator.
"""
from __future__ import annotations

import numpy as np

from robot_stack import transforms as tf
from robot_stack.robots.spec import RobotSpec


def _rot_x(t: float) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    return np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1.0]])


def _rot_z(t: float) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])


def _trans(x: float, y: float, z: float) -> np.ndarray:
    t = np.eye(4)
    t[:3, 3] = (x, y, z)
    return t


class Kinematics:
    """`fk(q)`: TCP position and (x, y, z, w) quaternion; `jacobian(q)`: (6, dof), rows [linear; angular];
    `pose_and_jacobian(q)`: both at the cost of one.

    Each DH link transform is a constant part, a rotation about z by the joint angle, and
    another constant part (modified DH: Rx(alpha) Tx(a) | Rz(q) | Tz(d); standard DH:
    nothing | Rz(q) | Tz(d) Tx(a) Rx(alpha)). The constants between two joints' rotations
    are multiplied out once here, so a call costs one 4x4 product per joint: the arm node
    asks for the Jacobian inside its 1 kHz loop, where numpy's per-call overhead, not the
    arithmetic, is the cost.
    """

    def __init__(self, spec: RobotSpec):
        if spec.convention not in ("modified", "standard"):
            raise ValueError(f"robot {spec.name!r}: unknown DH convention {spec.convention!r}")
        self.spec = spec
        self.dof = n = spec.dof
        before, after = [], []
        for i in range(n):
            a, d, alpha = spec.a[i], spec.d[i], spec.alpha[i]
            if spec.convention == "modified":
                before.append(_rot_x(alpha) @ _trans(a, 0, 0))
                after.append(_trans(0, 0, d))
            else:
                before.append(np.eye(4))
                after.append(_trans(0, 0, d) @ _trans(a, 0, 0) @ _rot_x(alpha))
        g = spec.gripper
        tool = _trans(0, 0, spec.flange_d) @ _rot_z(g.yaw) @ _trans(0, 0, g.tcp_offset)
        # Frame of joint 0 (before it turns), then from each joint's turned frame to the next
        # joint's frame (the last: to the TCP).
        self._first = before[0]
        links = np.stack([after[i] @ (before[i + 1] if i + 1 < n else tool) for i in range(n)])
        self._links = links
        self._row0, self._row1 = links[:, 0].copy(), links[:, 1].copy()     # the rows a joint's rotation mixes

    def chain(self, q) -> np.ndarray:
        """(dof + 1, 4, 4) transforms in the base frame: each joint's frame before it turns, then the TCP.

        A joint turns about its frame's z axis through the frame's origin (modified DH: the
        link's own frame, which Tz(d) only slides along that axis; standard DH: the previous
        link's frame)."""
        q = np.asarray(q, dtype=float)
        if q.shape != (self.dof,):
            raise ValueError(f"{self.spec.name}: q must have shape ({self.dof},), got {q.shape}")
        if not np.isfinite(q).all():
            raise ValueError(f"{self.spec.name}: q must be finite, got {q}")
        c, s = np.cos(q)[:, None], np.sin(q)[:, None]
        turned = self._links.copy()                # Rz(q_i) @ link_i: only rows 0 and 1 change
        turned[:, 0] = c * self._row0 - s * self._row1
        turned[:, 1] = s * self._row0 + c * self._row1
        frames = np.empty((self.dof + 1, 4, 4))
        frames[0] = self._first
        for i in range(self.dof):
            np.matmul(frames[i], turned[i], out=frames[i + 1])
        return frames

    def tcp_transform(self, q) -> np.ndarray:
        """The 4x4 base-to-TCP transform."""
        return self.chain(q)[-1]

    def fk(self, q) -> tuple[np.ndarray, np.ndarray]:
        """TCP position (3,) and orientation as an (x, y, z, w) quaternion, in the base frame."""
        t = self.chain(q)[-1]
        return t[:3, 3].copy(), tf.mat_to_quat(t[:3, :3])

    def jacobian(self, q) -> np.ndarray:
        """The TCP's geometric Jacobian in the base frame: rows 0-2 linear, 3-5 angular velocity per joint rate."""
        return self._jacobian(self.chain(q))

    def pose_and_jacobian(self, q) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`fk(q)` and `jacobian(q)` from one pass down the chain (a controller step needs both)."""
        frames = self.chain(q)
        t = frames[-1]
        return t[:3, 3].copy(), tf.mat_to_quat(t[:3, :3]), self._jacobian(frames)

    def joint_anchors(self, q) -> np.ndarray:
        """(dof, 3): a point on each joint's axis where the joint physically sits (its link's origin in the
        robot's model): the DH frame's origin slid d along the axis, in either convention."""
        frames = self.chain(q)[:-1]
        return frames[:, :3, 3] + np.asarray(self.spec.d, dtype=float)[:, None] * frames[:, :3, 2]

    def _jacobian(self, frames: np.ndarray) -> np.ndarray:
        z = frames[:-1, :3, 2].T                          # (3, n): joint axes
        r = frames[-1, :3, 3, None] - frames[:-1, :3, 3].T   # (3, n): from each axis to the TCP
        jac = np.empty((6, self.dof))
        jac[0] = z[1] * r[2] - z[2] * r[1]        # z x r, written out: np.cross costs more than the chain
        jac[1] = z[2] * r[0] - z[0] * r[2]
        jac[2] = z[0] * r[1] - z[1] * r[0]
        jac[3:] = z
        return jac
