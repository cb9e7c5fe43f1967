"""camera_node's start-up race: a twin camera started with the arm (a launcher starts them together) has no simulator
state until arm_node publishes one, which under load takes many seconds. That wait is a WARN; the same failure
after the grace, or after frames have flowed, stays an ERROR."""
from types import SimpleNamespace

from robot_stack.drivers.base import DriverError
from robot_stack.nodes.camera_node import STARTUP_GRACE, CameraNode


class Logger:
    def __init__(self):
        self.lines = []

    def warning(self, text, **_):
        self.lines.append(("WARN", text))

    def error(self, text, **_):
        self.lines.append(("ERROR", text))


def failed_read(first_publish, since_start):
    logger = Logger()
    camera = SimpleNamespace(_first_publish=first_publish, get_logger=lambda: logger)
    CameraNode._read_failed(camera, DriverError("twin camera wrist: no simulator state on sim/state within 2.0 s"),
                            since_start)
    return logger.lines


def test_no_state_before_the_first_frame_is_a_wait():
    [(level, text)] = failed_read(None, 2.5)
    assert level == "WARN" and "waiting for the first frame" in text and "no simulator state" in text


def test_no_first_frame_within_the_grace_is_an_error():
    assert failed_read(None, STARTUP_GRACE + 1)[0][0] == "ERROR"


def test_a_failed_read_after_frames_is_an_error():
    assert failed_read(123.0, 2.5)[0][0] == "ERROR"
