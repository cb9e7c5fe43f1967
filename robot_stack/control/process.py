"""The controller in a process of its own, with nothing else in its interpreter.

`ControllerProcess` (the owner's side: the arm node, an example, a test) creates the shared
memory (`control/shm.py`), starts `python -m robot_stack.control.process CONFIG_JSON` and from
then on only writes commands and reads state and status: no pickle crosses, and the owner's
threads never take the controller's interpreter lock. The child builds the driver from the arm
node's configuration, raises itself to SCHED_FIFO where permitted, and runs the loop: read the
driver (which paces the period), take the queued commands, `Controller.tick`, send the set point,
publish the state and status. The safety envelope is inside `Controller.tick`, so it is the last
step before the driver whatever the owner sends.

Faults, both ways:
- the owner dies: commands stop, so the watchdog holds the pose; the child notices its owner is gone
  (its pid no longer lives), records `node_lost`, keeps holding for `orphan_hold` seconds, then stops
  the driver (a protective stop on a real arm) and exits;
- the child dies or stops ticking: `ControllerProcess.fault()` says so (exit code, or heartbeat older
  than `stall_timeout`), and the owner decides (the arm node reports it and exits non-zero).
"""
from __future__ import annotations

import gc
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from robot_stack.control import shm
from robot_stack.control.shm import Layout, SharedControl
from robot_stack.drivers.base import DriverError


@dataclass
class ProcessConfig:
    """Everything the child needs, sent as JSON on its command line."""

    node: dict                           # the arm node's configuration (driver, robot with safety, task, seed, ...)
    shm_name: str = ""
    layout: dict = field(default_factory=dict)
    owner_pid: int = 0
    priority: int = 80                   # SCHED_FIFO priority where permitted; 0: leave the scheduler alone
    publish_every: int = 10              # control periods per state row (100 Hz at 1 kHz)
    orphan_hold: float = 30.0            # s the pose is held after the owner died, before the driver is stopped
    state_fd: int = -1                   # a pipe written one byte per state row: the owner's reader blocks on it


