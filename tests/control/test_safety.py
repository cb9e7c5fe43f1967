"""The envelope's measured-TCP correction and chunk admission (size, horizon, past steps, box)."""
import numpy as np
import pytest

from robot_stack.control.chunks import check_chunk
from robot_stack.control.safety import SafetyEnvelope, SafetyLimits, SafetyViolation
from robot_stack.ros import convert
from robot_stack.types import ActionChunk

Q = np.array([0.0, 0.0, 0.0, 1.0])


def envelope(**kw):
    return SafetyEnvelope(SafetyLimits(workspace_low=(0.0, 0.0, 0.0), workspace_high=(1.0, 1.0, 1.0), **kw),
                          [-3] * 7, [3] * 7)


def test_a_measured_excursion_draws_the_set_point_box_in_and_relaxes_once_back_inside():
    env = envelope()
    assert env.observe_tcp([0.5, 0.5, 0.5], 0.001) == 0.0
    assert env.observe_tcp([1.004, 0.5, -0.002], 0.001) == pytest.approx(np.hypot(0.004, 0.002))
    np.testing.assert_allclose(env.setpoint_high, [0.996, 1.0, 1.0])
    np.testing.assert_allclose(env.setpoint_low, [0.0, 0.0, 0.002])
    pos, _ = env.limit_step(np.array([0.9995, 0.5, 0.5]), Q, np.array([1.0, 0.5, 0.5]), Q, 0.001)
    assert pos[0] < 0.9995                               # pulled in, at the speed limit
    for _ in range(2000):                                # 2 s back inside: 10 mm/s of relaxation
        env.observe_tcp([0.5, 0.5, 0.5], 0.001)
    np.testing.assert_allclose(env.setpoint_high, [1.0, 1.0, 1.0])
    assert env.max_excursion == pytest.approx(np.hypot(0.004, 0.002))


def test_the_inset_is_capped():
    env = envelope(max_box_inset=0.01)
    for _ in range(10):
        env.observe_tcp([1.05, 0.5, 0.5], 0.001)
    assert env.setpoint_high[0] == pytest.approx(0.99)


def chunk(times, xs=None):
    n = len(times)
    xs = np.full(n, 0.5) if xs is None else np.asarray(xs, dtype=float)
    return ActionChunk(np.asarray(times, dtype=float), np.stack([xs, np.full(n, 0.5), np.full(n, 0.5)], axis=1),
                       np.tile(Q * 2.0, (n, 1)), np.zeros(n))


def test_chunk_admission():
    env, now = envelope(), 100.0
    ok = check_chunk(chunk(now + np.array([0.1, 0.2]), [0.5, 1.5]), env, now, 2.0)
    np.testing.assert_allclose(ok.positions[:, 0], [0.5, 1.0])          # clipped into the box
    np.testing.assert_allclose(ok.quats, np.tile(Q, (2, 1)))            # unit quaternions
    assert env.events.counts["workspace_clip"] == 1
    with pytest.raises(SafetyViolation, match="ahead of now"):
        check_chunk(chunk(now + 1e6 + np.array([0.1, 0.2])), env, now, 2.0)
    with pytest.raises(SafetyViolation, match="spans 2.500 s"):
        check_chunk(chunk(now - 1.0 + np.array([0.0, 2.5])), env, now, 2.0)
    with pytest.raises(SafetyViolation, match="in the past"):
        check_chunk(chunk(now - np.array([0.2, 0.1])), env, now, 2.0)
    bad = chunk(now + np.array([0.1, 0.2]))
    bad.positions[1, 2] = np.inf
    with pytest.raises(SafetyViolation, match="non-finite"):
        check_chunk(bad, env, now, 2.0)


