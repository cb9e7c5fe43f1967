"""robot-stack eval: interval, instruction templates, the in-process and the ROS 2 backends."""
import json
from pathlib import Path

import pytest

from robot_stack.evaluate import fill_instruction, run_eval, wilson_interval
from tests.policies.toy import ToyPolicy, toy_stats


def test_wilson_interval():
    lo, hi = wilson_interval(80, 100)
    assert lo == pytest.approx(0.7112, abs=1e-3) and hi == pytest.approx(0.8666, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_fill_instruction():
    params = {"object": "red block", "color": "red", "target": "bowl"}
    assert fill_instruction("drop the {color} cube into the {target}", params) == "drop the red cube into the bowl"
    with pytest.raises(ValueError, match="placeholder"):
        fill_instruction("the {shape}", params)


def test_expert_and_random_baselines_in_process(tmp_path):
    expert = run_eval("expert", "reach", "panda", 2, seed=0, backend="sim", json_path=str(tmp_path / "e.json"),
                      records_path=str(tmp_path / "e.jsonl"))
    assert expert["successes"] == 2 and json.loads((tmp_path / "e.json").read_text())["episodes"] == 2
    # each episode's record as a line as it ends: what a parallel eval's parent counts for its progress bar
    lines = (tmp_path / "e.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == json.loads((tmp_path / "e.json").read_text())["records"]
    rand = run_eval("random", "reach", "panda", 2, seed=0, backend="sim")
    assert rand["episodes"] == 2 and all(r["steps"] >= 1 for r in rand["records"])
    # how far an episode got: the lift expert grasps its block; reaching a point touches nothing
    lift = run_eval("expert", "lift", "panda", 1, seed=0, backend="sim")
    assert lift["records"][0]["touched"] is True and lift["touched"] == 1
    assert expert["touched"] == 0 and not any(r["touched"] for r in expert["records"])


def test_worker_processes_give_the_serial_records():
    keys = ("seed", "success", "touched", "steps", "params")
    serial = run_eval("expert", "reach", "panda", 3, seed=5, backend="sim")
    parallel = run_eval("expert", "reach", "panda", 3, seed=5, backend="sim", workers=2)
    assert [{k: r[k] for k in keys} for r in parallel["records"]] == [{k: r[k] for k in keys} for r in serial["records"]]
    assert [r["seed"] for r in parallel["records"]] == [5, 6, 7] and parallel["successes"] == 3


def test_checkpoint_conditioning_is_checked(tmp_path):
    ToyPolicy(ToyPolicy.Config(), toy_stats()).save(tmp_path / "toy")
    with pytest.raises(ValueError, match="accepts"):
        run_eval(str(tmp_path / "toy"), "reach", "panda", 1, seed=0, conditioning="none", backend="sim")
    with pytest.raises(ValueError, match="--instruction"):
        run_eval(str(tmp_path / "toy"), "reach", "panda", 1, seed=0, conditioning="instruction", backend="sim")
    report = run_eval(str(tmp_path / "toy"), "reach", "panda", 1, seed=3, options={"instruction": "touch the {target}"},
                      backend="sim")
    assert report["records"][0]["instruction"].startswith("touch the ") and report["records"][0]["seed"] == 3


def test_sim_actor_decides_every_execute_steps_and_blends_overlapping_chunks():
    """execute_steps 2, chunk_blend 0.5: steps 0-1 play chunk 0 (x = 0), step 2 plays chunk 1 (x = 1) moved halfway to
    chunk 0's plan there, and chunk 1's later steps outside chunk 0's span are its own."""
    from types import SimpleNamespace

    import numpy as np

    from robot_stack.evaluate import chunk_actor
    from robot_stack.types import ActionChunk

    env = SimpleNamespace(steps=0, policy_dt=0.1)
    decided, observed = [], []

    def act(obs):
        n = len(decided)
        decided.append(obs.stamp)
        times = obs.stamp + 0.1 * np.arange(1, 5)
        return ActionChunk(times, np.full((4, 3), float(n)), np.tile([1.0, 0, 0, 0], (4, 1)), np.full(4, float(n)))

    obs = {"ee_pose": np.zeros(7), "gripper": np.zeros(1)}
    policy = SimpleNamespace(act=act, observe=lambda o: observed.append(o.stamp))
    actor = chunk_actor(policy, env, (), execute_steps=2, chunk_blend=0.5)
    xs = []
    for step in range(5):
        env.steps = step
        xs.append(actor(obs)[0])
    assert decided == pytest.approx([0.0, 0.2, 0.4])
    assert observed == pytest.approx([0.1, 0.3])                         # the frames between decisions: history
    assert xs[:2] == [0.0, 0.0]
    assert xs[2] == pytest.approx(0.5) and xs[3] == pytest.approx(0.5)   # inside chunk 0's span (to t = 0.4)
    assert xs[4] == pytest.approx(0.5 * 2 + 0.5 * 1)                     # chunk 2 blended with blended chunk 1
    plain = chunk_actor(policy, env, (), execute_steps=2, chunk_blend=0.0)
    env.steps = 0
    assert plain(obs)[0] == 3.0                                          # no blending: the new chunk as it is
