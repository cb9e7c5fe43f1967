"""actor_node: runs the current policy on the arm and streams every transition to the learner.

`backend: sim` steps the twin in this process (faster than real time, for experiments);
`backend: ros` drives the arm through the graph at 10 Hz (learner/ros_env.py), so every action
passes the arm node's safety envelope, twin or real arm alike. Weights arrive on
`learner/weights` and are swapped in between steps; weights for another spec are refused and
the previous ones kept. Every transition gets the next sequence number and stays in an outbox
until the learner's `learner/status` says it is durable (checkpointed); when the learner is
gone the actor keeps acting on its last weights and keeps queueing (bounded, oldest dropped
and counted), and when `received` lags what was sent it resends from there. Episode outcomes
and periodic evaluations go to `actor/episodes` for the learning curve.
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict

import torch
from rclpy.node import Node
from std_msgs.msg import String, UInt8MultiArray

from robot_stack.learner.loop import evaluate, learned_reward, make_agent, make_learning_env
from robot_stack.learner.roles import Actor
from robot_stack.learner.spaces import SpecError
from robot_stack.learner.transport import TransportError, decode_weights, encode_transition
from robot_stack.nodes.common import declare_any, node_config, run_node, startup_only
from robot_stack.ros import qos

ACTOR_PARAMS = ("task", "robot", "seed", "train_seed")


class ActorNode(Node):
    def __init__(self, env=None, start: bool = True, **node_kwargs):
        """`env` replaces the configured backend (tests); `start=False` leaves `run()` to the caller."""
        super().__init__("actor_node", **node_kwargs)
        self.cfg = node_config(self, "learn", ACTOR_PARAMS)
        self.actor_id = str(declare_any(self, "actor_id") or "actor0")
        self.backend = str(declare_any(self, "backend") or "sim")
        self.max_episodes = int(declare_any(self, "episodes") or 0)       # 0: until stopped
        self.max_outbox = int(declare_any(self, "max_outbox") or 100_000)
        self.resend_after = float(declare_any(self, "resend_after") or 1.0)
        startup_only(self)
        torch.set_num_threads(int(self.cfg.threads))
        self.agent = make_agent(self.cfg)
        self.fingerprint = self.agent.fingerprint()
        self.actor = Actor(self.agent, self.actor_id, seed=int(self.cfg.seed), grasp_penalty=self.cfg.grasp_penalty)
        self.env = env if env is not None else self._make_env()

        self._lock = threading.Lock()
        self.outbox: OrderedDict[int, bytes] = OrderedDict()     # seq -> message, until durable
        self.dropped = 0                     # outbox overflow while the learner was away
        self.refused_weights = 0
        self.learner_seen = 0.0              # monotonic time of the last learner status
        self.acked = 0                       # highest seq the learner has received
        self._resend_check = time.monotonic()
        self._pending_weights: tuple[int, dict] | None = None
        self.env_steps = 0
        self.create_subscription(UInt8MultiArray, "/learner/weights", self._on_weights, qos.LATCHED)
        self.create_subscription(String, "/learner/status", self._on_status, qos.RELIABLE)
        self.pub_transitions = self.create_publisher(UInt8MultiArray, "/learner/transitions", qos.TRANSITIONS)
        self.pub_episodes = self.create_publisher(String, "/actor/episodes", qos.RELIABLE)
        self._running = True
        self._thread = threading.Thread(target=self.run, name="actor_loop", daemon=True)
        if start:
            self._thread.start()
        self.get_logger().info(f"actor_node {self.actor_id} up: {self.cfg.task}/{self.cfg.robot.name} via {self.backend}, "
                               f"spec {self.fingerprint}")

    def _make_env(self):
        if self.backend == "sim":
            return make_learning_env(self.cfg)
        if self.backend == "ros":
            from robot_stack.learner.ros_env import RosArmEnv
            reward_fn, cameras = learned_reward(self.cfg)
            return RosArmEnv(self, task=self.cfg.task, robot=self.cfg.robot.name, cameras=cameras,
                             image_size=int(self.cfg.obs.image_size), max_translation=self.cfg.action.max_translation,
                             max_rotation=self.cfg.action.max_rotation, reward=self.cfg.reward, timeout=60.0,
                             reward_fn=reward_fn)
        raise ValueError(f"unknown actor backend {self.backend!r}; valid: sim, ros")

    # --- from the learner -------------------------------------------------------------------
    def _on_weights(self, msg: UInt8MultiArray) -> None:
        try:
            version, state = decode_weights(msg.data, self.fingerprint)
        except (TransportError, SpecError) as exc:
            self.refused_weights += 1
            self.get_logger().error(f"refused weights, keeping version {self.actor.version}: {exc}",
                                    throttle_duration_sec=1.0)
            return
        with self._lock:
            self._pending_weights = (version, state)       # swapped in between steps by the loop

    def _on_status(self, msg: String) -> None:
        try:
            status = json.loads(msg.data)
            durable = int(status["durable"].get(self.actor_id, 0))
            received = int(status["received"].get(self.actor_id, 0))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return
        with self._lock:
            self.learner_seen = time.monotonic()
            while self.outbox and next(iter(self.outbox)) <= durable:
                self.outbox.popitem(last=False)
            progressed = received > self.acked
            self.acked = received
            if progressed:
                self._resend_check = time.monotonic()
            resend = (not progressed and time.monotonic() - self._resend_check > self.resend_after
                      and self.outbox and next(reversed(self.outbox)) > received)
            if resend:
                self._resend_check = time.monotonic()
                pending = [data for seq, data in self.outbox.items() if seq > received]
        if resend:
            self.get_logger().info(f"learner at #{received}: resending {len(pending)} transitions")
            for data in pending:
                self._publish(data)

    # --- the loop ---------------------------------------------------------------------------
    def _swap_weights(self) -> None:
        with self._lock:
            pending, self._pending_weights = self._pending_weights, None
        if pending is not None:
            version, state = pending
            try:
                self.agent.load_policy_state(state)
            except SpecError as exc:
                self.refused_weights += 1
                self.get_logger().error(f"refused weights v{version}: {exc}")
                return
            self.actor.version = version

    def _publish(self, data: bytes) -> None:
        msg = UInt8MultiArray()
        msg.data = data
        self.pub_transitions.publish(msg)

    def _send(self, transition) -> None:
        data = encode_transition(transition, self.actor_id, self.actor.seq, self.fingerprint)
        with self._lock:
            self.outbox[self.actor.seq] = data
            while len(self.outbox) > self.max_outbox:
                self.outbox.popitem(last=False)
                self.dropped += 1
        self._publish(data)

    def _report(self, report: dict) -> None:
        self.pub_episodes.publish(String(data=json.dumps({"actor": self.actor_id, **report})))

    def run_episode(self, seed: int) -> dict:
        """One training episode: every transition sent as it happens, new weights swapped in between steps."""
        self._swap_weights()
        for transition in self.actor.episode_steps(self.env, seed):
            self._send(transition)
            self.env_steps += 1
            if not self._running:
                break
            self._swap_weights()
        return self.actor.outcome

    def run(self) -> None:
        episode, next_eval = 0, self.cfg.eval.every
        try:
            while self._running and (self.max_episodes == 0 or episode < self.max_episodes):
                result = self.run_episode(self.cfg.train_seed + episode)
                episode += 1
                self._report({"kind": "train", "env_steps": self.env_steps, **result})
                if self.env_steps >= next_eval:
                    self.evaluate(self.cfg.eval.episodes)
                    next_eval += self.cfg.eval.every
        except Exception as exc:       # the arm holds by itself (watchdog); say why the actor stopped
            if not self.context.ok():  # shutting down (Ctrl-C): publishing failed because the graph is gone
                return
            self.get_logger().error(f"actor loop stopped: {type(exc).__name__}: {exc}")
            raise

    def evaluate(self, episodes: int) -> dict:
        """Deterministic episodes on the evaluation seeds; nothing is sent to the learner."""
        summary = {"kind": "eval_summary", "env_steps": self.env_steps, "version": self.actor.version,
                   **evaluate(self.env, self.actor, episodes, self.cfg.eval.seed)}
        self._report(summary)
        return summary

    def close(self) -> None:
        self._running = False
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        if hasattr(self.env, "close"):
            self.env.close()


def main(argv=None) -> int:
    return run_node(ActorNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
