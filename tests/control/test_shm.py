"""The shared-memory protocol between the arm node and the controller process: command order and sequence numbers,
a full ring refusing rather than overwriting, stale chunks, lost state rows counted, and no torn read while another
process writes."""
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from robot_stack.control import shm
from robot_stack.control.shm import Layout, SharedControl


@pytest.fixture
def shared():
    s = SharedControl(Layout(dof=7, sim=5, cmd_capacity=8, state_capacity=16, chunk_capacity=50, samples=100),
                      create=True)
    yield s
    s.close()


def test_commands_come_out_in_order_with_their_sequence_numbers_across_wraps(shared):
    seen = []
    for round_ in range(5):                              # 5 x 6 commands through an 8-row ring: it wraps
        for k in range(6):
            shared.put_command(shm.TARGET, stamp=round_ + k / 10, values=(round_, k, 0, 0, 0, 0, 1))
        while (row := shared.take_command()) is not None:
            seen.append((int(row[0]), int(row[1]), float(row[2]), int(row[3]), int(row[4])))
    assert [s[0] for s in seen] == list(range(1, 31))
    assert [(s[3], s[4]) for s in seen] == [(r, k) for r in range(5) for k in range(6)]
    assert all(s[1] == shm.TARGET for s in seen)


def test_a_full_command_ring_refuses_instead_of_overwriting(shared):
    for k in range(8):
        shared.put_command(shm.GRIPPER, values=(k,))
    with pytest.raises(shm.CommandQueueFull):
        shared.put_command(shm.STOP)
    assert int(shared.take_command()[3]) == 0          # the oldest is still there
    shared.put_command(shm.STOP)                        # room for one again
    kinds = [int(shared.take_command()[1]) for _ in range(8)]
    assert kinds == [shm.GRIPPER] * 7 + [shm.STOP] and shared.take_command() is None


def test_a_chunk_replaced_before_it_was_taken_is_stale(shared):
    t = np.linspace(0.0, 1.0, 10)
    first = shared.put_chunk(t, np.zeros((10, 3)), np.tile([0, 0, 0, 1.0], (10, 1)), np.zeros(10), stamp=1.0)
    second = shared.put_chunk(t[:4] + 5, np.ones((4, 3)), np.tile([0, 0, 0, 1.0], (4, 1)), np.ones(4), stamp=2.0)
    assert shared.read_chunk(first) is None
    steps, stamp = shared.read_chunk(second)
    assert stamp == 2.0 and steps.shape == (4, 9) and np.array_equal(steps[:, 0], t[:4] + 5)
    assert np.all(steps[:, 1:4] == 1.0) and np.all(steps[:, 8] == 1.0)
    with pytest.raises(ValueError):
        shared.put_chunk(np.zeros(51), np.zeros((51, 3)), np.zeros((51, 4)), np.zeros(51), stamp=0.0)


def test_a_reader_that_fell_behind_gets_the_newest_rows_in_order_and_the_count_it_lost(shared):
    row = np.zeros(shared.layout.state_width)
    for k in range(40):                                  # 40 rows through a 16-row ring
        row[1:] = k
        shared.put_state(row)
    out = np.zeros((32, shared.layout.state_width))
    n, last, lost = shared.states_since(0, out)
    assert (n, last, lost) == (16, 40, 24)
    assert np.array_equal(out[:n, 0], np.arange(25, 41)) and np.array_equal(out[:n, 1], np.arange(24, 40))
    assert shared.states_since(last, out)[0] == 0


WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from robot_stack.control.shm import Layout, SharedControl, STATUS_FIELDS, EVENT_KINDS, H_READY, H_EXITED
    s = SharedControl(Layout(**eval(sys.argv[1])), sys.argv[2])
    row = np.zeros(s.layout.state_width)
    fields, counts = np.zeros(STATUS_FIELDS), np.zeros(len(EVENT_KINDS))
    k, deadline = 0, time.monotonic() + 60
    while not s.header[H_READY] and time.monotonic() < deadline:     # until the reader has seen enough
        k += 1
        fields[:] = k
        counts[:] = k
        s.write_status(fields, counts, str(k).encode() * 20)
        if k % 4 == 0:
            row[1:] = k
            s.put_state(row)
    s.header[H_EXITED] = 1
    s.close()
""")


def test_no_torn_reads_while_another_process_writes(shared):
    """The writer runs until the reader has seen 300 different snapshots and 300 state rows, however loaded the
    machine is (H_READY is the reader's "enough" here: no controller uses this segment)."""
    layout = shared.layout
    writer = subprocess.Popen([sys.executable, "-c", WRITER, repr(layout.__dict__), shared.name])
    rows = np.zeros((layout.state_capacity, layout.state_width))
    values, last, states = set(), 0, 0
    deadline = time.monotonic() + 60
    try:
        while (len(values) < 300 or states < 300) and time.monotonic() < deadline:
            fields, counts, text = shared.read_status()
            k = fields[0]
            assert np.all(fields == k) and np.all(counts == k), (fields, counts)
            assert k == 0 or text == str(int(k)) * 20, (k, text)
            values.add(k)
            n, last, _ = shared.states_since(last, rows)
            for r in rows[:n]:
                assert np.all(r[1:] == r[1]) and r[0] == r[1] / 4, r[:4]
            states += n
    finally:
        shared.header[shm.H_READY] = 1
        writer.wait(timeout=60)
    assert writer.returncode == 0 and shared.header[shm.H_EXITED] == 1
    assert len(values) >= 300 and states >= 300          # the reads really overlapped the writes


def test_taken_rows_come_back_in_order_and_a_reader_that_fell_behind_counts_its_losses():
    from robot_stack.control.shm import TAKEN_WIDTH, Layout, SharedControl
    shared = SharedControl(Layout(dof=7, taken_capacity=8), create=True)
    try:
        row, out = np.zeros(TAKEN_WIDTH), np.zeros((8, TAKEN_WIDTH))
        for k in range(5):
            row[1:] = (k, k - 0.01 if k % 2 else np.nan, float(k > 2), 0.1 * k)
            shared.put_taken(row)
        n, last, lost = shared.taken_since(0, out)
        assert (n, last, lost) == (5, 5, 0)
        np.testing.assert_array_equal(out[:n, 0], [1, 2, 3, 4, 5])
        np.testing.assert_array_equal(out[:n, 1], [0, 1, 2, 3, 4])
        assert np.isnan(out[0, 2]) and out[1, 2] == 0.99
        for k in range(5, 20):                      # 15 more into a ring of 8: 7 overwritten before being read
            row[1] = k
            shared.put_taken(row)
        n, last, lost = shared.taken_since(last, out)
        assert (n, last, lost) == (8, 20, 7)
        np.testing.assert_array_equal(out[:n, 1], np.arange(12, 20))
        assert shared.states_since(0, np.zeros((4, shared.layout.state_width)))[0] == 0   # a ring of its own
    finally:
        shared.close()
