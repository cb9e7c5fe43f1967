"""teleop_node as its own process, started the way launchers start it (`--ros-args -p ...`)."""
import os
import pty
import signal
import subprocess
import sys
import termios
import threading

from tests.nodes.conftest import wait_for

COMMAND = [sys.executable, "-m", "robot_stack.nodes.teleop_node", "--ros-args", "-p", "device:=keyboard"]


def test_keyboard_without_a_terminal_is_one_clear_error():
    done = subprocess.run(COMMAND, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "error: teleop device keyboard could not connect: keyboard teleop: input is not a terminal" in done.stderr


def test_the_terminal_is_restored_when_the_node_is_stopped():
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    log = []
    proc = subprocess.Popen(COMMAND, stdin=slave, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()

        def up():
            return "teleop_node up" in "".join(log) or proc.poll() is not None
        wait_for(up, timeout=30.0, what="teleop_node to start")
        assert proc.poll() is None, "".join(log)
        assert not termios.tcgetattr(slave)[3] & termios.ICANON          # cbreak while running
        proc.send_signal(signal.SIGINT)                     # what Ctrl-C and the launcher send first
        assert proc.wait(timeout=10) == 0
        assert termios.tcgetattr(slave) == before
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)