# --- the child -----------------------------------------------------------------------------------
class ControlLoop:
    """The child's loop: one control period is `take_commands`, then a tick (or a twin reset) sent to the driver,
    then `report` (state row, status, samples)."""

    def __init__(self, cfg: ProcessConfig, stop: threading.Event):
        from omegaconf import OmegaConf

        from robot_stack.control.controller import Controller
        from robot_stack.control.safety import SafetyLimits
        from robot_stack.drivers import registry
        from robot_stack.drivers.base import SimulatedArm

        self.cfg, self.stop = cfg, stop
        self.shared = SharedControl(Layout(**cfg.layout), cfg.shm_name)
        node = OmegaConf.create(cfg.node)
        self.driver = registry.make_arm_driver(node.driver, node, clock=time.time)
        self.driver.connect()
        self.sim = isinstance(self.driver, SimulatedArm)
        limits = SafetyLimits(**OmegaConf.to_container(node.robot.safety))
        self.controller = Controller(self.driver.spec, limits, command_period=float(node.default_command_period),
                                     chunk_blend=float(node.chunk_blend))
        self.dof = self.driver.spec.dof
        self.event_index = {k: i for i, k in enumerate(shm.EVENT_KINDS)}
        self.modes = {m: float(i) for i, m in enumerate(shm.MODES)}
        self.counts = np.zeros(len(shm.EVENT_KINDS))           # buffers reused every period
        self.fields = np.zeros(shm.STATUS_FIELDS)
        self.row = np.zeros(self.shared.layout.state_width)
        self.taken_row = np.zeros(shm.TAKEN_WIDTH)
        self.fields[shm.S_FIFO] = float(_realtime(cfg.priority))
        self.fields[shm.S_SEED] = self.driver.config.seed if self.sim else -1
        self.ticks = self.resets = self.stale = self.taken = 0
        self.owner_lost_at: float | None = None
        self.last_tick: float | None = None
        self.last_event = ""

    def run(self) -> None:
        h = self.shared.header
        h[shm.H_CONTROLLER_PID] = os.getpid()
        gc.freeze()                                  # what exists now is never scanned again: shorter collections
        try:
            while not self.stop.is_set() and not self.orphaned():
                cpu = time.thread_time()             # from the read, as the arm node's thread counts it
                state = self.driver.read_state()
                reset = self.take_commands()
                try:
                    if reset and self.sim:
                        self.fields[shm.S_SEED] = self.driver.reset_next()
                        self.controller.reset()
                        self.resets += 1
                        self.last_tick = None
                    else:
                        setpoint = self.controller.tick(state)
                        setpoint.send(self.driver)
                        self.note_taken(state.stamp, setpoint.gripper)
                except DriverError as exc:
                    self.controller.fault(str(exc))
                self.report(state)
                self.shared.add_sample(1, time.thread_time() - cpu)
                if self.ticks == 1:
                    h[shm.H_READY] = 1               # ready once a status with a heartbeat is there to watch
        finally:
            try:
                self.driver.stop()
                self.driver.disconnect()
            finally:
                h[shm.H_EXITED] = 1
                self.shared.close()

    def take_commands(self) -> bool:
        """Hand every queued command to the controller; returns whether a twin reset was asked for."""
        from robot_stack.types import ActionChunk

        reset, c = False, self.controller
        while (cmd := self.shared.take_command()) is not None:
            kind, stamp, v = int(cmd[1]), float(cmd[2]), cmd[3:]
            self.taken += 1
            try:
                if kind == shm.TARGET:
                    c.set_target(v[:3].copy(), v[3:7].copy(), stamp)
                elif kind == shm.GRIPPER:
                    c.set_gripper(float(v[0]))
                elif kind == shm.CHUNK:
                    got = self.shared.read_chunk(int(v[0]))
                    if got is None:
                        self.stale += 1                  # a newer chunk replaced it before this period
                        continue
                    steps, _ = got
                    c.play_chunk(ActionChunk(steps[:, 0].copy(), steps[:, 1:4].copy(), steps[:, 4:8].copy(),
                                             steps[:, 8].copy()))
                elif kind == shm.STOP:
                    c.stop()
                elif kind == shm.RECOVER:
                    self.driver.recover()
                    c.recover()
                elif kind == shm.HOME:
                    c.home()
                elif kind == shm.ENABLE:
                    c.enable(bool(v[0]))
                elif kind == shm.BLEND:
                    c.chunk_blend = float(v[0])
                elif kind == shm.RESET:
                    reset = True
                elif kind == shm.END_STREAM:
                    c.end_stream()
                elif kind == shm.SHUTDOWN:
                    self.stop.set()
            except ValueError as exc:                   # SafetyViolation included: refused here too, whoever sent it
                c.safety.events.add("rejected", f"in the controller: {exc}")
            except DriverError as exc:
                c.fault(str(exc))
        return reset

    def note_taken(self, tick_stamp: float, gripper: float) -> None:
        """This tick's `arm/commands_taken` row, if it took a command (`Controller.took_command`), as the arm node's
        thread records it."""
        if not self.controller.took_command(gripper):
            return
        stamp = self.controller.taken_stamp
        r = self.taken_row
        r[1], r[2], r[3] = tick_stamp, np.nan if stamp is None else stamp, gripper
        r[4] = float(self.driver.sim_state()[0]) if self.sim else np.nan
        self.shared.put_taken(r)
        self._announce()

    def _announce(self) -> None:
        """A byte on the pipe the owner's publisher blocks on: a state or taken row is there."""
        if self.cfg.state_fd >= 0:
            try:
                os.write(self.cfg.state_fd, b"s")
            except (BlockingIOError, BrokenPipeError):     # a reader that fell behind, or none: rows stay
                pass

    def orphaned(self) -> bool:
        """The owner is gone (checked every 100 periods): hold, and after `orphan_hold` seconds, stop."""
        if self.owner_lost_at is None:
            if self.ticks % 100 == 0 and not shm.pid_alive(self.cfg.owner_pid):
                self.owner_lost_at = time.monotonic()
                self.controller.safety.events.add("node_lost", f"owner {self.cfg.owner_pid} is gone; holding pose")
            return False
        return time.monotonic() - self.owner_lost_at > self.cfg.orphan_hold

    def report(self, state) -> None:
        """The period's samples, a state row every `publish_every` periods, and the status (the heartbeat)."""
        c, f, shared = self.controller, self.fields, self.shared
        now = time.monotonic()
        self.ticks += 1
        if self.last_tick is not None:
            shared.add_sample(0, now - self.last_tick)
        self.last_tick = now
        if c.taken_latency is not None:
            shared.add_sample(2, c.taken_latency)
        if self.ticks % self.cfg.publish_every == 0:
            _fill_state(self.row, state, c, self.dof, self.modes, self.driver.sim_state() if self.sim else None)
            shared.put_state(self.row)
            self._announce()
        events, text = c.safety.events, None
        if events.last != self.last_event:
            self.last_event = events.last
            text = self.last_event.encode("utf-8", "replace")
            f[shm.S_LAST_EVENT_AT] = now
        if text is not None or self.ticks % 10 == 0:
            self.counts[:] = 0
            for kind, n in list(events.counts.items()):
                self.counts[self.event_index.get(kind, len(self.counts) - 1)] += n
        f[shm.S_MODE] = self.modes.get(c.mode, 0.0)
        f[shm.S_ESTOP], f[shm.S_ENABLED], f[shm.S_COMMAND_AGE] = c.estop, c.enabled, c.command_age
        f[shm.S_TICKS], f[shm.S_MISSED] = c.stats.ticks, c.stats.missed
        f[shm.S_HEARTBEAT] = now
        f[shm.S_STALL_SINCE] = c.stall_since if c.stall_since is not None else -1.0
        f[shm.S_STALLS] += c.take_stalls()
        f[shm.S_MAX_EXCURSION] = c.safety.max_excursion
        f[shm.S_CHUNK_ACTIVE] = c.chunk is not None
        f[shm.S_RESETS], f[shm.S_COMMANDS_TAKEN], f[shm.S_STALE_COMMANDS] = self.resets, self.taken, self.stale
        f[shm.S_BLEND] = c.chunk_blend
        shared.write_status(f, self.counts, text)


