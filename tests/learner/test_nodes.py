"""Actor and learner nodes on real rclpy: a learner killed with SIGKILL and restarted loses and
duplicates no transition; the actor acts on through the outage; bad messages are refused and counted."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rclpy.parameter import Parameter
from std_msgs.msg import String, UInt8MultiArray

from robot_stack.learner.replay import ReplayBuffer
from robot_stack.learner.transport import encode_transition, encode_weights
from robot_stack.ros import qos
from tests.nodes.conftest import wait_for

SMALL = ("learning_starts=8 +agent.hidden=[32,32] +agent.grasp_hidden=[32] agent.batch_size=16 "
         "agent.num_critics=2 eval.every=1000000 updates_per_step=1")


def _overrides(out) -> str:
    return f"{SMALL} out={out}"


def _start_learner(out):
    """The learner in a process of its own; its log goes to a file (`learner.log_path`), appended across restarts,
    so a failure can show what the learner said (a pipe nobody reads would also block it once full)."""
    cmd = [sys.executable, "-m", "robot_stack.nodes.learner_node", "--ros-args", "-p", f"overrides:={_overrides(out)}",
           "-p", "checkpoint_period:=1.0", "-p", "publish_every:=5"]
    log_path = Path(out).parent / "learner.log"
    with open(log_path, "a") as log:
        proc = subprocess.Popen(cmd, start_new_session=True, stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.log_path = log_path
    return proc


def _log(learner) -> str:
    return learner.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture
def status(ros):
    latest = {}
    node = ros.node("watcher")
    node.create_subscription(String, "learner/status", lambda m: latest.update(json.loads(m.data)), qos.RELIABLE)
    return latest


def _received(status) -> int:
    return int(status.get("received", {}).get("actor0", 0))


def test_learner_killed_and_restarted_loses_and_duplicates_nothing(ros, status, tmp_path):
    from robot_stack.nodes.actor_node import ActorNode

    out = tmp_path / "learn"
    learner = _start_learner(out)
    try:
        actor = ros.add(ActorNode(context=ros.context, parameter_overrides=[
            Parameter("overrides", value=_overrides(out)), Parameter("resend_after", value=0.5)]))
        wait_for(lambda: _received(status) >= 40 and int(status["durable"].get("actor0", 0)) >= 1, timeout=90,
                 what="learner receiving and checkpointing")
        wait_for(lambda: actor.actor.version > 1, timeout=60, what="published weights swapped into the actor")
        os.killpg(learner.pid, signal.SIGKILL)
        learner.wait()
        at_kill = actor.actor.seq
        wait_for(lambda: actor.actor.seq >= at_kill + 60, timeout=60, what="the actor acting on without the learner")
        assert actor._thread.is_alive()
        status.clear()
        learner = _start_learner(out)
        wait_for(lambda: _received(status) >= at_kill + 60, timeout=90, what="the restarted learner catching up")
        actor._running = False
        actor._thread.join(timeout=30)
        produced = actor.actor.seq
        wait_for(lambda: _received(status) == produced, timeout=60, what="every transition received")
        assert status["rejected"] == 0
    finally:
        if learner.poll() is None:
            os.killpg(learner.pid, signal.SIGINT)          # a clean stop checkpoints once more
            learner.wait(timeout=30)
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["received"]["actor0"] == produced, _log(learner)
    from robot_stack.learner.rlpd import RLPDAgent
    spec = RLPDAgent.load(out / "checkpoint" / "agent").obs_spec
    online = ReplayBuffer.load(out / "checkpoint" / "online_buffer", spec)
    assert online.added == produced                       # none lost, none written twice
    ends = online.data["terminated"][:produced] | online.data["truncated"][:produced]
    # and in order across the restart: every step chained onto the one before it (one stored observation each,
    # plus one per episode start), which a gap or a repeat would break
    assert online.obs_written == produced + 1 + int(ends[:-1].sum())


def test_actor_refuses_weights_for_another_spec(ros, tmp_path):
    from robot_stack.nodes.actor_node import ActorNode

    actor = ros.add(ActorNode(start=False, context=ros.context, parameter_overrides=[
        Parameter("overrides", value=_overrides(tmp_path))]))
    pub = ros.node("fake_learner").create_publisher(UInt8MultiArray, "learner/weights", qos.LATCHED)
    msg = UInt8MultiArray()
    msg.data = encode_weights(actor.agent.policy_state(), 7, "0123456789abcdef")
    pub.publish(msg)
    wait_for(lambda: actor.refused_weights == 1, what="weights refused")
    msg.data = b"\x05\x00\x00\x00\x00\x00\x00\x00garbage"
    pub.publish(msg)
    wait_for(lambda: actor.refused_weights == 2, what="garbage refused")
    actor._swap_weights()
    assert actor.actor.version == 0
    msg.data = encode_weights(actor.agent.policy_state(), 3, actor.fingerprint)
    pub.publish(msg)
    wait_for(lambda: actor._pending_weights is not None, what="valid weights accepted")
    actor._swap_weights()
    assert actor.actor.version == 3


def test_learner_node_rejects_bad_transitions_and_counts_them(ros, tmp_path):
    from robot_stack.nodes.learner_node import LearnerNode
    from tests.learner.helpers import episode

    node = ros.add(LearnerNode(context=ros.context, parameter_overrides=[
        Parameter("overrides", value=_overrides(tmp_path / "l"))]))
    spec = node.learner.agent.obs_spec
    pub = ros.node("fake_actor").create_publisher(UInt8MultiArray, "learner/transitions", qos.TRANSITIONS)
    good = episode(spec, "actor0/0", 3)
    bad = episode(spec, "actor0/1", 1)[0]
    bad.obs["state"][0] = np.nan

    def send(data):
        msg = UInt8MultiArray()
        msg.data = data
        pub.publish(msg)

    wait_for(lambda: pub.get_subscription_count() > 0, what="learner subscribed")
    send(b"not a transition at all")
    send(encode_transition(good[0], "actor0", 1, "ffffffffffffffff"))          # another spec
    send(encode_transition(good[0], "actor0", 1, node.fingerprint))
    send(encode_transition(good[1], "actor0", 1, node.fingerprint))            # a repeat of #1: ignored
    send(encode_transition(bad, "actor0", 2, node.fingerprint))                # NaN: rejected, but received
    send(encode_transition(good[2], "actor0", 4, node.fingerprint))            # a gap: ignored until resent
    send(encode_transition(good[1], "actor0", 3, node.fingerprint))
    wait_for(lambda: node.status()["received"].get("actor0") == 3 and node.ignored >= 2, what="messages handled")
    s = node.status()
    assert s["online_buffer"] == 2 and s["rejected"] == 3 and s["ignored"] == 2
