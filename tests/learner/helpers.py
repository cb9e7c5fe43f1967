"""Small specs, transitions and agents for the learner tests."""
from __future__ import annotations

import numpy as np

from robot_stack.learner.replay import Transition
from robot_stack.learner.rlpd import RLPDAgent, RLPDConfig
from robot_stack.learner.spaces import ActionSpec, ObsSpec

SPEC = ObsSpec(("state",), 5, (), 16)
IMAGE_SPEC = ObsSpec(("state",), 5, ("front",), 16)
ACTIONS = ActionSpec((0, 1, 2), True)


def obs(spec: ObsSpec, value: float) -> dict:
    o = {"state": np.full(spec.state_dim, value, np.float32)}
    for cam in spec.cameras:
        o[cam] = np.full((spec.image_size, spec.image_size, 3), int(value) % 256, np.uint8)
    return o


def episode(spec: ObsSpec, name: str, length: int, start: float = 0.0, reward: float = 0.0,
            intervention: bool = False) -> list[Transition]:
    """`length` transitions whose observations count up from `start`; the last one terminates."""
    return [Transition(obs(spec, start + t), np.full(3, 0.1, np.float32), 1, reward, obs(spec, start + t + 1),
                       terminated=t == length - 1, truncated=False, intervention=intervention, episode=name, step=t)
            for t in range(length)]


def small_agent(spec: ObsSpec = SPEC, **cfg) -> RLPDAgent:
    base = dict(hidden=(32, 32), grasp_hidden=(32,), batch_size=16, num_critics=4, critic_subset=2)
    return RLPDAgent(spec, ACTIONS, RLPDConfig(**{**base, **cfg}))