def run(cfg: ProcessConfig) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Ctrl-C (or `ros2 launch`'s SIGINT to the process group) reaches this process with its owner: the owner decides
    # when the arm stops being controlled (SHUTDOWN in close()), and a dead owner is noticed anyway (`orphaned`).
    # Stopping here first made the node report its controller gone and exit 1 in every clean shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ControlLoop(cfg, stop).run()
    return 0


def _fill_state(row, state, controller, dof, modes, sim) -> None:
    """One state row in place: seq (set by put_state), stamp, tick time, q, dq, tau, TCP, wrench, width, set point."""
    row[1], row[2] = state.stamp, time.monotonic()
    i = 3
    for values in (state.q, state.dq, state.tau):
        row[i:i + dof] = values
        i += dof
    row[i:i + 3], row[i + 3:i + 7], row[i + 7:i + 13] = state.ee_pos, state.ee_quat, state.wrench
    row[i + 13] = state.gripper_width
    if controller.setpoint is not None:
        row[i + 14:i + 17], row[i + 17:i + 21] = controller.setpoint
    row[i + 21] = modes.get(controller.mode, 0.0)
    if sim is not None:
        row[i + 22:] = sim


def _realtime(priority: int) -> bool:
    """SCHED_FIFO for the whole process where permitted, and a short GIL switch interval."""
    if priority <= 0:
        return False
    sys.setswitchinterval(2e-4)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, AttributeError, OSError) as exc:
        print(f"controller: no real-time priority ({exc}); expect more jitter", file=sys.stderr, flush=True)
        return False
    return True


