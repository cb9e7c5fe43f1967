"""Expert episodes into a store: several worker processes give the store one process would have written."""
import numpy as np

from robot_stack.data import EpisodeStore
from robot_stack.sim.expert_data import generate


def test_parallel_workers_merge_to_the_serial_store(tmp_path):
    serial = generate("reach", "panda", 3, seed=1000, out=str(tmp_path / "serial.zarr"), image_size=32,
                      progress=False)
    parallel = generate("reach", "panda", 3, seed=1000, out=str(tmp_path / "parallel.zarr"), image_size=32,
                        workers=2)
    assert serial["episodes"] == parallel["episodes"] == 3 and parallel["workers"] == 2
    assert not (tmp_path / "parallel.zarr.shards").exists()
    a, b = EpisodeStore.open(tmp_path / "serial.zarr"), EpisodeStore.open(tmp_path / "parallel.zarr")
    assert [a.metadata(k)["seed"] for k in range(3)] == [b.metadata(k)["seed"] for k in range(3)] == [1000, 1001, 1002]
    for k in range(3):
        ea, eb = a.read_episode(k), b.read_episode(k)
        assert ea.keys() == eb.keys()
        for name in ea:
            for part in ("data", "capture_stamp", "receive_stamp"):
                np.testing.assert_array_equal(ea[name][part], eb[name][part], err_msg=f"{k} {name} {part}")
        assert a.metadata(k)["instruction"] == b.metadata(k)["instruction"]
