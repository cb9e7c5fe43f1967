"""Damped least-squares inverse kinematics on the MuJoCo model (for resets, not control)."""
from __future__ import annotations

import mujoco
import numpy as np

from robot_stack import transforms as tf
from robot_stack.sim.scene import Scene


def solve_ik(scene: Scene, pos: np.ndarray, quat: np.ndarray, q_init: np.ndarray | None = None,
             iters: int = 200, tol: float = 1e-4, damping: float = 1e-3) -> np.ndarray:
    """Joint angles putting the TCP at `pos`, `quat`; raises if it cannot get within 1 mm."""
    m, d = scene.model, scene.data
    q = np.array(scene.spec.q_home if q_init is None else q_init, dtype=float)
    lo, hi = np.array(scene.spec.q_min), np.array(scene.spec.q_max)
    jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
    saved = d.qpos.copy()
    err = np.full(6, np.inf)
    try:
        for _ in range(iters):
            d.qpos[scene.arm_qpos] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            cur_p = d.site_xpos[scene.tcp_site]
            cur_q = tf.mat_to_quat(d.site_xmat[scene.tcp_site].reshape(3, 3))
            err = np.concatenate((pos - cur_p, tf.rotation_error(quat, cur_q)))
            if np.linalg.norm(err) < tol:
                break
            mujoco.mj_jacSite(m, d, jacp, jacr, scene.tcp_site)
            jac = np.vstack((jacp, jacr))[:, scene.arm_dof]
            dq = jac.T @ np.linalg.solve(jac @ jac.T + damping * np.eye(6), err)
            q = np.clip(q + dq, lo, hi)
    finally:
        d.qpos[:] = saved
        mujoco.mj_forward(m, d)
    if np.linalg.norm(err[:3]) > 1e-3 or np.linalg.norm(err[3:]) > 1e-2:
        raise ValueError(f"no IK solution within tolerance for pos={np.round(pos, 3).tolist()} "
                         f"(residual {np.linalg.norm(err[:3]) * 1000:.1f} mm, {np.degrees(np.linalg.norm(err[3:])):.1f} deg)")
    return q