# --- the owner's side ------------------------------------------------------------------------------
class ControllerError(RuntimeError):
    """The controller process did not start, died or stopped ticking."""


class ControllerProcess:
    """Start the controller process for an arm node configuration and talk to it through shared memory.

    Command methods may be called from several threads (they are serialised here: the command ring has one
    writer); state and status reads are lock-free copies."""

    def __init__(self, node_cfg: dict, *, priority: int = 80, publish_every: int = 10, orphan_hold: float = 30.0,
                 stall_timeout: float = 0.5, start_timeout: float = 60.0, stderr=None):
        from robot_stack.drivers import registry
        from robot_stack.drivers.base import SimulatedArm
        from robot_stack.robots.spec import get_robot

        self.spec = get_robot(node_cfg["robot"]["name"])
        self.simulated = issubclass(registry.arm_driver(node_cfg["driver"]).driver_cls, SimulatedArm)
        sim = 0
        if self.simulated:
            from robot_stack.sim.scene import Scene
            sim = len(Scene(self.spec).sim_state())
        self.layout = Layout(dof=self.spec.dof, sim=sim, chunk_capacity=int(node_cfg["robot"]["safety"].get(
            "max_chunk_steps", 500)))
        self.shared = SharedControl(self.layout, create=True)
        self.stall_timeout = stall_timeout
        self._lock = threading.Lock()
        # State rows are announced through a pipe, so a reader blocks until one is written instead of polling.
        self._state_read, state_write = os.pipe()
        os.set_blocking(state_write, False)
        cfg = ProcessConfig(node=node_cfg, shm_name=self.shared.name, layout=asdict(self.layout),
                            owner_pid=os.getpid(), priority=priority, publish_every=publish_every,
                            orphan_hold=orphan_hold, state_fd=state_write)
        self.proc = subprocess.Popen([sys.executable, "-m", "robot_stack.control.process", json.dumps(asdict(cfg))],
                                     stderr=stderr, pass_fds=(state_write,))
        os.close(state_write)
        self.pid = self.proc.pid
        deadline = time.monotonic() + start_timeout
        while not self.shared.header[shm.H_READY]:
            if self.proc.poll() is not None:
                self.shared.close()
                raise ControllerError(f"the controller process exited with code {self.proc.returncode} at start-up")
            if time.monotonic() > deadline:
                self.close()
                raise ControllerError(f"the controller process was not ready within {start_timeout} s")
            time.sleep(0.005)
        self._reset_seen = 0

    # commands
    def _put(self, kind: int, stamp: float = 0.0, values=()) -> int:
        with self._lock:
            return self.shared.put_command(kind, stamp, values)

    def set_target(self, pos, quat, stamp: float) -> None:
        self._put(shm.TARGET, stamp, (*pos, *quat))

    def set_gripper(self, g: float) -> None:
        self._put(shm.GRIPPER, 0.0, (g,))

    def play_chunk(self, chunk, stamp: float = 0.0) -> None:
        """A checked (and blended) chunk: into the slot, then its CHUNK command."""
        with self._lock:
            seq = self.shared.put_chunk(chunk.times, chunk.positions, chunk.quats, chunk.gripper, stamp)
            self.shared.put_command(shm.CHUNK, stamp, (seq,))

    def stop(self) -> None:
        self._put(shm.STOP)

    def end_stream(self) -> None:
        self._put(shm.END_STREAM)

    def recover(self) -> None:
        self._put(shm.RECOVER)

    def home(self) -> None:
        self._put(shm.HOME)

    def enable(self, enabled: bool) -> None:
        self._put(shm.ENABLE, 0.0, (float(enabled),))

    def set_chunk_blend(self, blend: float) -> None:
        self._put(shm.BLEND, 0.0, (blend,))

    def reset(self, timeout: float = 5.0) -> int:
        """Start the twin's next episode between two ticks; returns its seed."""
        before = self.status()[0][shm.S_RESETS]
        self._put(shm.RESET)
        deadline = time.monotonic() + timeout
        while True:
            fields = self.status()[0]
            if fields[shm.S_RESETS] > before:
                return int(fields[shm.S_SEED])
            if time.monotonic() > deadline:
                raise ControllerError(f"the controller did not reset within {timeout} s")
            time.sleep(0.002)

    # state and status
    def status(self) -> tuple[np.ndarray, np.ndarray, str]:
        return self.shared.read_status()

    def states_since(self, last: int, out: np.ndarray) -> tuple[int, int, int]:
        return self.shared.states_since(last, out)

    def taken_since(self, last: int, out: np.ndarray) -> tuple[int, int, int]:
        return self.shared.taken_since(last, out)

    def wait_for_state(self, timeout: float) -> bool:
        """Block (the interpreter lock released) until the controller announces a state or taken row, at most
        `timeout` s; returns whether one was announced."""
        ready, _, _ = select.select([self._state_read], [], [], timeout)
        if ready:
            try:
                return bool(os.read(self._state_read, 4096))
            except OSError:
                return False
        return False

    def new_state_buffer(self, rows: int | None = None) -> np.ndarray:
        return np.zeros((rows or self.layout.state_capacity, self.layout.state_width))

    def new_taken_buffer(self) -> np.ndarray:
        return np.zeros((self.layout.taken_capacity, shm.TAKEN_WIDTH))

    def fault(self) -> str | None:
        """Why the controller is not running (exited, or no tick for `stall_timeout`), or None while it is."""
        code = self.proc.poll()
        if code is not None:
            return f"the controller process exited (code {code})"
        age = time.monotonic() - self.status()[0][shm.S_HEARTBEAT]     # written before the child is ready
        if age > self.stall_timeout:
            return f"the controller process has not ticked for {age:.3f} s"
        return None

    def close(self, timeout: float = 5.0) -> None:
        """Ask the controller to stop (it stops the driver), wait, kill it if it does not, free the memory."""
        if self.proc.poll() is None:
            try:
                self._put(shm.SHUTDOWN)
            except shm.CommandQueueFull:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self.shared.close()
        try:
            os.close(self._state_read)
        except OSError:
            pass


