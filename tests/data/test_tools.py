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
