"""A new episode starts from a clean command state: the hand open, whatever the last episode left closed."""
from tests.control.test_controller import run, twin


def test_a_reset_opens_a_hand_the_last_episode_left_closed():
    clock, driver, c = twin(robot="panda")
    pos, quat = driver.scene.ee_pose()
    c.set_target(pos, quat, clock.t)
    c.set_gripper(1.0)                                    # the episode ends holding: the command stays closed
    run(clock, driver, c, 1.0)
    closed = driver.read_state().gripper_width
    assert c.gripper == 1.0 and closed < 0.01
    driver.reset_next()                                   # as the arm node does on sim/reset, between ticks
    c.reset()
    run(clock, driver, c, 1.0)
    # Kept closed, the fingers met on nothing and a policy reading the width (GRIF) took it for a held block:
    # every later episode of a ros eval failed (1/10), the first succeeding.
    assert c.gripper == 0.0
    assert driver.read_state().gripper_width > 0.07


def test_a_stream_ended_on_purpose_holds_without_a_stall_and_a_dropped_one_is_a_stall():
    for ended in (True, False):
        stalls = []
        clock, driver, c = twin()
        c.on_stall = stalls.append
        pos, quat = driver.scene.ee_pose()
        for k in range(5):                                    # a stream of targets at 10 Hz
            c.set_target(pos + [0.0, 0.005 * k, 0.0], quat, clock.t)
            run(clock, driver, c, 0.1)
        if ended:
            c.end_stream()                                    # a paused policy server's empty chunk
        run(clock, driver, c, 0.5)
        assert c.mode == "hold" and c.safety.events.counts["watchdog_hold"] == 1
        assert len(stalls) == (0 if ended else 1) and c.take_stalls() == (0 if ended else 1)
