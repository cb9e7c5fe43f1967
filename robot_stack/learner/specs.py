"""The observation and action specs a learn config implies, found the way the actor finds them."""
from __future__ import annotations

from omegaconf import DictConfig

from robot_stack.learner.spaces import ActionSpec, ObsSpec


def specs_for(cfg: DictConfig) -> tuple[ObsSpec, ActionSpec]:
    """Shapes of the state keys from one twin observation of the task (no camera is rendered)."""
    from robot_stack.sim.env import make_env

    env = make_env(cfg.task, robot=cfg.robot.name, cameras=(), image_size=cfg.obs.image_size)
    try:
        obs, _ = env.reset(seed=0)
    finally:
        env.close()
    state = ObsSpec.from_env(obs, tuple(cfg.obs.state_keys))
    cameras = tuple(cfg.obs.cameras)            # known by name; their frames are image_size square
    unknown = [c for c in cameras if c not in ("front", "wrist")]
    if unknown:
        raise ValueError(f"unknown cameras {unknown}; valid cameras: front, wrist")
    obs_spec = ObsSpec(state.state_keys, state.state_dim, cameras, int(cfg.obs.image_size))
    return obs_spec, ActionSpec(tuple(cfg.action.twist_axes), bool(cfg.action.discrete_gripper))
