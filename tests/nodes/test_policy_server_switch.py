"""policy_server with SwitchVLA: a new /task/instruction mid-episode is a switch, not a new episode; the mode
is on /diagnostics; bad and rapid switches are survived."""
import numpy as np
import pytest
from std_msgs.msg import String

from tests.nodes.conftest import wait_for
from tests.nodes.test_policy_server import enable, pump, serve

A, B = "put the red block in the bowl", "no, the green block"


@pytest.fixture
def graph(ros, tmp_path):
    from robot_stack.policies import policy_class
    cls = policy_class("switchvla")
    stats = {"action": {"mean": [0.0] * 7, "std": [0.01] * 7}, "proprio": {"mean": [0.0] * 8, "std": [1.0] * 8},
             "text": {"mean": [0.0] * 384, "scale": 0.05}}
    cls(cls.Config(image_size=32, cameras=("front",), channels=(8, 16), width=32, layers=1, heads=2, expert_layers=1,
                   grid=2, action_horizon=4, flow_steps=2, execute_steps=1), stats).save(tmp_path / "sw")
    return serve(ros, str(tmp_path / "sw"))


def _diag(g) -> dict:
    for status in reversed(g["diag"]):
        if status.name == "policy_server":
            return {kv.key: kv.value for kv in status.values}
    return {}


def test_a_new_instruction_mid_episode_is_a_switch_with_its_mode_on_diagnostics(graph):
    g = graph
    policy = g["server"].policies["switchvla"]
    resets = []
    reset = policy.reset
    policy.reset = lambda task: (resets.append(task.instruction), reset(task))[1]
    g["text"].publish(String(data=A))
    enable(g)
    pump(g, 20.0, until=lambda: len(g["chunks"]) > 2)
    assert resets == [A] and (policy.state.previous, policy.state.current) == (A, A)
    assert len(policy._history) >= 1
    g["text"].publish(String(data=B))
    before = len(g["chunks"])
    pump(g, 20.0, until=lambda: policy.state.current == B)
    assert len(g["chunks"]) - before <= 2           # the first or second decision after it reads the new text
    assert resets == [A]                            # no new episode: the history stays
    assert policy.state.previous in (A, B) and policy.state.switches == 1
    wait_for(lambda: _diag(g).get("instruction") == B and _diag(g).get("switch_mode") in
             ("forward", "rollback", "advance") and "switch_mode_rule" in _diag(g), timeout=10.0, what="the mode")
    # /diagnostics names the chunk that first reflects the switch (what `bench switch` times): one sent after it
    from robot_stack.ros import convert
    def reflected():
        after = [convert.from_time(c.header.stamp) for c in g["chunks"][before:]]
        return min(abs(np.array(after) - float(_diag(g).get("task_applied_stamp", "nan")))) < 2e-6
    wait_for(reflected, timeout=5.0, what="the stamp of the switch's first chunk")
    # a new episode: previous == current again
    enable(g, False)
    enable(g)
    pump(g, 20.0, until=lambda: len(resets) == 2)
    assert policy.state.previous == policy.state.current == B


def test_bad_and_rapid_switches_are_survived(graph):
    import time
    g = graph
    policy = g["server"].policies["switchvla"]
    g["text"].publish(String(data=A))
    enable(g)
    pump(g, 20.0, until=lambda: len(g["chunks"]) > 1)
    g["text"].publish(String(data="x" * 10_000))            # 10 kB: refused, the last good task stands
    wait_for(lambda: "at most 1000" in g["server"].last_error or any("at most 1000" in s.message for s in g["diag"]),
             timeout=10.0, what="the refusal")
    g["text"].publish(String(data="把绿色的方块放进碗里"))        # a language the encoder never saw: served
    pump(g, 20.0, until=lambda: policy.state.current == "把绿色的方块放进碗里")
    for k in range(10):                                     # ten switches within a second
        g["text"].publish(String(data=f"switch number {k}"))
        time.sleep(0.05)
    n = len(g["chunks"])
    pump(g, 20.0, until=lambda: policy.state.current == "switch number 9" and len(g["chunks"]) > n + 2)
    assert np.isfinite(policy.state.contact_prob)
    g["text"].publish(String(data=""))                      # cleared: no chunk, a clear diagnostic, still up
    pump(g, 1.0)
    n = len(g["chunks"])
    pump(g, 1.0)
    assert len(g["chunks"]) <= n + 1
    g["text"].publish(String(data=B))
    pump(g, 20.0, until=lambda: len(g["chunks"]) > n + 2)   # serving again


def test_a_switch_while_the_arm_is_estopped_is_served_and_the_arm_holds(graph, ros):
    """The server serves on and switches; the latched arm ignores the chunks; after recover it takes them again."""
    import time

    from robot_stack.ros import convert
    from tests.nodes.test_arm_node import start as start_arm
    g = graph
    policy = g["server"].policies["switchvla"]
    arm, client = start_arm(ros, task="pick_place")

    def images(seconds, until):
        """The camera only: the pose and gripper the server reads are the arm node's own."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and not until():
            g["image"].publish(convert.image_msg(np.full((32, 32, 3), 90, np.uint8), g["server"].now(), "front"))
            time.sleep(0.02)
        assert until(), f"not within {seconds} s"

    g["text"].publish(String(data=A))
    enable(g)
    images(20.0, lambda: len(g["chunks"]) > 2)
    assert client.call("arm/stop").success
    last = [client.pose()[0]]                     # the arm brakes to a stop (about 0.1 s, a centimetre at speed)

    def settled():
        time.sleep(0.1)
        now, moved = client.pose()[0], np.linalg.norm(client.pose()[0] - last[0])
        last[0] = now
        return moved < 2e-4
    wait_for(settled, timeout=10.0, what="the e-stopped arm at rest")
    held, n = client.pose()[0], len(g["chunks"])
    g["text"].publish(String(data=B))
    images(20.0, lambda: policy.state.current == B and len(g["chunks"]) > n + 5)
    assert policy.state.switches == 1 and g["server"].errors == 0
    assert np.linalg.norm(client.pose()[0] - held) < 2e-3          # chunks arrived; the latched arm held
    assert client.call("arm/recover").success
    images(20.0, lambda: np.linalg.norm(client.pose()[0] - held) > 2e-3)   # serving on: the arm moves again
