"""The open-loop input check: swapping an input the policy ignores changes nothing; one it reads does."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from robot_stack.policies.probe import format_report, sensitivity, windows_at_phase
from tests.policies.toy import ToyPolicy, toy_stats


def _batch(rng, n=6, size=32):
    return {"images": {"front": torch.from_numpy(rng.integers(0, 256, (n, 1, size, size, 3), dtype=np.uint8))},
            "goal_image": torch.from_numpy(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)),
            "start_image": torch.from_numpy(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)),
            "proprio": torch.from_numpy(rng.normal(size=(n, 1, 8)).astype(np.float32))}


def test_an_ignored_input_swaps_without_effect_and_a_read_one_does_not():
    torch.manual_seed(0)
    policy = ToyPolicy(ToyPolicy.Config(), toy_stats())
    with torch.no_grad():
        policy.net[0].weight[:, 3:6] = 0            # the goal image's features: ignored
    batch = _batch(np.random.default_rng(0))
    with torch.no_grad():
        batch["action"] = policy.predict_batch(batch)   # the truth is its own prediction: error 0
    report = sensitivity(policy, batch)
    assert report["error_mm"] == pytest.approx(0, abs=1e-6)
    assert report["swapped_mm"]["goal_image"] == pytest.approx(0, abs=1e-6)
    assert report["swapped_mm"]["proprio"] > 1e-3 and report["swapped_mm"]["camera front"] > 1e-3
    assert report["mean_guess_mm"] > 0
    assert "camera front" in format_report([{"phase": 0.0, "windows": 6, **report}])


def test_one_window_per_episode_at_the_phase():
    windows = [(0, t) for t in range(10)] + [(1, t) for t in range(4)]          # (episode, tick) per index

    class Batches:
        ds = SimpleNamespace(window=lambda j: windows[j])

        def __len__(self):
            return len(windows)
    batches = Batches()
    assert windows_at_phase(batches, 0.0).tolist() == [0, 10]
    assert windows_at_phase(batches, 0.5).tolist() == [5, 12]
    assert windows_at_phase(batches, 1.0).tolist() == [9, 13]
