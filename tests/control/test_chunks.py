"""Chunk playback: stale steps skipped, interpolation between steps, temporal ensembling."""
import numpy as np

from robot_stack.control.chunks import blend_chunks, chunk_target_at
from robot_stack.types import ActionChunk

Q = np.array([0.0, 0.0, 0.0, 1.0])


def chunk(t0, xs, grip=0.0):
    n = len(xs)
    return ActionChunk(t0 + 0.1 * np.arange(1, n + 1), np.array([[x, 0.0, 0.2] for x in xs]), np.tile(Q, (n, 1)),
                       np.full(n, grip))


def test_stale_steps_are_skipped_and_steps_interpolate():
    c = chunk(0.0, [0.1, 0.2, 0.3])           # steps at 0.1, 0.2, 0.3
    assert chunk_target_at(c, 0.05)[0][0] == 0.1        # before the first step: the first target
    np.testing.assert_allclose(chunk_target_at(c, 0.25)[0][0], 0.25)   # late arrival: already half way to step 3
    assert chunk_target_at(c, 5.0)[0][0] == 0.3         # past the end: hold the last target


def test_blending_moves_only_the_overlap():
    old = chunk(0.0, [0.1, 0.2, 0.3])
    new = chunk(0.1, [0.5, 0.6, 0.7], grip=1.0)          # steps at 0.2, 0.3, 0.4
    b = blend_chunks(old, new, 0.5)
    np.testing.assert_allclose(b.positions[:, 0], [0.35, 0.45, 0.7])
    np.testing.assert_allclose(b.gripper, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(blend_chunks(old, new, 0.0).positions, new.positions)
