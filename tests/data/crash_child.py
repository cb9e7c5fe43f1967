"""Child process for the SIGKILL test: commits episodes, announcing each in a marker file, until killed.

mode "mid_episode": after N committed episodes it appends frames to episode N forever.
mode "mid_commit": episode N's commit writes all its rows, episode ends and metadata, then
announces itself and blocks just before the commit record (the worst moment to die).
mode "loop": commits episodes back to back, so the kill lands anywhere, commits included.
"""
import sys
import threading
from pathlib import Path

import numpy as np

from robot_stack.data import EpisodeStore
from tests.data.episodes import episode_data, write_episode


def main(path: str, mode: str, marker: str, n_before: int) -> None:
    store = EpisodeStore.create(path)
    k = 0
    while True:
        if mode == "mid_episode" and k == n_before:
            writer = store.begin_episode(task="never committed")
            rows, cap, rec = episode_data(k, frames=1)["front"]
            writer.append("extra", np.zeros(3), 1e6)   # a stream only this doomed episode declares
            i = 0
            while True:
                writer.append("front", rows[0], 1e6 + i, 1e6 + i)
                i += 1
                if i == 3 * 8:   # several blocks of frames are on disk: say so, keep going
                    Path(marker).write_text(f"{k} writing")
        if mode == "mid_commit" and k == n_before:
            def stuck(*args):
                Path(marker).write_text(f"{k} committing")
                threading.Event().wait()
            store._commit_record = stuck
        write_episode(store, k)
        k += 1
        tmp = Path(marker + ".tmp")
        tmp.write_text(f"{k} committed")
        tmp.replace(marker)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
