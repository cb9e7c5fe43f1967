"""Teleop devices without ROS: key mapping through a real pseudo-terminal, deadzones and scaling,
the intervention hold, button events, and the scripted expert closing the loop on the twin."""
import os
import pty
import select
import sys
import termios

import numpy as np
import pytest

from robot_stack.drivers.teleop import (DriverError, GamepadConfig, GamepadDevice, KeyboardConfig, KeyboardDevice,
                                        ScriptedConfig, ScriptedDevice, SpaceMouseConfig, SpaceMouseDevice,
                                        TeleopCommand, deadzone, make_device)
from tests.teleop.fakes import fake_pygame, fake_pyspacemouse


# --- the command and helpers ------------------------------------------------------------------
def test_command_validates_its_fields():
    assert not TeleopCommand().moving and not TeleopCommand().intervention
    with pytest.raises(ValueError, match="frame"):
        TeleopCommand(frame="world")
    with pytest.raises(ValueError, match="mode"):
        TeleopCommand(mode="position")
    with pytest.raises(ValueError, match="finite"):
        TeleopCommand(twist=[np.nan, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="gripper"):
        TeleopCommand(gripper=1.5)
    with pytest.raises(ValueError, match="unknown teleop events"):
        TeleopCommand(events=("pause",))


def test_deadzone_is_continuous_and_spans_the_range():
    assert deadzone(0.05, 0.1) == 0.0 and deadzone(-0.1, 0.1) == 0.0
    assert deadzone(1.0, 0.1) == 1.0 and deadzone(-1.0, 0.1) == -1.0
    assert deadzone(0.1 + 1e-9, 0.1) == pytest.approx(0.0, abs=1e-6)
    assert deadzone(0.55, 0.1) == pytest.approx(0.5)
    assert deadzone(3.0, 0.1) == 1.0


def test_make_device_names_the_valid_devices():
    with pytest.raises(ValueError, match="keyboard, spacemouse, gamepad, scripted"):
        make_device("joystick")
    assert make_device("spacemouse", max_linear_speed=0.3, seed=4).config.max_linear_speed == 0.3


# --- keyboard through a pseudo-terminal ---------------------------------------------------------
@pytest.fixture
def terminal():
    master, slave = pty.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


def press(device, master, keys: bytes):
    os.write(master, keys)
    ready, _, _ = select.select([device.fd], [], [], 2.0)
    assert ready, "the key bytes never reached the terminal"
    return device.read()


def test_keyboard_maps_keys_to_steps_in_cbreak_mode_and_restores_the_terminal(terminal):
    master, slave = terminal
    before = termios.tcgetattr(slave)
    device = KeyboardDevice(KeyboardConfig(fd=slave, linear_step=0.01, angular_step=0.1))
    device.connect()
    lflag = termios.tcgetattr(slave)[3]
    assert not lflag & termios.ICANON and not lflag & termios.ECHO and lflag & termios.ISIG   # Ctrl-C still works
    assert not device.read().moving                                  # nothing typed: a still command

    cmd = press(device, master, b"ww")
    assert cmd.mode == "delta" and cmd.frame == "base"
    np.testing.assert_allclose(cmd.twist, [0.02, 0, 0, 0, 0, 0])
    expected = {b"s": (0, -0.01), b"a": (1, 0.01), b"d": (1, -0.01), b"q": (2, 0.01), b"e": (2, -0.01),
                b"i": (3, 0.1), b"k": (3, -0.1), b"j": (4, 0.1), b"l": (4, -0.1), b"u": (5, 0.1), b"o": (5, -0.1)}
    for key, (axis, value) in expected.items():
        twist = np.zeros(6)
        twist[axis] = value
        np.testing.assert_allclose(press(device, master, key).twist, twist, err_msg=key.decode())
    np.testing.assert_allclose(press(device, master, b"W").twist, [0.01, 0, 0, 0, 0, 0])   # caps lock
    assert not press(device, master, b"\x1b[A\x1b[D").moving          # arrow keys: escape sequences ignored
    device.disconnect()
    assert termios.tcgetattr(slave) == before
    device.disconnect()                                               # twice is harmless


def test_keyboard_buttons_and_intervention_toggle(terminal):
    master, slave = terminal
    device = KeyboardDevice(KeyboardConfig(fd=slave))
    with device:
        cmd = press(device, master, b" ")
        assert cmd.gripper_toggle and not cmd.intervention
        assert not press(device, master, b"  ").gripper_toggle        # two presses in one read cancel
        assert press(device, master, b"\r").events == ("start",)      # enter (CR -> NL in the terminal)
        assert press(device, master, b"\n").events == ("stop",)
        assert press(device, master, b"\ry").events == ("start", "success")
        assert press(device, master, b"\rn").events == ("start", "fail")
        assert press(device, master, b"\r").events == ("start",)      # success/fail ended the episode
        assert press(device, master, b"t").intervention
        assert not press(device, master, b"w").events
        assert device.read().intervention                             # held until toggled off
        assert not press(device, master, b"t").intervention


def test_keyboard_refuses_a_non_terminal():
    r, w = os.pipe()
    try:
        with pytest.raises(DriverError, match="not a terminal"):
            KeyboardDevice(KeyboardConfig(fd=r)).connect()
    finally:
        os.close(r)
        os.close(w)


# --- SpaceMouse with a stand-in pyspacemouse ----------------------------------------------------------
def test_spacemouse_scales_axes_with_a_deadzone_and_maps_buttons(monkeypatch):
    lib = fake_pyspacemouse()
    monkeypatch.setitem(sys.modules, "pyspacemouse", lib)
    device = SpaceMouseDevice(SpaceMouseConfig(max_linear_speed=0.2, max_angular_speed=1.0, deadzone=0.1,
                                               device="SpaceMouse Compact"))
    device.connect()
    assert lib.opened and lib.open_kwargs == {"device": "SpaceMouse Compact", "DeviceNumber": 0}
    lib.set_state(x=0.05, y=1.0, z=-0.55, yaw=0.55)
    cmd = device.read()
    assert cmd.mode == "velocity" and not cmd.intervention and not cmd.gripper_toggle
    # away (+y) -> base +x at full speed; x inside the deadzone; z halfway past it; twist -> -rz
    np.testing.assert_allclose(cmd.twist, [0.2, 0.0, -0.1, 0.0, 0.0, -0.5])
    lib.set_state(x=1.0, y=0.0, z=0.0, roll=-1.0, yaw=0.0, buttons=[1, 0])
    cmd = device.read()
    np.testing.assert_allclose(cmd.twist, [0.0, -0.2, 0.0, -1.0, 0.0, 0.0])
    assert cmd.gripper_toggle                                         # left button: a press edge
    assert not device.read().gripper_toggle                           # still held: no second toggle
    lib.set_state(buttons=[0, 1])
    assert device.read().intervention and device.read().intervention  # right button: held
    lib.set_state(buttons=[0, 0])
    assert not device.read().intervention
    device.disconnect()
    assert not lib.opened


def test_spacemouse_intervenes_on_motion_and_maps_episode_buttons(monkeypatch):
    lib = fake_pyspacemouse()
    monkeypatch.setitem(sys.modules, "pyspacemouse", lib)
    with SpaceMouseDevice(SpaceMouseConfig(intervene_on_motion=True, buttons={0: "start_stop", 1: "success"})) as dev:
        lib.set_state(pitch=0.05)
        assert not dev.read().intervention                            # inside the deadzone
        lib.set_state(pitch=0.5)
        assert dev.read().intervention
        lib.set_state(pitch=0.0, buttons=[1, 0])
        assert dev.read().events == ("start",)
        lib.set_state(buttons=[0, 1])
        assert dev.read().events == ("success",)


def test_spacemouse_errors_name_the_problem(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspacemouse", None)            # not installed
    with pytest.raises(DriverError, match="pyspacemouse is not installed"):
        SpaceMouseDevice().connect()
    monkeypatch.setitem(sys.modules, "pyspacemouse", fake_pyspacemouse(present=False))
    with pytest.raises(DriverError, match="no device found"):
        SpaceMouseDevice().connect()
    with pytest.raises(DriverError, match="not connected"):
        SpaceMouseDevice().read()
    with pytest.raises(ValueError, match="unknown actions"):
        SpaceMouseConfig(buttons={0: "explode"})


# --- gamepad with a stand-in pygame --------------------------------------------------------------------
def test_gamepad_sticks_triggers_and_buttons(monkeypatch):
    pygame = fake_pygame()
    monkeypatch.setitem(sys.modules, "pygame", pygame)
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    device = GamepadDevice(GamepadConfig(max_linear_speed=0.1, max_angular_speed=1.0, deadzone=0.1))
    device.connect()
    assert os.environ["SDL_VIDEODRIVER"] == "dummy" and pygame.initialised
    cmd = device.read()
    assert not cmd.moving, "untouched triggers read 0 in SDL and must not move the arm"
    pygame.axes[:] = [0.05, -1.0, -1.0, 0.55, 0.0, -1.0]             # stick up, triggers at rest, right stick
    pygame.hats[0] = (1, 0)
    cmd = device.read()
    assert pygame.pumps == 2
    np.testing.assert_allclose(cmd.twist, [0.1, 0.0, 0.0, 0.5, 0.0, -1.0])
    pygame.axes[5] = 1.0                                              # RT fully pressed: up
    pygame.hats[0] = (0, 0)
    np.testing.assert_allclose(device.read().twist, [0.1, 0.0, 0.1, 0.5, 0.0, 0.0])
    pygame.axes[2] = 1.0                                              # and LT: they cancel
    assert device.read().twist[2] == pytest.approx(0.0)

    pygame.buttons[0] = 1                                             # A: gripper toggle on the press
    assert device.read().gripper_toggle and not device.read().gripper_toggle
    pygame.buttons[4] = 1                                             # LB: intervention while held
    assert device.read().intervention and device.read().intervention
    pygame.buttons[4] = 0
    assert not device.read().intervention
    pygame.buttons[7] = 1
    assert device.read().events == ("start",)
    pygame.buttons[7], pygame.buttons[3] = 0, 1
    assert device.read().events == ("success",)
    pygame.buttons[3], pygame.buttons[1] = 0, 1
    assert device.read().events == ("fail",)
    device.disconnect()


def test_gamepad_errors_name_the_problem(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)
    with pytest.raises(DriverError, match="pygame is not installed"):
        GamepadDevice().connect()
    monkeypatch.setitem(sys.modules, "pygame", fake_pygame(count=0))
    with pytest.raises(DriverError, match="joystick 0 requested, 0 connected"):
        GamepadDevice().connect()


# --- the scripted expert, closing the loop on the twin in-process -------------------------------------
def test_scripted_device_replays_the_reach_expert_to_success():
    from robot_stack.drivers.mujoco import MujocoArmConfig, MujocoArmDriver
    arm = MujocoArmDriver(MujocoArmConfig(robot="panda", task="reach", seed=3, realtime=False))
    arm.connect()
    sim_time = [0.0]
    device = ScriptedDevice(ScriptedConfig(task="reach", robot="panda", seed=3, expert_hz=10.0),
                            clock=lambda: sim_time[0])
    device.connect()
    assert device.read().intervention is False                       # no state yet: nothing to replay
    events, start = [], arm.read_state().ee_pos
    for _ in range(200):                                              # 0.05 s per read: 20 Hz
        device.observe([0.0, *arm.sim_state()])
        cmd = device.read()
        events += cmd.events
        assert cmd.intervention and cmd.target is not None
        for _ in range(round(0.05 * arm.spec.control_hz)):
            arm.read_state()
            arm.command_pose(cmd.target[0], cmd.target[1], cmd.gripper)
        sim_time[0] += 0.05
        if device.done:
            break
    device.observe([0.0, *arm.sim_state()])
    events += device.read().events
    assert device.success, f"reach expert failed after {device.steps} steps"
    assert events == ["start", "success"]
    goal = arm.scene.target_zone_pos()
    assert np.linalg.norm(arm.read_state().ee_pos - goal) < 0.02 < np.linalg.norm(start - goal)
