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
    after = [convert.from_time(c.header.stamp) for c in g["chunks"][before:]]
    wait_for(lambda: min(abs(np.array(after) - float(_diag(g).get("task_applied_stamp", "nan")))) < 2e-6,
             timeout=5.0, what="the stamp of the switch's first chunk")
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
