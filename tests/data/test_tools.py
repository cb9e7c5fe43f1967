"""The data CLI's functions: info, ls, show (rates and gaps), video export, verify."""
import numpy as np

from robot_stack.data import EpisodeStore
from robot_stack.data import tools
from tests.data.episodes import episode_data, write_episode


def test_info_ls_show_verify(tmp_path):
    p = tmp_path / "store"
    with EpisodeStore.create(p) as s:
        for k in range(3):
            write_episode(s, k)
        w = s.begin_episode(task="gappy")
        w.append_many("joint_pos", np.zeros((5, 7), np.float32), [0.0, 0.01, 0.02, 0.1, 0.11], [0.0, 0.01, 0.02, 0.1, 0.2])
        w.commit(success=False)
    info = tools.info(p)
    assert info["num_episodes"] == 4 and info["successes"] == 2 and info["streams"]["front"]["shape"] == [64, 96, 3]
    rows = tools.list_episodes(p)
    assert [r["seed"] for r in rows[:3]] == [0, 1, 2] and rows[3]["task"] == "gappy" and rows[3]["success"] is False
    assert rows[0]["rows"]["front"] == len(episode_data(0)["front"][0])
    shown = tools.show(p, 1)["streams"]
    assert abs(shown["front"]["rate_hz"] - 30) < 1e-6 and abs(shown["joint_pos"]["rate_hz"] - 75) < 1e-6
    assert shown["front"]["gaps"] == 0 and abs(shown["front"]["latency_mean_s"] - 0.004) < 1e-9
    gappy = tools.show(p, 3)["streams"]["joint_pos"]
    assert gappy["gaps"] == 1 and abs(gappy["max_dt_s"] - 0.08) < 1e-9 and abs(gappy["latency_max_s"] - 0.09) < 1e-9
    assert tools.verify(p) == []


def test_export_video_puts_image_streams_side_by_side(tmp_path):
    import imageio.v3 as iio
    p = tmp_path / "store"
    with EpisodeStore.create(p) as s:
        w = s.begin_episode()
        t = np.arange(6) / 10
        w.append_many("front", np.full((6, 32, 48, 3), 200, np.uint8), t)
        w.append_many("wrist", np.full((3, 16, 16, 3), 50, np.uint8), t[::2])
        w.commit()
    out = tools.export_video(p, 0, tmp_path / "ep0.mp4")
    assert out["frames"] == 6 and out["streams"] == ["front", "wrist"] and abs(out["fps"] - 10) < 1e-6
    frames = iio.imread(tmp_path / "ep0.mp4")
    assert frames.shape == (6, 32, 48 + 32, 3)   # wrist scaled to the common height
    assert abs(int(frames[0, 16, 10, 0]) - 200) < 10 and abs(int(frames[0, 16, 60, 0]) - 50) < 10


def test_merge_interleaves_by_seed_keeps_everything_and_refuses_streams_that_differ(tmp_path):
    import pytest
    from tests.data.episodes import assert_episode_equal
    a, b, odd = tmp_path / "a", tmp_path / "b", tmp_path / "odd"
    with EpisodeStore.create(a) as s:
        for k in (0, 2):
            write_episode(s, k)
    with EpisodeStore.create(b) as s:
        write_episode(s, 1, position_noise=0.02)
    assert tools.merge([a, b], tmp_path / "ab", progress=False) == 3
    with EpisodeStore.open(tmp_path / "ab") as merged:
        assert [merged.metadata(k)["seed"] for k in range(3)] == [0, 1, 2]
        assert merged.metadata(1)["position_noise"] == 0.02 and "position_noise" not in merged.metadata(0)
        assert [merged.metadata(k)["success"] for k in range(3)] == [True, False, True]
        for k in range(3):
            assert_episode_equal(merged, k)             # episode k holds seed k's rows and stamps
    with EpisodeStore.create(odd) as s:
        w = s.begin_episode(seed=5)
        w.append_many("front", np.zeros((2, 32, 32, 3), np.uint8), [0.0, 0.1])
        w.commit()
    with pytest.raises(ValueError, match="front"):
        tools.merge([a, odd], tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()
