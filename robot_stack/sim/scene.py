"""The MuJoCo scene: one arm on the table with blocks, bowl, target zone and drawer.

`Scene` owns the model and data and answers the questions tasks, experts and the
controller ask (where is the TCP, what touches what, how wide is the gripper); it holds
no control logic.
"""
from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from robot_stack import transforms as tf
from robot_stack.robots.spec import RobotSpec, get_robot

ASSETS = Path(__file__).resolve().parent / "assets"
BLOCKS = ("red", "green", "blue")
BLOCK_HALF = 0.02
TABLE_Z = 0.0


class SimulationError(RuntimeError):
    """The physics state became invalid (NaN/inf or divergence); the episode must end."""


class Scene:
    def __init__(self, robot: str | RobotSpec = "panda"):
        self.spec = robot if isinstance(robot, RobotSpec) else get_robot(robot)
        self.model = mujoco.MjModel.from_xml_path(str(ASSETS / f"{self.spec.name}_scene.xml"))
        self.data = mujoco.MjData(self.model)
        m = self.model
        n = self.spec.dof
        joints = [m.joint(f"joint{i + 1}") for i in range(n)]
        self.arm_qpos = np.array([j.qposadr[0] for j in joints])
        self.arm_dof = np.array([j.dofadr[0] for j in joints])
        self.arm_act = np.array([m.actuator(f"act{i + 1}").id for i in range(n)])
        self.gripper_act = m.actuator("gripper").id
        self.finger_qpos = np.array([m.joint(f).qposadr[0] for f in ("finger_left", "finger_right")])
        self.finger_dof = np.array([m.joint(f).dofadr[0] for f in ("finger_left", "finger_right")])
        self.tcp_site = m.site("tcp").id
        self.hand_body = m.body("hand").id
        self.gripper_geoms = frozenset(
            g for g in range(m.ngeom) if self._is_descendant(m.geom_bodyid[g], self.hand_body))
        self.gripper_geom_mask = np.isin(np.arange(m.ngeom), list(self.gripper_geoms))   # by geom id, vectorised
        self.robot_geoms = frozenset(
            g for g in range(m.ngeom) if self._is_descendant(m.geom_bodyid[g], m.body("base").id))
        self.finger_geoms = frozenset((m.geom("finger_left").id, m.geom("finger_right").id))
        self.drawer_qpos = m.joint("drawer").qposadr[0]
        self.drawer_dof = m.joint("drawer").dofadr[0]
        self.target_zone_mocap = m.body("target_zone").mocapid[0]
        self.spot_mocap = m.body("spot").mocapid[0]
        # load_state_message reads a message without the spot as one recorded before the spot was added
        assert self.spot_mocap == m.nmocap - 1, "the spot must stay the last mocap body (see scene.xml)"
        self.spot_parked = m.body("spot").pos.copy()
        self.max_opening = self.spec.gripper.max_opening
        self.reset_to_home()

    def _is_descendant(self, body: int, ancestor: int) -> bool:
        while body > 0:
            if body == ancestor:
                return True
            body = self.model.body_parentid[body]
        return ancestor == 0

    # --- state -----------------------------------------------------------------------
    @property
    def state_message_size(self) -> int:
        """Length of a sim/state message for this scene: stamp, time, qpos, mocap positions."""
        return 2 + self.model.nq + 3 * self.model.nmocap

    def sim_state(self) -> np.ndarray:
        """Simulator time, qpos and mocap positions: enough for a mirror to show the same scene."""
        d = self.data
        return np.concatenate(([d.time], d.qpos, d.mocap_pos.ravel()))

    def load_state_message(self, message) -> float:
        """Set this scene from a sim/state message ([stamp, *sim_state()]) and run forward kinematics and
        contacts; returns the stamp. A message of another size (another robot's scene) is a ValueError."""
        state = np.asarray(message, dtype=float)
        # A message three values short was recorded before the scene had its last mocap body, the spot
        # (stores' final_sim_state); the spot then stays parked out of sight, as it was.
        if state.size not in (self.state_message_size, self.state_message_size - 3):
            raise ValueError(f"sim/state has {state.size} values; the {self.spec.name} scene needs "
                             f"{self.state_message_size} (is the arm node running that robot?)")
        m, d = self.model, self.data
        d.qpos[:] = state[2:2 + m.nq]
        mocap = state[2 + m.nq:].reshape(-1, 3)
        d.mocap_pos[:len(mocap)] = mocap
        d.mocap_pos[len(mocap):] = self.spot_parked
        mujoco.mj_forward(m, d)
        return float(state[0])

    def reset_to_home(self) -> None:
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self.arm_qpos] = self.spec.q_home
        self.data.qpos[self.finger_qpos] = self.max_opening
        self.data.ctrl[self.gripper_act] = self.max_opening
        mujoco.mj_forward(self.model, self.data)

    @property
    def q(self) -> np.ndarray:
        return self.data.qpos[self.arm_qpos].copy()

    @property
    def dq(self) -> np.ndarray:
        return self.data.qvel[self.arm_dof].copy()

    def set_q(self, q: np.ndarray) -> None:
        self.data.qpos[self.arm_qpos] = q
        self.data.qvel[self.arm_dof] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP position and (x, y, z, w) orientation in the base frame."""
        pos = self.data.site_xpos[self.tcp_site].copy()
        quat = tf.mat_to_quat(self.data.site_xmat[self.tcp_site].reshape(3, 3))
        return pos, quat

    def ee_velocity(self) -> np.ndarray:
        """TCP linear and angular velocity (6,) in the base frame."""
        vel = np.zeros(6)
        mujoco.mj_objectVelocity(self.model, self.data, mujoco.mjtObj.mjOBJ_SITE, self.tcp_site, vel, 0)
        return np.concatenate([vel[3:], vel[:3]])

    def gripper_width(self) -> float:
        return float(self.data.qpos[self.finger_qpos].sum())

    def body_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        b = self.model.body(name).id
        return self.data.xpos[b].copy(), tf.from_mj(self.data.xquat[b])

    def block_pos(self, color: str) -> np.ndarray:
        return self.data.xpos[self.model.body(f"{color}_block").id].copy()

    def set_free_body(self, name: str, pos: np.ndarray, quat: np.ndarray | None = None) -> None:
        joint = self.model.joint(name)
        adr = joint.qposadr[0]
        self.data.qpos[adr:adr + 3] = pos
        self.data.qpos[adr + 3:adr + 7] = tf.to_mj(quat if quat is not None else [0, 0, 0, 1])
        self.data.qvel[joint.dofadr[0]:joint.dofadr[0] + 6] = 0.0

    def set_target_zone(self, pos: np.ndarray) -> None:
        self.data.mocap_pos[self.target_zone_mocap] = pos

    def target_zone_pos(self) -> np.ndarray:
        return self.data.mocap_pos[self.target_zone_mocap].copy()

    def set_spot(self, pos: np.ndarray) -> None:
        """Draw the marked table spot at `pos` (its centre on the table top)."""
        self.data.mocap_pos[self.spot_mocap] = pos

    def spot_pos(self) -> np.ndarray:
        return self.data.mocap_pos[self.spot_mocap].copy()

    @property
    def drawer_opening(self) -> float:
        return float(self.data.qpos[self.drawer_qpos])

    def set_drawer(self, opening: float) -> None:
        self.data.qpos[self.drawer_qpos] = opening
        self.data.qvel[self.drawer_dof] = 0.0

    def handle_pos(self) -> np.ndarray:
        return self.data.site_xpos[self.model.site("handle").id].copy()

    # --- contacts --------------------------------------------------------------------
    def body_geoms(self, body_name: str) -> frozenset[int]:
        b = self.model.body(body_name).id
        return frozenset(g for g in range(self.model.ngeom) if self._is_descendant(self.model.geom_bodyid[g], b))

    def touching(self, geoms_a: frozenset[int], geoms_b: frozenset[int]) -> bool:
        d = self.data
        for i in range(d.ncon):
            g1, g2 = d.contact.geom1[i], d.contact.geom2[i]
            if (g1 in geoms_a and g2 in geoms_b) or (g2 in geoms_a and g1 in geoms_b):
                return True
        return False

    def check_finite(self) -> None:
        d = self.data
        bad = d.warning[mujoco.mjtWarning.mjWARN_BADQACC].number
        if bad or not (np.isfinite(d.qpos).all() and np.isfinite(d.qvel).all()):
            raise SimulationError(
                f"simulation state became invalid at t={d.time:.3f}s "
                f"(non-finite qpos/qvel or bad acceleration); ending the episode")
