"""Canonical <-> policy-space actions, normalisation."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from robot_stack import transforms as tf
from robot_stack.policies import actions as A


def random_pose(rng):
    q = rng.normal(size=4)
    return np.concatenate((rng.uniform(-0.5, 0.5, 3), q / np.linalg.norm(q)))


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000))
def test_encode_decode_round_trip(seed):
    rng = np.random.default_rng(seed)
    ee = random_pose(rng)
    targets = np.stack([random_pose(rng) for _ in range(4)])
    grip = rng.uniform(0, 1, (4, 1))
    enc = A.encode(ee, targets, grip)
    assert enc.shape == (4, 7)
    chunk = A.decode(ee, enc, stamp=2.0, dt=0.1)
    np.testing.assert_allclose(chunk.positions, targets[:, :3], atol=1e-5)
    for q_dec, q_true in zip(chunk.quats, targets[:, 3:]):
        assert tf.angle_between(q_dec, q_true) < 1e-4
    np.testing.assert_allclose(chunk.gripper, grip[:, 0], atol=1e-6)
    np.testing.assert_allclose(chunk.times, 2.0 + 0.1 * np.arange(1, 5))


def test_identity_target_encodes_to_zero_motion():
    ee = np.array([0.4, 0.1, 0.2, 0.0, 1.0, 0.0, 0.0])
    enc = A.encode(ee, ee[None], np.array([[1.0]]))
    np.testing.assert_allclose(enc[0, :6], 0, atol=1e-7)


def test_normalise_inverts_and_proprio_picks_one_quaternion_sign():
    x = np.random.default_rng(1).normal(size=(50, 7)) * 3 + 1
    stats = A.compute_stats(x)
    for mode in ("meanstd", "minmax"):
        np.testing.assert_allclose(A.unnormalise(A.normalise(x, stats, mode), stats, mode), x, atol=1e-9)
    assert A.normalise(x, stats, "minmax").min() >= -1 - 1e-9
    pose = np.array([0.1, 0.2, 0.3, 0.0, 0.0, 0.6, -0.8])
    flipped = pose.copy()
    flipped[3:] *= -1
    np.testing.assert_allclose(A.proprio(pose, 0.05), A.proprio(flipped, 0.05))


def test_decode_rejects_non_finite_predictions():
    import pytest
    with pytest.raises(ValueError):
        A.decode(np.array([0, 0, 0, 0, 0, 0, 1.0]), np.full((2, 7), np.nan), 0.0, 0.1)
