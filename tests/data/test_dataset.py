"""Windows at episode edges, alignment of streams at different rates, normalisation statistics, split by episode."""
import numpy as np
import pytest
import torch

from robot_stack.data import EpisodeStore
from robot_stack.data.dataset import EpisodeDataset, align_to_clock
from robot_stack.data.stats import compute_stats, load_stats, normalize, save_stats, split_episodes, unnormalize

TICKS = (4, 3, 5)   # clock ticks per episode


@pytest.fixture
def path(tmp_path):
    """Clock 'action' at 10 Hz holds 100*episode + tick; 'cam' runs at 5 Hz, offset by 50 ms, its pixels hold 10*episode + frame."""
    p = tmp_path / "store"
    with EpisodeStore.create(p) as store:
        for k, n in enumerate(TICKS):
            w = store.begin_episode(task="t", seed=k)
            t = 1000.0 * k + np.arange(n) / 10
            w.append_many("action", (100 * k + np.arange(n, dtype=np.float32))[:, None], t)
            w.append_many("state", np.stack([100 * k + np.arange(n), -np.arange(n)], 1).astype(np.float32), t)
            t_cam = 1000.0 * k + 0.05 + np.arange((n + 1) // 2) / 5
            w.append_many("cam", np.stack([np.full((2, 2, 1), 10 * k + i, np.uint8) for i in range(len(t_cam))]), t_cam)
            w.commit()
    return p


def _ds(path, **kw):
    return EpisodeDataset(path, obs_keys=("state", "cam"), action_keys=("action",), obs_horizon=2, action_horizon=3, **kw)


def test_windows_repeat_edge_frames_and_never_cross_episodes(path):
    ds = _ds(path)
    assert len(ds) == sum(TICKS)
    first = ds[0]
    assert first["episode"] == 0 and first["tick"] == 0
    assert first["obs"]["state"][:, 0].tolist() == [0, 0]
    assert first["obs_is_pad"].tolist() == [True, False]
    assert first["action"]["action"][:, 0].tolist() == [0, 1, 2]
    assert first["action_is_pad"].tolist() == [False, False, False]
    last_of_0 = ds[3]
    assert last_of_0["obs"]["state"][:, 0].tolist() == [2, 3]
    assert last_of_0["action"]["action"][:, 0].tolist() == [3, 3, 3]          # not 100, 101 of episode 1
    assert last_of_0["action_is_pad"].tolist() == [False, True, True]
    first_of_1 = ds[4]
    assert first_of_1["episode"] == 1 and first_of_1["obs"]["state"][:, 0].tolist() == [100, 100]   # not 3
    assert ds[6]["action"]["action"][:, 0].tolist() == [102, 102, 102]
    assert first["obs"]["cam"].dtype == torch.uint8 and first["obs"]["cam"].shape == (2, 2, 2, 1)


def test_slower_stream_aligns_to_latest_sample_captured_before_the_tick(path):
    ds = _ds(path)
    # cam frames at 0.05 s and 0.25 s; ticks at 0.0, 0.1, 0.2, 0.3 -> frames 0 (none earlier), 0, 0, 1
    cams = [int(ds[i]["obs"]["cam"][-1, 0, 0, 0]) for i in range(4)]
    assert cams == [0, 0, 0, 1]
    # episode 2 (samples 7..11): its third frame at 0.45 s comes after the last tick at 0.4 s, never used
    assert [int(ds[i]["obs"]["cam"][-1, 0, 0, 0]) for i in range(7, 12)] == [20, 20, 20, 21, 21]
    assert align_to_clock(np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.5])).tolist() == [0, 0, 1]


def test_normalisation_stats_are_json_and_invertible(path, tmp_path):
    store = EpisodeStore.open(path)
    stats = compute_stats(store, ["state", "cam"], episodes=[0, 1])
    state = np.concatenate([np.stack([100 * k + np.arange(n), -np.arange(n)], 1) for k, n in zip((0, 1), TICKS)])
    assert stats["state"]["min"] == [0, -3] and stats["state"]["max"] == [102, 0]
    assert np.allclose(stats["state"]["mean"], state.mean(0)) and np.allclose(stats["state"]["std"], state.std(0))
    assert stats["state"]["count"] == 7 and len(stats["cam"]["mean"]) == 1   # images: per channel
    loaded = load_stats(save_stats(tmp_path / "stats.json", stats))
    assert loaded == stats
    x = state.astype(np.float32)
    y = normalize(x, loaded["state"], "minmax")
    assert y.min() == -1 and y.max() == 1
    assert np.allclose(unnormalize(normalize(x, loaded["state"], "meanstd"), loaded["state"], "meanstd"), x, atol=1e-4)
    ds = _ds(path, episodes=[0, 1], normalize={"state": "minmax"})
    assert ds.stats["state"] == stats["state"]
    assert ds[0]["obs"]["state"][1].tolist() == [-1.0, 1.0]
    with pytest.raises(ValueError, match="mode"):
        normalize(x, stats["state"], "zscore")


def test_split_by_episode_is_deterministic_and_disjoint(path):
    train, val = split_episodes(20, val_fraction=0.2, seed=3)
    assert (train, val) == split_episodes(20, val_fraction=0.2, seed=3)
    assert len(val) == 4 and sorted(train + val) == list(range(20))
    assert split_episodes(20, 0.2, seed=4)[1] != val
    assert split_episodes(2, 0.05, seed=0)[1] != []        # at least one validation episode when asked
    train, val = split_episodes(3, val_fraction=0.34, seed=0)
    ds_val = _ds(path, episodes=val)
    assert {ds_val[i]["episode"] for i in range(len(ds_val))} == set(val)
    assert len(ds_val) == sum(TICKS[k] for k in val)


def test_dataloader_workers_open_the_store_lazily(path):
    ds = _ds(path)
    want = torch.stack([ds[i]["action"]["action"] for i in range(len(ds))])
    per_sample = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    assert torch.equal(torch.cat([b["action"]["action"] for b in per_sample]), want)
    batches = list(ds.loader(batch_size=5, shuffle=True, num_workers=2, seed=1))
    ticks = torch.cat([b["tick"] for b in batches])
    episodes = torch.cat([b["episode"] for b in batches])
    index = {(int(e), int(t)): i for i, (e, t) in enumerate((ds[i]["episode"], ds[i]["tick"]) for i in range(len(ds)))}
    order = [index[(int(e), int(t))] for e, t in zip(episodes, ticks)]
    assert sorted(order) == list(range(len(ds))) and order != sorted(order)     # a shuffled epoch, each sample once
    assert torch.equal(torch.cat([b["action"]["action"] for b in batches]), want[order])
    assert batches[0]["obs"]["cam"].shape == (5, 2, 2, 2, 1) and batches[0]["action_is_pad"].shape == (5, 3)
    assert ds.__getstate__()["_store"] is None   # workers get an unopened copy and open the store themselves


def test_missing_stream_is_named(path):
    with pytest.raises(KeyError, match="wrist"):
        EpisodeDataset(path, obs_keys=("wrist",), action_keys=("action",))
