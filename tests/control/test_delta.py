import numpy as np

from robot_stack import transforms as tf
from robot_stack.control.delta import apply_delta, delta_between


def test_delta_between_matches_a_hand_computed_step():
    pos, quat = np.array([0.4, 0.0, 0.3]), np.array([1.0, 0.0, 0.0, 0.0])
    a = delta_between(pos, quat, pos + [0.01, -0.005, 0.002], quat, 1.0, 0.02, 0.1)
    np.testing.assert_allclose(a, [0.5, -0.25, 0.1, 0, 0, 0, 1.0], atol=1e-9)


def test_apply_and_delta_between_invert_each_other():
    rng = np.random.default_rng(0)
    for _ in range(20):
        pos, quat = rng.uniform(-0.5, 0.5, 3), tf.normalize(rng.normal(size=4))
        action = rng.uniform(-1, 1, 7)
        target, target_quat, grip = apply_delta(action, pos, quat, 0.02, 0.1)
        assert 0.0 <= grip <= 1.0
        back = delta_between(pos, quat, target, target_quat, grip, 0.02, 0.1)
        np.testing.assert_allclose(back, action, atol=1e-6)


def test_actions_beyond_the_limits_are_clipped():
    pos, quat = np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0])
    target, _, grip = apply_delta([5.0, 0, 0, 0, 0, 0, 3.0], pos, quat, 0.02, 0.1)
    np.testing.assert_allclose(target, [0.02, 0, 0])
    assert grip == 1.0
    far = delta_between(pos, quat, [1.0, 0, 0], quat, 0.0, 0.02, 0.1)
    np.testing.assert_allclose(far, [1, 0, 0, 0, 0, 0, -1])
