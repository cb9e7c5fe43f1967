"""Gymnasium environments over the twin.

Observations: one uint8 HxWx3 image per camera plus proprio (`joint_pos`, `joint_vel`,
`ee_pose` as position + xyzw quaternion, `gripper` width) and the privileged
`task_state`. The action is the canonical one (DESIGN.md): an absolute TCP target in the
base frame, position + xyzw quaternion, then a gripper command in [0, 1] (1 = closed),
held for one policy period. `DeltaAction` wraps it for RL.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robot_stack.control.delta import apply_delta
from robot_stack.sim.arm import SimArm
from robot_stack.sim.camera import CameraRenderer
from robot_stack.sim.ik import solve_ik
from robot_stack.sim.scene import Scene
from robot_stack.sim.tasks import make_task
from robot_stack.sim.tasks.base import Task, top_down

CAMERAS = ("front", "wrist")
PHASES = ("pre_contact", "in_contact", "post_contact")


def reset_episode(scene: Scene, arm: SimArm, task: Task, rng: np.random.Generator) -> None:
    """Randomise the task's objects and the arm's start pose, and let objects settle.

    The one place an episode starts, for the gymnasium env and the twin driver alike.
    """
    scene.reset_to_home()
    task.reset(scene, rng)
    start = np.array([rng.uniform(0.35, 0.45), rng.uniform(-0.1, 0.1), rng.uniform(0.22, 0.32)])
    quat = top_down(rng.uniform(-0.3, 0.3))
    scene.set_q(solve_ik(scene, start, quat))
    arm.hold()
    arm.command_pose(start, quat, 0.0, 0.05)
    arm.step(round(0.05 / arm.dt))                      # let objects settle under the held arm
    arm.hold()


def observation_space(cameras, size: tuple[int, int], dof: int, task_state_shape: tuple[int, ...]) -> spaces.Dict:
    """The observation space of the twin's envs (TwinEnv in-process, RosArmEnv through the graph)."""
    h, w = size
    obs = {c: spaces.Box(0, 255, (h, w, 3), np.uint8) for c in cameras}
    obs.update(
        joint_pos=spaces.Box(-np.inf, np.inf, (dof,), np.float64),
        joint_vel=spaces.Box(-np.inf, np.inf, (dof,), np.float64),
        ee_pose=spaces.Box(-np.inf, np.inf, (7,), np.float64),
        gripper=spaces.Box(0.0, 0.1, (1,), np.float64),
        task_state=spaces.Box(-np.inf, np.inf, task_state_shape, np.float64),
    )
    return spaces.Dict(obs)


class TwinEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, task: str, robot: str = "panda", seed: int | None = None,
                 cameras: tuple[str, ...] = CAMERAS, image_size: int | tuple[int, int] = 128,
                 policy_hz: float = 10.0, reward: str = "dense", terminate_on_success: bool = True,
                 render_mode: str | None = "rgb_array"):
        unknown = [c for c in cameras if c not in CAMERAS]
        if unknown:
            raise ValueError(f"unknown cameras {unknown}; valid cameras: {', '.join(CAMERAS)}")
        if reward not in ("dense", "sparse"):
            raise ValueError(f"reward must be 'dense' or 'sparse', got {reward!r}")
        self.task = make_task(task)
        self.scene = Scene(robot)
        self.arm = SimArm(self.scene)
        self.cameras = tuple(cameras)
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.image_size = (h, w)
        self.policy_dt = 1.0 / policy_hz
        self.ticks_per_step = max(1, round(self.policy_dt / self.arm.dt))
        self.reward_type = reward
        self.terminate_on_success = terminate_on_success
        self.render_mode = render_mode
        self._renderer: CameraRenderer | None = None
        self._rng = np.random.default_rng(seed)
        self._seed = seed
        self.steps = 0
        self.phase = PHASES[0]
        self.instruction = ""

        self.observation_space = observation_space(self.cameras, (h, w), self.scene.spec.dof,
                                                   self._task_state_shape())
        ws = self.arm.workspace
        self.action_space = spaces.Box(
            low=np.array([*ws.low, -1, -1, -1, -1, 0.0]), high=np.array([*ws.high, 1, 1, 1, 1, 1.0]),
            dtype=np.float64)

    def _task_state_shape(self) -> tuple[int]:
        self.task.reset(self.scene, np.random.default_rng(0))
        shape = self.task.state(self.scene).shape
        self.scene.reset_to_home()
        return shape

    # --- gymnasium API -------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._seed = seed
        reset_episode(self.scene, self.arm, self.task, self._rng)
        self.steps = 0
        self.phase = PHASES[0]
        self.instruction = self.task.instruction(self._rng)
        return self._observation(), self._info()

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        action = np.asarray(action, dtype=float)
        if action.shape != (8,):
            raise ValueError(f"action must have shape (8,): x y z qx qy qz qw gripper; got {action.shape}")
        self.arm.command_pose(action[:3], action[3:7], action[7], self.policy_dt)
        self.arm.step(self.ticks_per_step)
        self.steps += 1
        self._update_phase()
        success = self.task.success(self.scene)
        reward = self.task.dense_reward(self.scene) if self.reward_type == "dense" else float(success)
        terminated = bool(success and self.terminate_on_success)
        truncated = self.steps >= self.task.max_steps and not terminated
        return self._observation(), reward, terminated, truncated, self._info(success)

    def render(self) -> np.ndarray:
        return self.render_camera("front")

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # --- helpers -------------------------------------------------------------------------
    def render_camera(self, camera: str, size: tuple[int, int] | None = None) -> np.ndarray:
        size = size or self.image_size
        if self._renderer is None or (self._renderer.height, self._renderer.width) != size:
            if self._renderer is not None:
                self._renderer.close()
            self._renderer = CameraRenderer(self.scene, *size)
        return self._renderer.render(camera)

    def _update_phase(self) -> None:
        touching = self.scene.touching(self.scene.gripper_geoms, self.task.manipulated_geoms(self.scene))
        if touching:
            self.phase = "in_contact"
        elif self.phase == "in_contact":
            self.phase = "post_contact"

    def _observation(self) -> dict[str, Any]:
        s = self.scene
        pos, quat = s.ee_pose()
        obs: dict[str, Any] = {c: self.render_camera(c) for c in self.cameras}
        obs.update(joint_pos=s.q, joint_vel=s.dq, ee_pose=np.concatenate((pos, quat)),
                   gripper=np.array([s.gripper_width()]), task_state=self.task.state(s))
        return obs

    def _info(self, success: bool | None = None) -> dict[str, Any]:
        if success is None:
            success = self.task.success(self.scene)
        return {"success": bool(success), "is_success": bool(success), "contact_phase": self.phase,
                "instruction": self.instruction, "task_params": self.task.params.as_dict(),
                "steps": self.steps}


class DeltaAction(gym.ActionWrapper):
    """RL actions in [-1, 1]^7: TCP translation and rotation (base frame) per step, then gripper.

    Scaled to at most `max_translation` m and `max_rotation` rad per step (SERL uses about
    1-2 cm and 0.1 rad); the gripper entry maps [-1, 1] to [0, 1].
    """

    def __init__(self, env: TwinEnv, max_translation: float = 0.02, max_rotation: float = 0.1):
        super().__init__(env)
        self.max_translation = max_translation
        self.max_rotation = max_rotation
        self.action_space = spaces.Box(-1.0, 1.0, (7,), np.float64)

    def action(self, action: np.ndarray) -> np.ndarray:
        arm = self.env.unwrapped.arm
        # build on the set point, not the noisy measurement
        target, quat, gripper = apply_delta(action, arm.pose_interp.pos, arm.pose_interp.quat,
                                            self.max_translation, self.max_rotation)
        return np.concatenate((target, quat, [gripper]))


def make_env(task: str, robot: str = "panda", seed: int | None = None, cameras: tuple[str, ...] = CAMERAS,
             image_size: int | tuple[int, int] = 128, **kwargs) -> TwinEnv:
    """A gymnasium env for `task` on `robot` in the twin (see TwinEnv for the spaces)."""
    return TwinEnv(task, robot=robot, seed=seed, cameras=cameras, image_size=image_size, **kwargs)
