"""The arm in the twin: operational-space control at the physics rate.

`SimArm` is what a real arm's controller box is to its driver: it takes end-effector
targets (or joint targets) at policy rate, interpolates them to the control rate under
end-effector speed limits, and closes the loop every physics step with an
operational-space (Cartesian impedance) law plus null-space posture control, gravity and
Coriolis compensation, and the joint torque limits of the real arm.
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import mujoco
import numpy as np

from robot_stack import transforms as tf
from robot_stack.control.interpolation import JointInterpolator, PoseInterpolator
from robot_stack.sim.scene import Scene, SimulationError

log = logging.getLogger(__name__)

JOINT_SPEED_BRAKE = 0.5       # of a joint's speed over its limit taken off per physics step
TASK_INERTIA_FLOOR = 1e-2     # the least eigenvalue of J M^-1 J^T the law inverts (at home the least is 0.08)


@dataclass
class ImpedanceGains:
    """Stiffness in units of 1/s^2 (the law multiplies by the task-space inertia)."""

    translation: float = 1200.0
    rotation: float = 800.0
    damping_ratio: float = 1.0
    nullspace: float = 40.0
    joint: float = 600.0


@dataclass
class Workspace:
    """Where end-effector targets may go, in the base frame (m)."""

    low: tuple[float, float, float] = (0.15, -0.55, -0.005)
    high: tuple[float, float, float] = (0.85, 0.55, 0.65)
    max_reach: float = 0.82     # from the shoulder (first joint axis at its height)


def _as_slice(indices: np.ndarray):
    """`indices` as a slice when they are consecutive (indexing with it gives a view), else unchanged."""
    idx = np.asarray(indices)
    if idx.size and np.array_equal(idx, np.arange(idx[0], idx[0] + idx.size)):
        return slice(int(idx[0]), int(idx[0]) + idx.size)
    return idx


class SimArm:
    def __init__(self, scene: Scene, gains: ImpedanceGains | None = None, workspace: Workspace | None = None):
        self.scene = scene
        self.spec = scene.spec
        self.gains = gains or ImpedanceGains()
        self.workspace = workspace or Workspace()
        self.dt = scene.model.opt.timestep
        self.pose_interp = PoseInterpolator(self.dt, self.spec.max_ee_speed, self.spec.max_ee_angular_speed)
        self.joint_interp = JointInterpolator(self.dt, np.array(self.spec.dq_max) * 0.5)
        self.mode = "pose"
        self.gripper_cmd = 0.0
        self.warnings: deque[str] = deque(maxlen=5)    # the latest clipping warnings: a repeat of one is not logged
        self.log_warnings = True      # off where clipping is routine (RL exploration pushes past the workspace)
        nv = scene.model.nv
        self._jac = np.zeros((6, nv))                 # buffers the 1 kHz law fills in place
        self._minv_jt = np.zeros((6, nv))
        self._dofs = _as_slice(scene.arm_dof)         # views, not fancy-index copies, where the indices are a range
        self._qpos = _as_slice(scene.arm_qpos)
        self._eye_n = np.eye(len(scene.arm_dof))
        self._q_lo = np.array(self.spec.q_min)
        self._q_hi = np.array(self.spec.q_max)
        self._dq_max = np.array(self.spec.dq_max)
        self._shoulder = np.array([0.0, 0.0, self.spec.d[0]])
        g = self.gains                               # task-space gains, built once, not every 1 ms tick
        self._kp = np.array([g.translation] * 3 + [g.rotation] * 3)
        self._kd = 2.0 * g.damping_ratio * np.sqrt(self._kp)
        self.hold()

    # --- commands (policy rate) ------------------------------------------------------
    def hold(self) -> None:
        """Stop where the arm is now: set points jump to the measured pose."""
        pos, quat = self.scene.ee_pose()
        self.pose_interp.reset(pos, quat)
        self.joint_interp.reset(self.scene.q)
        self._q_null = self.scene.q

    def command_pose(self, pos: np.ndarray, quat: np.ndarray, gripper: float, duration: float) -> None:
        pos = np.asarray(pos, dtype=float)
        quat = np.asarray(quat, dtype=float)
        if not (np.isfinite(pos).all() and np.isfinite(quat).all() and np.isfinite(gripper)):
            raise ValueError(f"non-finite pose command: pos={pos}, quat={quat}, gripper={gripper}")
        quat = tf.normalize(quat)
        clipped = self.clip_position(pos)
        if not np.allclose(clipped, pos):
            self._warn(f"target {np.round(pos, 3).tolist()} outside the workspace/reach; clipped to "
                       f"{np.round(clipped, 3).tolist()}")
        if self.mode != "pose":
            self.hold()
            self.mode = "pose"
        self.pose_interp.set_goal(clipped, quat, duration)
        self._set_gripper(gripper)

    def command_joints(self, q: np.ndarray, gripper: float, duration: float) -> None:
        q = np.asarray(q, dtype=float)
        if q.shape != (self.spec.dof,) or not np.isfinite(q).all():
            raise ValueError(f"joint command must be {self.spec.dof} finite values, got {q}")
        clipped = np.clip(q, self._q_lo, self._q_hi)
        if not np.allclose(clipped, q):
            self._warn(f"joint target outside limits; clipped to {np.round(clipped, 3).tolist()}")
        if self.mode != "joints":
            self.hold()
            self.mode = "joints"
        self.joint_interp.set_goal(clipped, duration)
        self._set_gripper(gripper)

    def clip_position(self, pos: np.ndarray) -> np.ndarray:
        out = np.clip(pos, self.workspace.low, self.workspace.high)
        rel = out - self._shoulder
        dist = np.linalg.norm(rel)
        if dist > self.workspace.max_reach:
            out = self._shoulder + rel * (self.workspace.max_reach / dist)
        return out

    def _set_gripper(self, g: float) -> None:
        g = float(g)
        if not 0.0 <= g <= 1.0:
            self._warn(f"gripper command {g} outside [0, 1]; clipped")
            g = min(max(g, 0.0), 1.0)
        self.gripper_cmd = g
        self.scene.data.ctrl[self.scene.gripper_act] = self.spec.gripper.max_opening * (1.0 - g)

    def _warn(self, msg: str) -> None:
        if self.log_warnings and msg not in self.warnings:
            log.warning(msg)
        self.warnings.append(msg)

    # --- control loop (physics rate) -----------------------------------------------------
    def track_pose(self, pos: np.ndarray, quat: np.ndarray, gripper: float) -> None:
        """One control tick toward a set point given by the caller (the arm node interpolates)."""
        self.mode = "pose"
        self._set_gripper(gripper)
        self.scene.data.ctrl[self.scene.arm_act] = self._operational_space_torque(pos, quat)
        mujoco.mj_step(self.scene.model, self.scene.data)
        self.scene.check_finite()

    def track_joints(self, q: np.ndarray, gripper: float) -> None:
        self.mode = "joints"
        self._set_gripper(gripper)
        self.scene.data.ctrl[self.scene.arm_act] = self._joint_torque(q)
        mujoco.mj_step(self.scene.model, self.scene.data)
        self.scene.check_finite()

    def step(self, ticks: int = 1) -> None:
        """Run `ticks` control periods, one physics step each."""
        m, d = self.scene.model, self.scene.data
        for _ in range(ticks):
            if self.mode == "pose":
                tau = self._operational_space_torque(*self.pose_interp.step())
            else:
                tau = self._joint_torque(self.joint_interp.step())
            d.ctrl[self.scene.arm_act] = tau
            mujoco.mj_step(m, d)
        self.scene.check_finite()

    def _operational_space_torque(self, pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
        m, d, s = self.scene.model, self.scene.data, self.scene
        dofs = self._dofs
        jac_full = self._jac
        mujoco.mj_jacSite(m, d, jac_full[:3], jac_full[3:], s.tcp_site)
        mujoco.mj_solveM(m, d, self._minv_jt, jac_full)        # rows: (M^-1 J^T)^T
        jac = jac_full[:, dofs]
        minv_jt = self._minv_jt[:, dofs].T                        # (n, 6)
        lam = self._task_inertia(jac @ minv_jt)
        qd = d.qvel[dofs]
        vel = jac @ qd
        err = np.empty(6)
        err[:3] = pos - d.site_xpos[s.tcp_site]
        cur = np.empty(4)
        mujoco.mju_mat2Quat(cur, d.site_xmat[s.tcp_site])
        err_r = np.empty(3)
        mujoco.mju_subQuat(err_r, tf.to_mj(quat), cur)            # in the TCP frame
        err[3:] = d.site_xmat[s.tcp_site].reshape(3, 3) @ err_r   # to the base frame
        accel = self._kp * err - self._kd * vel
        tau = jac.T @ (lam @ accel)
        # Null-space posture: pull toward the posture held when the command began.
        jbar = minv_jt @ lam                                      # dynamically consistent inverse
        null = self._eye_n - jac.T @ jbar.T
        q = d.qpos[self._qpos]
        kn = self.gains.nullspace
        tau += null @ (kn * (self._q_null - q) - 2.0 * np.sqrt(kn) * qd)
        tau += self._joint_speed_brake(qd)
        tau += d.qfrc_bias[dofs]
        return tau

    def _task_inertia(self, inverse: np.ndarray) -> np.ndarray:
        """The task-space inertia from its inverse J M^-1 J^T, singularity-robust: the eigenvalues that vanish as
        the arm nears a singularity (joint 2 near 0 aligns joints 1 and 3; joint 6 near 0 or pi, joints 5 and 7) are
        floored, so the law does not ask for unbounded torque along a direction the arm can barely move in. With only
        a 1e-4 regularisation the twin whipped joints 5 and 7 at 11 rad/s against each other there; away from a
        singularity every eigenvalue is far above the floor and the law is unchanged."""
        if not np.isfinite(inverse).all():
            self.scene.check_finite()               # a state gone bad: the episode ends with the twin's own error
            raise SimulationError("the task-space inertia became non-finite; ending the episode")
        w, v = np.linalg.eigh(inverse)
        return (v / np.maximum(w, TASK_INERTIA_FLOOR)) @ v.T

    def _joint_speed_brake(self, qd: np.ndarray) -> np.ndarray:
        """Torque that brakes any joint past its speed limit, as the real arms' controllers will not let a joint
        run past it (the Franka stops with a reflex). Without it the twin's arm spun joints 1 and 3 against each
        other at 20 rad/s in the self-motion that opens at the shoulder singularity (joint 2 near 0, their axes
        in line), which the task-space law neither sees nor damps; the TCP went 0.65 m/s."""
        excess = qd - np.clip(qd, -self._dq_max, self._dq_max)
        if not excess.any():
            return np.zeros_like(qd)
        accel = np.zeros(self.scene.model.nv)
        accel[self.scene.arm_dof] = -(JOINT_SPEED_BRAKE / self.dt) * excess
        torque = np.zeros(self.scene.model.nv)
        mujoco.mj_mulM(self.scene.model, self.scene.data, torque, accel)
        return torque[self.scene.arm_dof]

    def _joint_torque(self, q_target: np.ndarray) -> np.ndarray:
        d, s, g = self.scene.data, self.scene, self.gains
        q = d.qpos[s.arm_qpos]
        qd = d.qvel[s.arm_dof]
        kd = 2.0 * np.sqrt(g.joint)
        # Computed torque: the PD acceleration times the inertia matrix, so all joints respond alike.
        accel = np.zeros(self.scene.model.nv)
        accel[s.arm_dof] = g.joint * (q_target - q) - kd * qd
        torque = np.zeros(self.scene.model.nv)
        mujoco.mj_mulM(self.scene.model, d, torque, accel)
        return torque[s.arm_dof] + d.qfrc_bias[s.arm_dof]
