"""The quaternion helpers (float math, for the 1 kHz loop) against SciPy's rotations, which share the (x, y, z, w) order."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from robot_stack import transforms as tf

rng = np.random.default_rng(7)
QUATS = [q / np.linalg.norm(q) for q in rng.normal(size=(200, 4))]


def same_rotation(a, b, atol=1e-9) -> bool:
    return np.allclose(a, b, atol=atol) or np.allclose(a, -np.asarray(b), atol=atol)


def test_products_matrices_and_rotation_vectors_match_scipy():
    for a, b in zip(QUATS[::2], QUATS[1::2]):
        ra, rb = Rotation.from_quat(a), Rotation.from_quat(b)
        assert same_rotation(tf.quat_mul(a, b), (ra * rb).as_quat())
        np.testing.assert_allclose(tf.quat_to_mat(a), ra.as_matrix(), atol=1e-12)
        assert same_rotation(tf.mat_to_quat(ra.as_matrix()), a) and tf.mat_to_quat(ra.as_matrix())[3] >= 0
        np.testing.assert_allclose(tf.rotation_error(a, b), (ra * rb.inv()).as_rotvec(), atol=1e-9)
        assert tf.angle_between(a, b) == pytest.approx((ra * rb.inv()).magnitude(), abs=1e-9)
        rotvec = ra.as_rotvec()
        assert same_rotation(tf.axis_angle_to_quat(rotvec), a)
        np.testing.assert_allclose(tf.quat_to_axis_angle(a), rotvec, atol=1e-9)


def test_slerp_turns_at_constant_rate_the_short_way():
    for a, b in zip(QUATS[::2], QUATS[1::2]):
        total = tf.angle_between(b, a)
        for t in (0.0, 0.25, 0.5, 1.0):
            q = tf.slerp(a, b, t)
            assert np.linalg.norm(q) == pytest.approx(1.0)
            assert tf.angle_between(q, a) == pytest.approx(t * total, abs=1e-7)
            assert tf.angle_between(b, q) == pytest.approx((1 - t) * total, abs=1e-7)


def test_euler_and_mujoco_order():
    r, p, y = 0.3, -0.7, 1.9
    assert same_rotation(tf.euler_to_quat(r, p, y), Rotation.from_euler("xyz", [r, p, y]).as_quat())
    np.testing.assert_array_equal(tf.to_mj([1.0, 2.0, 3.0, 4.0]), [4.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(tf.from_mj(tf.to_mj(QUATS[0])), QUATS[0])


@pytest.mark.parametrize("bad", [[0, 0, 0, 0], [np.nan, 0, 0, 1], [np.inf, 0, 0, 1], [1e-14, 0, 0, 0]])
def test_invalid_quaternions_are_refused_with_the_value(bad):
    with pytest.raises(ValueError, match="not a valid quaternion"):
        tf.normalize(bad)
    with pytest.raises(ValueError):
        tf.rotation_error(bad, [0, 0, 0, 1])


def test_huge_and_tiny_quaternions_normalise_without_overflow():
    np.testing.assert_allclose(tf.normalize([0, 0, 3e200, 4e200]), [0, 0, 0.6, 0.8])
    np.testing.assert_allclose(tf.normalize([0, 0, 3e-10, 4e-10]), [0, 0, 0.6, 0.8])
    with pytest.raises(ValueError, match="expected 4 numbers"):
        tf.quat_mul([0, 0, 1], [0, 0, 0, 1])