def test_parse_refuses_more_points_than_allowed_and_the_byte_bound_covers_a_full_chunk():
    from rclpy.serialization import serialize_message

    c = ActionChunk(100.0 + 0.01 * np.arange(1, 51), np.full((50, 3), 0.5), np.tile(Q, (50, 1)), np.zeros(50))
    msg = convert.chunk_msg(c)
    parsed = convert.parse_chunk(msg, max_points=50)
    np.testing.assert_allclose(parsed.times, c.times)
    np.testing.assert_allclose(parsed.positions, c.positions)
    with pytest.raises(convert.MessageError, match="50 points; at most 49"):
        convert.parse_chunk(msg, max_points=49)
    limit = convert.chunk_bytes_limit(50)
    assert len(serialize_message(msg)) <= limit < len(serialize_message(convert.chunk_msg(
        ActionChunk(100.0 + 0.01 * np.arange(1, 201), np.full((200, 3), 0.5), np.tile(Q, (200, 1)), np.zeros(200)))))


def test_a_set_point_pressing_past_the_contact_force_limit_is_drawn_back_along_the_force():
    env = envelope(max_contact_force=100.0)
    tcp = np.array([0.5, 0.5, 0.03])                    # the hand on the table
    sp = np.array([0.52, 0.5, 0.0])                     # 30 mm into it, and 20 mm along it
    np.testing.assert_array_equal(env.limit_contact(sp, tcp, [0.0, 0.0, 80.0]), sp)      # under the limit: as is
    out = env.limit_contact(sp, tcp, [0.0, 0.0, 300.0])
    np.testing.assert_allclose(out, [0.52, 0.5, 0.02])  # a third of the depth: 100 N of 300; along the table as is
    np.testing.assert_array_equal(env.limit_contact(np.array([0.5, 0.5, 0.05]), tcp, [0.0, 0.0, 300.0]),
                                  [0.5, 0.5, 0.05])      # already pulling away: as is
    assert env.events.counts["contact_force_limit"] == 1


def test_the_set_point_leads_the_measured_tcp_by_at_most_max_lead_in_position_and_angle():
    from robot_stack import transforms as tf
    env = SafetyEnvelope(SafetyLimits(max_lead=0.03, max_lead_angle=0.2), [-3] * 7, [3] * 7)
    tcp, hand = np.array([0.4, 0.0, 0.3]), np.array([1.0, 0.0, 0.0, 0.0])
    near = tcp + [0.02, 0.0, 0.0]
    pos, quat = env.limit_lead(near, hand, tcp, hand)
    np.testing.assert_allclose(pos, near)                                   # within the bound: untouched
    turned = tf.quat_mul(hand, tf.axis_angle_to_quat(np.array([0.0, 0.0, 0.6])))
    pos, quat = env.limit_lead(tcp + [0.0, 0.1, 0.0], turned, tcp, hand)
    np.testing.assert_allclose(pos, tcp + [0.0, 0.03, 0.0])                 # pulled in along the lead
    assert tf.angle_between(quat, hand) == pytest.approx(0.2, abs=1e-6)
    assert env.events.counts["lead_limit"] == 2


def test_over_the_speed_limit_the_set_point_keeps_only_the_lead_that_brakes_the_tcp():
    env = SafetyEnvelope(SafetyLimits(max_linear_speed=0.5, max_lead=0.03), [-3] * 7, [3] * 7)
    tcp, hand = np.array([0.4, 0.0, 0.3]), np.array([1.0, 0.0, 0.0, 0.0])
    ahead_and_aside = tcp + [0.02, 0.01, 0.0]
    pos, _ = env.limit_lead(ahead_and_aside, hand, tcp, hand, np.array([0.4, 0.0, 0.0]))      # under the limit
    np.testing.assert_allclose(pos, ahead_and_aside)
    pos, _ = env.limit_lead(ahead_and_aside, hand, tcp, hand, np.array([0.7, 0.0, 0.0]))      # over it
    np.testing.assert_allclose(pos, tcp)                                    # no pull along or across its motion
    behind = tcp + [-0.02, 0.01, 0.0]
    pos, _ = env.limit_lead(behind, hand, tcp, hand, np.array([0.7, 0.0, 0.0]))
    np.testing.assert_allclose(pos, tcp + [-0.02, 0.0, 0.0])                 # the braking part stays
    assert env.events.counts["tcp_speed_governor"] == 2
