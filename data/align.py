"""Aligning a stream to another stream's clock, the one rule used by the recorder, the dataset and video export."""
from __future__ import annotations

import numpy as np


def align_to_clock(clock_stamps: np.ndarray, stream_stamps: np.ndarray) -> np.ndarray:
    """Row of the latest ``stream`` sample captured at or before each clock stamp (0 when none is).

    Never a sample from the future: a policy at tick t could not have seen it.
    """
    rows = np.searchsorted(stream_stamps, clock_stamps, side="right") - 1
    return np.clip(rows, 0, len(stream_stamps) - 1)
