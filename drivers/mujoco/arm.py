"""The twin behind the ArmDriver interface, in-process.

`read_state()` paces the loop to real time (sleep, then a short spin for the last few
hundred microseconds) or returns at once when `realtime` is off; `command_*()` applies
the set point and advances the physics by one control period, as the real arm would
by the next tick. The full simulator state is exposed for the twin cameras to mirror.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import mujoco
import numpy as np

from robot_stack.drivers.base import ArmDriver, DriverError, SimulatedArm
from robot_stack.drivers.common import Pacer, config_get
from robot_stack.drivers.registry import register_arm_driver
from robot_stack.robots.spec import get_robot
from robot_stack.sim.arm import SimArm
from robot_stack.sim.env import reset_episode
from robot_stack.sim.scene import Scene, SimulationError
from robot_stack.sim.tasks import make_task
from robot_stack.types import RobotState



@dataclass
class MujocoArmConfig:
    robot: str = "panda"
    realtime: bool = True
    task: str = "pick_place"
    seed: int = 0
    max_gripper_force: float | None = None   # N per finger; the safety envelope's cap

    @classmethod
    def from_node_config(cls, cfg) -> "MujocoArmConfig":
        """Build from the arm node's hydra config (`robot.name`, `realtime`, `task`, `seed`, the gripper force cap)."""
        robot = config_get(cfg, "robot", {})
        defaults = cls()
        return cls(robot=str(config_get(robot, "name", defaults.robot)),
                   realtime=bool(config_get(cfg, "realtime", defaults.realtime)),
                   task=str(config_get(cfg, "task", defaults.task)),
                   seed=int(config_get(cfg, "seed", defaults.seed)),
                   max_gripper_force=config_get(config_get(robot, "safety", {}), "max_gripper_force", None))


@register_arm_driver("mujoco", MujocoArmConfig)
class MujocoArmDriver(ArmDriver, SimulatedArm):
    def __init__(self, config: MujocoArmConfig, clock=time.time):
        self.config = config
        self.spec = get_robot(config.robot)
        self.task = make_task(config.task)
        self.clock = clock               # stamps (the ROS clock in the node)
        self.scene: Scene | None = None
        self.arm: SimArm | None = None
        self.pacer = Pacer(1.0 / self.spec.control_hz)
        self._error: str | None = None
        self._next_seed = config.seed

    def connect(self) -> None:
        self.scene = Scene(self.spec)
        if self.config.max_gripper_force is not None:     # the grip tendon carries both fingers' force
            cap = 2.0 * min(self.spec.gripper.force, self.config.max_gripper_force)
            self.scene.model.actuator_forcerange[self.scene.gripper_act] = (-cap, cap)
        self.arm = SimArm(self.scene)
        self.reset(self.config.seed)
        self.pacer.restart()

    def disconnect(self) -> None:
        self.scene = self.arm = None

    def reset(self, seed: int) -> None:
        """Start a new seeded episode of the configured task."""
        self.config.seed = seed
        reset_episode(self.scene, self.arm, self.task, np.random.default_rng(seed))
        self.pacer.restart()                     # pace from here: the reset's own time is not owed

    def reset_next(self) -> int:
        """Start the episode with the next unused seed (the first is the configured seed); returns it."""
        seed = self._next_seed
        self._next_seed += 1
        self.reset(seed)
        return seed

    def _require(self) -> SimArm:
        if self.arm is None:
            raise DriverError("mujoco twin: not connected")
        return self.arm

    def read_state(self) -> RobotState:
        self._require()
        if self.config.realtime:
            self.pacer.wait()
        s = self.scene
        pos, quat = s.ee_pose()
        return RobotState(stamp=self.clock(), q=s.q, dq=s.dq, ee_pos=pos, ee_quat=quat,
                          gripper_width=s.gripper_width(), wrench=self._tcp_wrench(),
                          tau=s.data.actuator_force[s.arm_act].copy(), mode="error" if self._error else "ok")

    def _tcp_wrench(self) -> np.ndarray:
        """External force and torque on the hand from contacts (what a F/T estimate would read), about the TCP.

        It runs every control tick: the contact arrays are read once, and each hand contact costs a
        few 3-vector operations (a loop over contact structs was a fifth of the arm node's CPU once
        an object was in contact; batched numpy calls over a handful of rows cost more than this)."""
        s = self.scene
        d, n = s.data, s.data.ncon
        wrench = np.zeros(6)
        if n == 0:
            return wrench
        g1, g2 = d.contact.geom1[:n], d.contact.geom2[:n]
        on_hand1 = s.gripper_geom_mask[g1]
        rows = np.flatnonzero(on_hand1 | s.gripper_geom_mask[g2])
        if rows.size == 0:
            return wrench
        local = np.zeros(6)
        force, torque = np.zeros(3), np.zeros(3)
        tcp, frames, points = d.site_xpos[s.tcp_site], d.contact.frame, d.contact.pos
        for i in rows.tolist():                     # a few contacts: per-contact 3-vectors beat batched numpy calls
            mujoco.mj_contactForce(s.model, d, i, local)
            f = frames[i].reshape(3, 3).T @ local[:3]       # contact frame -> world
            if on_hand1[i]:
                f = -f                                      # the force on the hand
            force += f
            r = points[i] - tcp
            torque += (r[1] * f[2] - r[2] * f[1], r[2] * f[0] - r[0] * f[2], r[0] * f[1] - r[1] * f[0])
        wrench[:3], wrench[3:] = force, torque
        return wrench

    def command_pose(self, pos, quat, gripper: float):
        arm = self._require()
        if self._error:
            raise DriverError(f"mujoco twin: {self._error}; call recover()")
        try:
            arm.track_pose(pos, quat, gripper)
        except SimulationError as exc:
            self._error = str(exc)
            raise DriverError(f"mujoco twin: {exc}") from exc
        return np.asarray(pos), np.asarray(quat), float(gripper)

    def command_joints(self, q, gripper: float):
        arm = self._require()
        if self._error:
            raise DriverError(f"mujoco twin: {self._error}; call recover()")
        try:
            arm.track_joints(q, gripper)
        except SimulationError as exc:
            self._error = str(exc)
            raise DriverError(f"mujoco twin: {exc}") from exc
        return np.asarray(q), float(gripper)

    def stop(self) -> None:
        self._require().hold()

    def recover(self) -> None:
        if self._error:
            self._error = None
            self.reset(self.config.seed)

    def sim_state(self) -> np.ndarray:
        """Simulator time, qpos and mocap positions: enough for a mirror to render the same scene."""
        return self.scene.sim_state()
