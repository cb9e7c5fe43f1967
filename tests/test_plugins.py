"""Extension points: a conditioning kind and a policy from another package (tests/plugins, found through entry
points), trained, evaluated on both backends and served, with no edit to robot_stack."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PLUGINS = Path(__file__).resolve().parent / "plugins"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def plugins():
    sys.path.insert(0, str(PLUGINS))
    import robot_stack_toy_plugins.waypoint_kind  # noqa: F401  (in this process: registered on import)
    import robot_stack_toy_plugins.waypoint_policy.policy  # noqa: F401
    yield
    sys.path.remove(str(PLUGINS))


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), str(ROOT)])}


def test_entry_points_register_the_kind_and_the_policy_in_a_fresh_process():
    code = ("from robot_stack.policies import discover; from robot_stack.policies.conditioning import names; "
            "print(sorted(discover()), names())")
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert "'waypoint_mlp'" in out.stdout and "'waypoint'" in out.stdout, out.stderr
    helptext = subprocess.run([sys.executable, "-m", "robot_stack.cli", "train", "--help"], env=_env(),
                              capture_output=True, text=True, timeout=120).stdout
    assert "waypoint_mlp (conditioning: waypoint" in helptext and "hidden=32" in helptext
    evalhelp = subprocess.run([sys.executable, "-m", "robot_stack.cli", "eval", "--help"], env=_env(),
                              capture_output=True, text=True, timeout=120).stdout
    assert "--waypoint X,Y,Z" in evalhelp


def test_task_fields_come_from_the_registered_kinds(plugins):
    from robot_stack.types import Task
    task = Task(waypoint=np.array([0.5, 0.0, 0.2]))
    assert task.provides() == {"none", "waypoint"} and task.goal_image is None
    with pytest.raises(TypeError, match="no field 'sketchy'"):
        Task(sketchy=1)


def test_a_plugin_policy_trains_evaluates_on_both_backends_and_is_served(plugins, tmp_path, monkeypatch):
    from robot_stack.child_graph import isolated_domain
    from robot_stack.evaluate import run_eval
    from robot_stack.policies import load_policy
    from robot_stack.policies.train import train, train_config
    from robot_stack.sim.expert_data import generate

    store = tmp_path / "reach.zarr"
    assert generate("reach", "panda", 3, seed=1000, out=str(store), image_size=32)["episodes"] == 3
    cfg = train_config(["policy=waypoint_mlp", f"data={store}", "task=reach", f"out={tmp_path}/run", "steps=30",
                        "batch_size=16", "threads=1", "val_fraction=0.34", "log_every=10", "policy.hidden=24"])
    result = train(cfg)
    ckpt = tmp_path / "run" / "checkpoint"
    policy = load_policy(ckpt)
    assert result["steps"] == 30 and policy.name == "waypoint_mlp" and policy.config.hidden == 24
    first, last = json.loads((tmp_path / "run" / "history.json").read_text())[::2]
    assert last["loss"] < first["loss"]                                   # it learned something from the waypoints

    sim = run_eval(str(ckpt), "reach", "panda", 1, seed=11, backend="sim")
    assert sim["conditioning"] == "waypoint" and sim["episodes"] == 1 and sim["execute_steps"] == 1

    isolated_domain()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(PLUGINS), str(ROOT)]))   # the graph finds the plug-ins
    monkeypatch.setattr("robot_stack.sim.tasks.reach.Reach.max_steps", 30)
    ros = run_eval(str(ckpt), "reach", "panda", 1, seed=11, backend="ros", options={"waypoint": "0.5,0.1,0.2"})
    assert ros["conditioning"] == "waypoint" and ros["records"][0]["seed"] == 11
    assert float(ros["arm_diagnostics"]["chunks_received"]) >= 5          # the server decided on the waypoint task
