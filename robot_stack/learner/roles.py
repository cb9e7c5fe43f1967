"""The two roles of online RL, free of transport: the Actor turns env observations into actions and
transitions; the Learner validates transitions into its buffers and updates the agent.

The in-process loop (`learner/loop.py`) and the ROS 2 nodes (`nodes/actor_node.py`,
`nodes/learner_node.py`) wire the same two objects together, directly or over topics.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_stack.learner.replay import ReplayBuffer, Transition
from robot_stack.learner.rlpd import RLPDAgent, concat_batches, to_tensors
from robot_stack.learner.spaces import SpecError, agent_obs, env_action, grasp_penalty, policy_action


class Actor:
    """Acts with the current weights and writes transitions, counting episodes and sequence numbers."""

    def __init__(self, agent: RLPDAgent, actor_id: str = "actor0", seed: int = 0, grasp_penalty: float = -0.02,
                 random_steps: int = 0):
        self.agent = agent
        self.actor_id = actor_id
        self.rng = np.random.default_rng(seed)
        self.penalty = grasp_penalty
        self.version = 0              # of the weights in use
        self.episodes = 0
        self.seq = 0                  # training transitions produced: the sequence number of the last one
        self.random_steps = random_steps   # uniformly random training actions still to take before the policy acts
        self.step = 0
        self.gripper_cmd = 0.0
        self.episode = ""
        self.outcome: dict = {}       # how the last episode ended

    def episode_steps(self, env, seed: int, deterministic: bool = False):
        """Run one episode on `env` (TwinEnv+DeltaAction or RosArmEnv), yielding each step's transition.

        The one episode loop of the in-process run, evaluation and the actor node: the caller sends or
        ingests each transition, and may swap weights or stop between steps. Only training
        (non-deterministic) transitions get sequence numbers; `outcome` holds the result so far."""
        env_obs, _ = env.reset(seed=seed)
        self.reset()
        obs = agent_obs(env_obs, self.agent.obs_spec)
        done, steps = False, 0
        self.outcome = {"seed": seed, "success": False, "length": 0, "version": self.version}
        while not done:
            if not deterministic and self.random_steps > 0:
                self.random_steps -= 1
                act, chosen = self.random_act()
            else:
                act, chosen = self.act(obs, deterministic)
            env_obs, reward, terminated, truncated, info = env.step(act)
            next_obs = agent_obs(env_obs, self.agent.obs_spec)
            transition = self.transition(obs, chosen, reward, next_obs, terminated, truncated, info)
            steps += 1
            self.seq += int(not deterministic)
            self.outcome = {"seed": seed, "success": bool(info.get("success")), "length": steps, "version": self.version}
            yield transition
            obs, done = next_obs, terminated or truncated

    def reset(self) -> None:
        self.episode = f"{self.actor_id}/{self.episodes}"
        self.episodes += 1
        self.step = 0
        self.gripper_cmd = 0.0

    def act(self, obs: dict, deterministic: bool = False) -> tuple[np.ndarray, dict]:
        """The env's 7-D action for `obs` (an agent observation), and what the transition needs of it."""
        action, grip = self.agent.act(obs, deterministic=deterministic, rng=self.rng)
        before = self.gripper_cmd
        env_act, self.gripper_cmd = env_action(action, grip, self.agent.action_spec, before)
        return env_act, {"action": action, "grip": grip, "gripper_before": before}

    def random_act(self) -> tuple[np.ndarray, dict]:
        """A uniformly random action (RLPD without demos starts with some)."""
        action = self.rng.uniform(-1.0, 1.0, self.agent.action_spec.dim).astype(np.float32)
        grip, before = int(self.rng.integers(3)), self.gripper_cmd
        env_act, self.gripper_cmd = env_action(action, grip, self.agent.action_spec, before)
        return env_act, {"action": action, "grip": grip, "gripper_before": before}

    def transition(self, obs: dict, chosen: dict, reward: float, next_obs: dict, terminated: bool, truncated: bool,
                   info: dict) -> Transition:
        """The transition of one env step. Under an intervention the human's executed action replaces ours."""
        before = chosen["gripper_before"]
        if info.get("intervention"):
            action, grip, after = policy_action(info["executed_action"], self.agent.action_spec, before)
            self.gripper_cmd = after
        else:
            action, grip, after = chosen["action"], chosen["grip"], self.gripper_cmd
        t = Transition(obs, np.asarray(action, np.float32), int(grip), float(reward), next_obs, bool(terminated),
                       bool(truncated), intervention=bool(info.get("intervention", False)),
                       grasp_penalty=grasp_penalty(grip, before, after, self.penalty),
                       episode=self.episode, step=self.step)
        self.step += 1
        return t


@dataclass
class LearnerSettings:
    buffer_capacity: int = 200_000
    seed: int = 0


class Learner:
    """Buffers and updates. Demos and interventions fill the demo buffer; every actor transition the online one."""

    def __init__(self, agent: RLPDAgent, demos: list[Transition] = (), settings: LearnerSettings | None = None):
        self.agent = agent
        self.settings = s = settings or LearnerSettings()
        spec, dim = agent.obs_spec, agent.action_spec.dim
        self.demo_buffer = ReplayBuffer(spec, dim, s.buffer_capacity)
        self.online_buffer = ReplayBuffer(spec, dim, s.buffer_capacity)
        self.rng = np.random.default_rng(s.seed)
        self.rejected: Counter[str] = Counter()
        for t in demos:
            self.demo_buffer.add(t)
        if agent.cfg.normalize_state and agent.updates == 0 and len(self.demo_buffer):
            agent.set_state_normalizer(self.demo_buffer.states())

    def ingest(self, t: Transition) -> bool:
        """Add an actor transition; a malformed one is counted by reason and never written."""
        try:
            self.online_buffer.add(t)
        except SpecError as exc:
            self.rejected[str(exc).split(":")[0][:60]] += 1
            return False
        if t.intervention:
            self.demo_buffer.add(t)
        return True

    def batch(self) -> dict:
        """RLPD symmetric sampling: `demo_fraction` of the batch from the demo buffer, the rest online
        (all online while there are no demos)."""
        c = self.agent.cfg
        n_demo = int(round(c.batch_size * c.demo_fraction)) if len(self.demo_buffer) else 0
        online = self.online_buffer.sample(c.batch_size - n_demo, self.rng)
        online["demo"] = np.zeros(len(online["reward"]), np.bool_)
        if n_demo == 0:
            return online
        demo = self.demo_buffer.sample(n_demo, self.rng)
        demo["demo"] = np.ones(len(demo["reward"]), np.bool_)
        return concat_batches(demo, online)

    def update(self) -> dict[str, float]:
        return self.agent.update(to_tensors(self.batch()))

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        path = Path(path)
        self.agent.save(path / "agent", extra=extra)
        self.demo_buffer.save(path / "demo_buffer")
        self.online_buffer.save(path / "online_buffer")

    @classmethod
    def load(cls, path: str | Path, settings: LearnerSettings | None = None) -> "Learner":
        path = Path(path)
        agent = RLPDAgent.load(path / "agent")
        learner = cls(agent, settings=settings)
        learner.demo_buffer = ReplayBuffer.load(path / "demo_buffer", agent.obs_spec)
        learner.online_buffer = ReplayBuffer.load(path / "online_buffer", agent.obs_spec)
        return learner