def state_fields(layout: Layout, row: np.ndarray) -> dict:
    """A state row's named parts (views into `row`)."""
    d, i = layout.dof, 3
    out = {"seq": row[0], "stamp": row[1], "tick_time": row[2], "q": row[i:i + d], "dq": row[i + d:i + 2 * d],
           "tau": row[i + 2 * d:i + 3 * d]}
    i += 3 * d
    out.update(ee_pos=row[i:i + 3], ee_quat=row[i + 3:i + 7], wrench=row[i + 7:i + 13], gripper_width=row[i + 13],
               setpoint_pos=row[i + 14:i + 17], setpoint_quat=row[i + 17:i + 21], mode=shm.MODES[int(row[i + 21])],
               sim=row[i + 22:])
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run(ProcessConfig(**json.loads(argv[0])))


if __name__ == "__main__":
    raise SystemExit(main())


class _RemoteEvents:
    """The safety events as `SafetyEvents` shows them: the controller's counts plus the owner's own (rejections)."""

    def __init__(self, remote: "RemoteController"):
        self._remote = remote
        self.local: dict[str, int] = {}
        self._local_last = ""
        self._local_at = -np.inf

    def add(self, kind: str, detail: str = "") -> None:
        self.local[kind] = self.local.get(kind, 0) + 1
        self._local_last = f"{kind}: {detail}" if detail else kind
        self._local_at = time.monotonic()

    @property
    def counts(self) -> dict[str, int]:
        _, counts, _ = self._remote.process.status()
        out = {k: int(n) for k, n in zip(shm.EVENT_KINDS, counts) if n}
        for k, n in list(self.local.items()):
            out[k] = out.get(k, 0) + n
        return out

    @property
    def last(self) -> str:
        """The newer of the owner's last event and the controller's (both on the machine's monotonic clock)."""
        fields, _, text = self._remote.process.status()
        return text if fields[shm.S_LAST_EVENT_AT] > self._local_at else self._local_last


