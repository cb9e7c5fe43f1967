"""MP4 writing for episode videos (H.264 through the ffmpeg that imageio-ffmpeg ships)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: float = 10.0) -> Path:
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # macro_block_size=1 keeps odd sizes as they are; yuv420p plays everywhere.
    with imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=1,
                            pixelformat="yuv420p", ffmpeg_log_level="error") as writer:
        for frame in frames:
            writer.append_data(np.ascontiguousarray(frame))
    return path
