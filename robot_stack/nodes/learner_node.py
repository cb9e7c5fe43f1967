"""learner_node: the RLPD learner as a ROS 2 node, in its own process or on its own machine.

Transitions arrive on `learner/transitions` (std_msgs/UInt8MultiArray, safetensors bytes; see
learner/transport.py) with a per-actor sequence number. The node accepts only the next number
of each actor, so nothing is written twice and nothing is skipped: a gap or a repeat is ignored
and the actor resends. `learner/status` (JSON, 2 Hz) tells each actor how far it was `received`
(in memory) and how far it is `durable` (in the last checkpoint); actors keep everything after
`durable`. A restarted learner loads its checkpoint and the actors resend from there, so the
buffers lose and duplicate nothing across a crash. Updates run in their own thread, at most
`updates_per_step` per received transition (UTD); every `publish_every` updates the policy
weights go out on `learner/weights` (transient local) with an increasing version.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from std_msgs.msg import String, UInt8MultiArray

from robot_stack.learner.loop import plot_curve, resume_or_build, save_checkpoint
from robot_stack.learner.rlpd import to_tensors
from robot_stack.learner.spaces import SpecError
from robot_stack.learner.transport import TransportError, decode_transition, encode_weights
from robot_stack.nodes.common import declare_any, node_config, run_node, startup_only
from robot_stack.ros import qos

LEARNER_PARAMS = ("task", "robot", "demos", "out", "seed")


class LearnerNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("learner_node", **node_kwargs)
        self.cfg = node_config(self, "learn", LEARNER_PARAMS)
        self.publish_every = int(declare_any(self, "publish_every") or 50)
        self.checkpoint_period = float(declare_any(self, "checkpoint_period") or 30.0)
        startup_only(self)
        torch.set_num_threads(int(self.cfg.threads))
        self.out = Path(self.cfg.out)
        self.ckpt = self.out / "checkpoint"
        self.state = {"received": {}, "durable": {}, "version": 0, "curve": [], "episodes": [], "wall_s": 0.0}
        self.learner, saved = resume_or_build(self.cfg, self.ckpt)
        if saved is not None:
            self.state.update(saved)
            self.state["durable"] = dict(self.state["received"])
            self.get_logger().info(f"resumed from {self.ckpt}: {self.learner.agent.updates} updates, "
                                   f"received {self.state['received']}")
        self.fingerprint = self.learner.agent.fingerprint()
        self.ignored = 0                   # repeats and out-of-order messages (resent later)
        self._lock = threading.Lock()
        self._start = time.monotonic() - float(self.state.get("wall_s", 0.0))
        self._new = 0                      # transitions accepted since start, for the UTD budget
        self._updates_at_start = self.learner.agent.updates
        self._last_ckpt = time.monotonic()

        self.create_subscription(UInt8MultiArray, "/learner/transitions", self._on_transition, qos.TRANSITIONS)
        self.create_subscription(String, "/actor/episodes", self._on_episode, qos.RELIABLE)
        self.pub_weights = self.create_publisher(UInt8MultiArray, "/learner/weights", qos.LATCHED)
        self.pub_status = self.create_publisher(String, "/learner/status", qos.RELIABLE)
        self.pub_diag = self.create_publisher(DiagnosticArray, "diagnostics", 10)
        self.create_timer(0.5, self._publish_status)
        self.create_timer(1.0, self._publish_diagnostics)
        self._publish_weights()
        self._running = True
        self._thread = threading.Thread(target=self._update_loop, name="learner_updates", daemon=True)
        self._thread.start()
        self.get_logger().info(f"learner_node up: {self.cfg.task}/{self.cfg.robot.name}, spec {self.fingerprint}, "
                               f"{len(self.learner.demo_buffer)} demo transitions")

    # --- inputs -------------------------------------------------------------------------
    def _on_transition(self, msg: UInt8MultiArray) -> None:
        try:
            actor, seq, t = decode_transition(msg.data, self.fingerprint)
        except (TransportError, SpecError) as exc:
            return self._reject(str(exc))
        with self._lock:
            expected = self.state["received"].get(actor, 0) + 1
            if seq != expected:               # a repeat, or a gap the actor will fill by resending
                self.ignored += 1
                return
            self.state["received"][actor] = seq
            if self.learner.ingest(t):
                self._new += 1
            else:
                self.get_logger().error(f"rejected transition {actor}#{seq}: {dict(self.learner.rejected)}",
                                        throttle_duration_sec=1.0)

    def _reject(self, reason: str) -> None:
        self.learner.rejected[reason[:80]] += 1      # one count per reason: messages and transitions alike
        self.get_logger().error(f"rejected message: {reason}", throttle_duration_sec=1.0)

    def _on_episode(self, msg: String) -> None:
        """Actors report each episode (training or evaluation); the learning curve is drawn from them."""
        try:
            report = json.loads(msg.data)
        except json.JSONDecodeError:
            return self._reject("episode report is not JSON")
        with self._lock:
            report["wall_s"] = round(time.monotonic() - self._start, 1)
            self.state["episodes"].append(report)
            if report.get("kind") != "eval_summary":
                return
            self.state["curve"].append(report)
            curve = list(self.state["curve"])
        # Drawn outside the lock: the update thread samples batches under it.
        self.out.mkdir(parents=True, exist_ok=True)
        plot_curve(curve, self.out / "curve.png", f"RLPD {self.cfg.task} ({self.cfg.robot.name}), actor/learner nodes")
        (self.out / "curve.json").write_text(json.dumps(curve, indent=1))

    # --- learning -------------------------------------------------------------------------
    def _update_loop(self) -> None:
        agent = self.learner.agent
        while self._running:
            with self._lock:
                budget = self._new * self.cfg.updates_per_step - (agent.updates - self._updates_at_start)
                ready = len(self.learner.online_buffer) >= self.cfg.learning_starts and budget > 0
                if ready:
                    batch = self.learner.batch()
            if not ready:
                time.sleep(0.01)
            else:
                agent.update(to_tensors(batch))
                if agent.updates % self.publish_every == 0:
                    self._publish_weights()
            if time.monotonic() - self._last_ckpt > self.checkpoint_period:
                self.checkpoint()

    def _publish_weights(self) -> None:
        agent = self.learner.agent
        with self._lock:
            self.state["version"] += 1
            data = encode_weights(agent.policy_state(), self.state["version"], self.fingerprint, agent.updates)
        msg = UInt8MultiArray()
        msg.data = data
        self.pub_weights.publish(msg)

    def checkpoint(self) -> None:
        """Save learner and buffers atomically; then what was received up to now is durable."""
        with self._lock:
            received = dict(self.state["received"])
            state = {k: v for k, v in self.state.items() if k != "durable"}
            save_checkpoint(self.learner, self.ckpt, state, self._start)
            self.state["durable"] = received
        self._last_ckpt = time.monotonic()

    # --- outputs --------------------------------------------------------------------------
    def status(self) -> dict:
        with self._lock:
            return {"received": dict(self.state["received"]), "durable": dict(self.state["durable"]),
                    "version": self.state["version"], "updates": self.learner.agent.updates,
                    "demo_buffer": len(self.learner.demo_buffer), "online_buffer": len(self.learner.online_buffer),
                    "rejected": sum(self.learner.rejected.values()), "ignored": self.ignored, "fingerprint": self.fingerprint}

    def _publish_status(self) -> None:
        self.pub_status.publish(String(data=json.dumps(self.status())))

    def _publish_diagnostics(self) -> None:
        status = self.status()
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        level = DiagnosticStatus.WARN if status["rejected"] else DiagnosticStatus.OK
        msg.status = [DiagnosticStatus(level=level, name="learner_node", message=f"{status['updates']} updates",
                                       values=[KeyValue(key=k, value=json.dumps(v)) for k, v in status.items()]
                                       + [KeyValue(key="rejected_reasons", value=json.dumps(dict(self.learner.rejected)))])]
        self.pub_diag.publish(msg)

    def close(self) -> None:
        """A clean stop checkpoints once more; a crash loses only what came after the last checkpoint,
        which the actors still hold and resend."""
        self._running = False
        self._thread.join(timeout=5.0)
        self.checkpoint()


def main(argv=None) -> int:
    return run_node(LearnerNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