class _RemoteSafety:
    def __init__(self, remote: "RemoteController", envelope):
        self.events = _RemoteEvents(remote)
        self._remote = remote
        self.envelope = envelope          # the owner's copy, for admission checks (same limits as the controller's)
        envelope.events = self.events     # what it counts (clips on admission) shows beside the controller's counts
        self.limits = envelope.limits

    @property
    def max_excursion(self) -> float:
        return float(self._remote.status()[0][shm.S_MAX_EXCURSION])


class _RemoteStats:
    def __init__(self, remote: "RemoteController", nominal: float):
        self._remote, self.nominal = remote, nominal

    @property
    def ticks(self) -> int:
        return int(self._remote.status()[0][shm.S_TICKS])

    def summary(self) -> dict[str, float]:
        fields = self._remote.status()[0]
        p = self._remote.process.shared.sample_values(0)
        if not len(p):
            return {"rate_hz": 0.0, "period_error_pct": 0.0, "jitter_p99_ms": 0.0}
        return {"rate_hz": 1.0 / p.mean(), "period_error_pct": 100 * abs(p.mean() - self.nominal) / self.nominal,
                "jitter_p99_ms": 1000 * float(np.percentile(np.abs(p - self.nominal), 99)),
                "ticks": int(fields[shm.S_TICKS]), "missed_ticks": int(fields[shm.S_MISSED])}


class _SharedSamples:
    """One of the controller's sample rings, read as `RecentSamples` is."""

    def __init__(self, remote: "RemoteController", ring: int):
        self._remote, self._ring = remote, ring

    def __len__(self) -> int:
        return min(int(self._remote.process.shared.sample_counts[self._ring]), self._remote.process.layout.samples)

    def values(self) -> np.ndarray:
        return self._remote.process.shared.sample_values(self._ring)

    def percentiles(self, qs, scale: float = 1.0) -> list[float]:
        v = self.values()
        return [scale * float(x) for x in np.percentile(v, qs)] if len(v) else []


