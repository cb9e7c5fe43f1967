"""Episode store, datasets and replay (installed as robot_stack.data).

    store = EpisodeStore.create("outputs/demos.zarr")          # or EpisodeStore.open(path, "a"|"r")
    with store.begin_episode(task="pick_place", instruction="...", robot="panda",
                             operator="teleop:keyboard", seed=3) as ep:
        ep.append("front", rgb, capture_stamp, receive_stamp)  # streams are declared by their first append
        ep.append("joint_pos", q, stamp)
        ep.commit(success=True)                                # atomic; leaving the block uncommitted discards
    store.read_episode(0)["front"]["data"]                     # {stream: {"data", "capture_stamp", "receive_stamp"}}
    verify(store)                                              # [] or a list of Problem(episode, key, message)

Modules: store.py (layout, crash safety, reading), writer.py (one episode), frames.py (fast
image chunk reads), verify.py, align.py (latest-before alignment), stats.py (normalisation,
train/val split), dataset.py (torch windows; imports torch), tools.py (what `robot-stack data` prints).
"""
from .errors import (CorruptEpisodeError, EpisodeNotFoundError, FormatVersionError, StoreError,
                     StoreLockedError, StreamShapeError)
from .store import FORMAT_VERSION, EpisodeStore, StreamSpec
from .writer import EpisodeWriter
from .verify import Problem, verify
from .align import align_to_clock
from .stats import compute_stats, split_episodes

__all__ = ["CorruptEpisodeError", "EpisodeNotFoundError", "FormatVersionError", "StoreError", "StoreLockedError",
           "StreamShapeError", "FORMAT_VERSION", "EpisodeStore", "StreamSpec", "EpisodeWriter", "Problem", "verify",
           "align_to_clock", "compute_stats", "split_episodes"]
