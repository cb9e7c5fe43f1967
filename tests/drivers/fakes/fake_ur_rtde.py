"""A fake `ur_rtde`: the modules rtde_control, rtde_receive, rtde_io and dashboard_client.

Names and signatures follow src/rtde_python_bindings.cpp. Methods bound there without
py::arg names (servoL, servoJ, waitPeriod, setTcp, setToolDigitalOut, ...) take positional
arguments only here too. Errors are RuntimeError, as pybind11 raises std::runtime_error.
Install with `for name, mod in modules().items(): monkeypatch.setitem(sys.modules, name, mod)`
after `reset()`. The simulated robot reaches each servo target by the next tick.
"""
from __future__ import annotations

import datetime
import types

from tests.drivers.fakes import CallLog

LOG = CallLog()


def _vector(values, n: int, what: str) -> list[float]:
    """pybind11 converts a sequence to std::vector<double>; the robot script wants n of them."""
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what}: incompatible function arguments: {values!r}") from exc
    if len(out) != n:
        raise RuntimeError(f"{what}: expected {n} values, got {len(out)}")
    return out


class World:
    def __init__(self):
        self.tcp = [0.4, -0.1, 0.3, 0.0, 3.1, 0.0]
        self.q = [3.14, -1.57, 1.57, -1.57, -1.57, 0.0]
        self.qd = [0.0] * 6
        self.force = [0.0] * 6
        self.t = 2000.0                   # controller clock (s since it started)
        self.dt = 0.002
        self.speed_scaling = 1.0
        self.protective_stop = False
        self.emergency_stop = False
        self.program_running = True
        self.servo_ok = True
        self.periods = 0


WORLD = World()


def reset() -> None:
    global LOG, WORLD
    LOG = CallLog()
    WORLD = World()


class RTDEReceiveInterface:
    def __init__(self, hostname: str, frequency: float = -1.0, variables=(), verbose: bool = False,
                 use_upper_range_registers: bool = False, rt_priority: int = 0):
        LOG.record("RTDEReceiveInterface", hostname, frequency)

    def disconnect(self):
        LOG.record("RTDEReceiveInterface.disconnect")

    def getActualTCPPose(self):
        LOG.record("RTDEReceiveInterface.getActualTCPPose")
        return list(WORLD.tcp)

    def getActualQ(self):
        LOG.record("RTDEReceiveInterface.getActualQ")
        return list(WORLD.q)

    def getActualQd(self):
        LOG.record("RTDEReceiveInterface.getActualQd")
        return list(WORLD.qd)

    def getActualTCPForce(self):
        LOG.record("RTDEReceiveInterface.getActualTCPForce")
        return list(WORLD.force)

    def getSpeedScaling(self):
        LOG.record("RTDEReceiveInterface.getSpeedScaling")
        return WORLD.speed_scaling

    def getTimestamp(self):
        LOG.record("RTDEReceiveInterface.getTimestamp")
        return WORLD.t

    def isProtectiveStopped(self):
        LOG.record("RTDEReceiveInterface.isProtectiveStopped")
        return WORLD.protective_stop

    def isEmergencyStopped(self):
        LOG.record("RTDEReceiveInterface.isEmergencyStopped")
        return WORLD.emergency_stop


class RTDEControlInterface:
    FLAGS_DEFAULT = 0

    def __init__(self, hostname: str, frequency: float = -1.0, flags: int = 0, ur_cap_port: int = 50002,
                 rt_priority: int = 0):
        LOG.record("RTDEControlInterface", hostname, frequency)

    def disconnect(self):
        LOG.record("RTDEControlInterface.disconnect")

    def initPeriod(self):
        LOG.record("RTDEControlInterface.initPeriod")
        WORLD.periods += 1
        WORLD.t += WORLD.dt
        return datetime.timedelta(microseconds=2000 * WORLD.periods)    # a steady_clock time point

    def waitPeriod(self, t_cycle_start, /):
        LOG.record("RTDEControlInterface.waitPeriod", t_cycle_start)
        if not isinstance(t_cycle_start, datetime.timedelta):
            raise TypeError("waitPeriod: incompatible function arguments")

    def servoL(self, pose, speed, acceleration, time, lookahead_time, gain, /):
        LOG.record("RTDEControlInterface.servoL", pose, speed, acceleration, time, lookahead_time, gain)
        pose = _vector(pose, 6, "servoL")
        if WORLD.servo_ok and WORLD.program_running:
            WORLD.tcp = pose
            return True
        return False

    def servoJ(self, q, speed, acceleration, time, lookahead_time, gain, /):
        LOG.record("RTDEControlInterface.servoJ", q, speed, acceleration, time, lookahead_time, gain)
        q = _vector(q, 6, "servoJ")
        if WORLD.servo_ok and WORLD.program_running:
            WORLD.q = q
            return True
        return False

    def servoStop(self, a: float = 10.0):
        LOG.record("RTDEControlInterface.servoStop", a)
        return True

    def setWatchdog(self, min_frequency: float = 10.0):
        LOG.record("RTDEControlInterface.setWatchdog", min_frequency)
        return True

    def kickWatchdog(self):
        LOG.record("RTDEControlInterface.kickWatchdog")
        return True

    def setTcp(self, tcp_offset, /):
        LOG.record("RTDEControlInterface.setTcp", tcp_offset)
        _vector(tcp_offset, 6, "setTcp")
        return True

    def isProgramRunning(self):
        LOG.record("RTDEControlInterface.isProgramRunning")
        return WORLD.program_running

    def reuploadScript(self):
        LOG.record("RTDEControlInterface.reuploadScript")
        WORLD.program_running = True
        return True

    def stopScript(self):
        LOG.record("RTDEControlInterface.stopScript")
        WORLD.program_running = False


class RTDEIOInterface:
    def __init__(self, hostname: str, verbose: bool = False, use_upper_range_registers: bool = False):
        LOG.record("RTDEIOInterface", hostname)

    def setToolDigitalOut(self, output_id, signal_level, /):
        LOG.record("RTDEIOInterface.setToolDigitalOut", output_id, signal_level)
        if not isinstance(output_id, int) or not isinstance(signal_level, bool):
            raise TypeError("setToolDigitalOut: incompatible function arguments")
        return True

    def disconnect(self):
        LOG.record("RTDEIOInterface.disconnect")


class DashboardClient:
    def __init__(self, hostname: str, port: int = 29999, verbose: bool = False):
        LOG.record("DashboardClient", hostname)

    def connect(self, timeout_ms: int = 2000):
        LOG.record("DashboardClient.connect")

    def unlockProtectiveStop(self):
        LOG.record("DashboardClient.unlockProtectiveStop")
        WORLD.protective_stop = False

    def disconnect(self):
        LOG.record("DashboardClient.disconnect")


def modules() -> dict[str, types.ModuleType]:
    """The four importable modules the ur_rtde wheel installs, built from the classes above."""
    out = {}
    for name, classes in (("rtde_control", [RTDEControlInterface]), ("rtde_receive", [RTDEReceiveInterface]),
                          ("rtde_io", [RTDEIOInterface]), ("dashboard_client", [DashboardClient])):
        mod = types.ModuleType(name)
        for cls in classes:
            setattr(mod, cls.__name__, cls)
        out[name] = mod
    return out