class RemoteController:
    """The controller process behind the interface the arm node uses of an in-process `Controller`: commands are
    admitted here (so a refusal is answered at once, with its reason) and sent; state comes from shared memory.
    The controller checks every command again: the envelope does not depend on this side."""

    def __init__(self, node_cfg: dict, *, priority: int = 80, publish_every: int = 10, clock=time.time,
                 stall_timeout: float = 0.5):
        from robot_stack.control.loop_stats import RecentSamples
        from robot_stack.control.safety import SafetyEnvelope, SafetyLimits

        self.process = ControllerProcess(node_cfg, priority=priority, publish_every=publish_every,
                                         stall_timeout=stall_timeout)
        self.spec = self.process.spec
        self.limits = SafetyLimits(**node_cfg["robot"]["safety"])
        self.dt = 1.0 / self.spec.control_hz
        self.clock = clock
        self.safety = _RemoteSafety(self, SafetyEnvelope(self.limits, self.spec.q_min, self.spec.q_max))
        self.stats = _RemoteStats(self, self.dt)
        self.command_latency = _SharedSamples(self, 2)
        self.tick_cpu = _SharedSamples(self, 1)
        self.chunk_latency = RecentSamples(20000)     # measured here, where chunks arrive
        self._chunk = None
        self._chunk_blend = float(node_cfg.get("chunk_blend", 0.0))
        self._stalls_reported = 0
        self._status_cache: tuple[float, tuple] | None = None

    def status(self):
        """The controller's status, read at most every millisecond (diagnostics read many fields at once)."""
        now = time.monotonic()
        if self._status_cache is None or now - self._status_cache[0] > 1e-3:
            self._status_cache = (now, self.process.status())
        return self._status_cache[1]

    # the state the arm node reports
    @property
    def mode(self) -> str:
        return shm.MODES[int(self.status()[0][shm.S_MODE])]

    @property
    def estop(self) -> bool:
        return bool(self.status()[0][shm.S_ESTOP])

    @property
    def enabled(self) -> bool:
        return bool(self.status()[0][shm.S_ENABLED])

    @property
    def command_age(self) -> float:
        return float(self.status()[0][shm.S_COMMAND_AGE])

    @property
    def stall_since(self) -> float | None:
        since = float(self.status()[0][shm.S_STALL_SINCE])
        return None if since < 0 else since

    def take_stalls(self) -> int:
        total = int(self.status()[0][shm.S_STALLS])
        n, self._stalls_reported = total - self._stalls_reported, total
        return n

    @property
    def chunk(self):
        """The chunk last sent, while the controller still plays it."""
        return self._chunk if self.status()[0][shm.S_CHUNK_ACTIVE] else None

    @property
    def chunk_blend(self) -> float:
        return self._chunk_blend

    @chunk_blend.setter
    def chunk_blend(self, value: float) -> None:
        from robot_stack.control.controller import checked_blend

        self._chunk_blend = checked_blend(value)
        self.process.set_chunk_blend(self._chunk_blend)

    # commands
    def set_target(self, pos, quat, stamp: float) -> None:
        from robot_stack.control.controller import check_target

        pos, quat = check_target(self.safety.envelope, pos, quat, stamp, self.clock())
        self.process.set_target(pos, quat, stamp)

    def set_chunk(self, chunk, stamp: float | None = None) -> None:
        from robot_stack.control.controller import prepare_chunk

        chunk = prepare_chunk(chunk, self.safety.envelope, self.clock(), self.limits.chunk_horizon, self.chunk,
                              self._chunk_blend)
        if stamp is not None:
            self.chunk_latency.append(self.clock() - stamp)
        self._chunk = chunk
        self.process.play_chunk(chunk, stamp or 0.0)

    def set_gripper(self, g: float) -> None:
        from robot_stack.control.safety import SafetyViolation

        g = float(g)
        if not np.isfinite(g) or not 0.0 <= g <= 1.0:
            raise SafetyViolation(f"{g} is not in [0, 1]")
        self.process.set_gripper(g)

    def stop(self) -> None:
        self.process.stop()
        self._wait_for(lambda f: f[shm.S_ESTOP] == 1.0)

    def end_stream(self) -> None:
        self._chunk = None
        self.process.end_stream()

    def recover(self) -> None:
        """Recovers the driver too (it lives in the controller process)."""
        self.process.recover()
        self._wait_for(lambda f: f[shm.S_ESTOP] == 0.0)

    def home(self) -> tuple[bool, str]:
        if self.estop:
            return False, "e-stop latched"
        self.process.home()
        return True, "moving to home"

    def enable(self, enabled: bool) -> None:
        self.process.enable(enabled)
        self._wait_for(lambda f: f[shm.S_ENABLED] == float(enabled))

    def reset(self) -> int:
        self._chunk = None
        return self.process.reset()

    def _wait_for(self, done, timeout: float = 1.0) -> None:
        """Until the controller shows the command taken (a service reply then describes the arm's state)."""
        deadline = time.monotonic() + timeout
        while not done(self.process.status()[0]) and time.monotonic() < deadline:
            time.sleep(0.001)
        self._status_cache = None

    def fault(self) -> str | None:
        return self.process.fault()

    def close(self) -> None:
        self.process.close()
