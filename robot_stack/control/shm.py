"""Fixed-layout shared memory between the arm node and the controller process: no pickle, no per-tick allocation.

One `multiprocessing.shared_memory` segment holds numpy views at fixed offsets (`Layout`):

- **commands**, node -> controller: a single-producer single-consumer ring of fixed rows
  `[seq, kind, stamp, values...]`. The writer fills a row, then its sequence number, then
  advances `cmd_write`; the reader takes rows while `cmd_read < cmd_write` and checks each row's
  sequence number, so a row is never read before it is whole and never twice. A full ring refuses
  the command (`CommandQueueFull`) rather than overwrite one not yet taken.
- **chunk**, node -> controller: one sequence-locked slot of up to `max_chunk_steps` steps. The
  `CHUNK` command names the slot's sequence number; a command whose chunk was already replaced by
  a newer one is stale and skipped.
- **states**, controller -> node: a ring of state rows (measured state, set point, twin state),
  each with its sequence number written last; a reader that fell a whole ring behind sees the
  sequence numbers jump and counts the rows it lost.
- **taken**, controller -> node: a ring like the states' of one row per tick that took a target or saw a new
  gripper command (`arm/commands_taken`, which a replay hands commands over by).
- **status**, controller -> node: one sequence-locked block (mode, e-stop, statistics, safety event
  counts, last event text, the controller's heartbeat) and sample rings for percentiles.

Sequence locks: the writer makes the sequence odd, writes, makes it even again; a reader copies
the block and retries if the sequence was odd or changed meanwhile (a torn read). Stores are
plain numpy stores, ordered as written on x86-64 (TSO); a weakly ordered CPU would need fences.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

MAGIC = 0x52534354524C3031          # "RSCTRL01"

# command kinds
TARGET, GRIPPER, STOP, RECOVER, HOME, ENABLE, RESET, CHUNK, BLEND, SHUTDOWN, END_STREAM = range(1, 12)
CMD_WIDTH = 12                      # seq, kind, stamp, 9 values (pos 3, quat 4, spare 2)

MODES = ("hold", "target", "chunk", "home", "estop", "disabled", "unwind")
EVENT_KINDS = ("rejected", "workspace_clip", "gripper_clip", "tcp_outside_box", "contact_force_limit",
               "linear_speed_limit", "angular_speed_limit", "joint_margin_hold", "joint_margin_clip",
               "watchdog_hold", "command_stall", "estop", "driver_error", "node_lost", "unwind", "unwind_failed",
               "other")
EVENT_TEXT = 240                    # bytes of the last event's text

# header slots (int64)
H_MAGIC, H_DOF, H_SIM, H_CMD_CAP, H_STATE_CAP, H_CHUNK_CAP, H_SAMPLES, H_CMD_WRITE, H_CMD_READ, H_STATE_WRITE, \
    H_CHUNK_SEQ, H_STATUS_SEQ, H_CONTROLLER_PID, H_NODE_PID, H_READY, H_EXITED, H_TAKEN_CAP, H_TAKEN_WRITE = range(18)
HEADER = 18
TAKEN_WIDTH = 5                     # seq, tick stamp, target stamp (NaN: none), gripper, the twin's physics time

# status slots (float64), after the sequence number
S_MODE, S_ESTOP, S_ENABLED, S_COMMAND_AGE, S_TICKS, S_MISSED, S_HEARTBEAT, S_STALL_SINCE, S_STALLS, \
    S_MAX_EXCURSION, S_CHUNK_ACTIVE, S_RESETS, S_SEED, S_COMMANDS_TAKEN, S_STALE_COMMANDS, S_FIFO, \
    S_LAST_EVENT_AT, S_BLEND = range(18)
STATUS_FIELDS = 18
SAMPLE_RINGS = ("period", "tick_cpu", "command_latency")


class CommandQueueFull(RuntimeError):
    """The controller has not taken the commands already queued (it stopped ticking?)."""


@dataclass(frozen=True)
class Layout:
    """Sizes that fix every offset; both sides build the same views from them."""

    dof: int
    sim: int = 0                     # length of the twin's sim/state vector (0: a real arm)
    cmd_capacity: int = 64
    state_capacity: int = 256
    chunk_capacity: int = 500
    samples: int = 5000
    taken_capacity: int = 256

    @property
    def state_width(self) -> int:
        # seq, stamp, tick time, q, dq, tau, ee pos, ee quat, wrench, gripper width, set point pos + quat, mode, sim
        return 3 + 3 * self.dof + 3 + 4 + 6 + 1 + 7 + 1 + self.sim

    def parts(self) -> list[tuple[str, type, tuple[int, ...]]]:
        return [("header", np.int64, (HEADER,)),
                ("commands", np.float64, (self.cmd_capacity, CMD_WIDTH)),
                ("chunk", np.float64, (self.chunk_capacity, 9)),          # time, pos 3, quat 4, gripper
                ("chunk_meta", np.float64, (2,)),                         # steps, capture stamp
                ("states", np.float64, (self.state_capacity, self.state_width)),
                ("taken", np.float64, (self.taken_capacity, TAKEN_WIDTH)),
                ("status", np.float64, (1 + STATUS_FIELDS + len(EVENT_KINDS),)),
                ("event_text", np.uint8, (EVENT_TEXT,)),
                ("samples", np.float64, (len(SAMPLE_RINGS), self.samples)),
                ("sample_counts", np.int64, (len(SAMPLE_RINGS),))]

    def size(self) -> int:
        return sum(_aligned(np.dtype(t).itemsize * int(np.prod(s))) for _, t, s in self.parts())


def _aligned(n: int) -> int:
    return (n + 63) // 64 * 64


class SharedControl:
    """The views over one segment. `create=True` on the node's side (it owns and unlinks the segment)."""

    def __init__(self, layout: Layout, name: str | None = None, create: bool = False):
        self.layout = layout
        self.owner = create
        self.shm = shared_memory.SharedMemory(name=name, create=create, size=layout.size() if create else 0)
        if not create:
            _untrack(self.shm)       # the creator unlinks it; the resource tracker must not do it at our exit
        offset = 0
        for part, dtype, shape in layout.parts():
            n = int(np.prod(shape))
            setattr(self, part, np.ndarray(shape, dtype=dtype, buffer=self.shm.buf, offset=offset))
            offset += _aligned(np.dtype(dtype).itemsize * n)
        h = self.header
        if create:
            for part, _, _ in layout.parts():
                getattr(self, part)[...] = 0
            h[H_DOF], h[H_SIM], h[H_CMD_CAP], h[H_STATE_CAP] = layout.dof, layout.sim, layout.cmd_capacity, \
                layout.state_capacity
            h[H_CHUNK_CAP], h[H_SAMPLES], h[H_TAKEN_CAP] = layout.chunk_capacity, layout.samples, layout.taken_capacity
            h[H_MAGIC] = MAGIC
        elif h[H_MAGIC] != MAGIC or h[H_DOF] != layout.dof or h[H_SIM] != layout.sim:
            raise ValueError(f"shared memory {name!r} does not have the expected layout {layout}")
        self._cmd_row = np.zeros(CMD_WIDTH)            # the reader's copy of one command row
        self._status_copy = np.zeros_like(self.status)
        self._state_row = np.zeros(layout.state_width)
        self._chunk_copy = np.zeros_like(self.chunk)

    @classmethod
    def attach(cls, name: str) -> "SharedControl":
        """Attach to an existing segment, its layout read from its header (an observer, a test)."""
        seg = shared_memory.SharedMemory(name=name)
        _untrack(seg)
        try:
            h = np.ndarray((HEADER,), dtype=np.int64, buffer=seg.buf)
            layout = Layout(dof=int(h[H_DOF]), sim=int(h[H_SIM]), cmd_capacity=int(h[H_CMD_CAP]),
                            state_capacity=int(h[H_STATE_CAP]), chunk_capacity=int(h[H_CHUNK_CAP]),
                            samples=int(h[H_SAMPLES]), taken_capacity=int(h[H_TAKEN_CAP]))
            del h
        finally:
            seg.close()
        return cls(layout, name)

    @property
    def name(self) -> str:
        return self.shm.name

    def close(self) -> None:
        for part, _, _ in self.layout.parts():        # views pin the buffer; drop them first
            setattr(self, part, None)
        self.shm.close()
        if self.owner:
            try:
                self.shm.unlink()
            except FileNotFoundError:
                pass

    # --- commands: node writes, controller reads -------------------------------------------------
    def put_command(self, kind: int, stamp: float = 0.0, values=()) -> int:
        """Queue a command (one writer thread at a time: the caller serialises); returns its sequence number."""
        h = self.header
        write = int(h[H_CMD_WRITE])
        if write - int(h[H_CMD_READ]) >= self.layout.cmd_capacity:
            raise CommandQueueFull(f"{self.layout.cmd_capacity} commands queued and not taken")
        row = self.commands[write % self.layout.cmd_capacity]
        row[0] = -1.0                                  # being written
        row[1], row[2] = kind, stamp
        n = len(values)
        row[3:3 + n] = values
        row[3 + n:] = 0.0
        row[0] = write + 1                             # the row is whole
        h[H_CMD_WRITE] = write + 1
        return write + 1

    def take_command(self) -> np.ndarray | None:
        """The next command row (a reused buffer: copy what you keep), or None when there is none."""
        h = self.header
        read = int(h[H_CMD_READ])
        if read >= int(h[H_CMD_WRITE]):
            return None
        row = self._cmd_row
        row[:] = self.commands[read % self.layout.cmd_capacity]
        if int(row[0]) != read + 1:
            raise RuntimeError(f"command ring out of order: row {read % self.layout.cmd_capacity} holds "
                               f"sequence {int(row[0])}, expected {read + 1}")
        h[H_CMD_READ] = read + 1
        return row

    # --- the chunk slot ----------------------------------------------------------------------------
    def put_chunk(self, times, positions, quats, gripper, stamp: float) -> int:
        """Write a checked chunk into the slot; returns the slot's sequence number for the CHUNK command."""
        n = len(times)
        if n > self.layout.chunk_capacity:
            raise ValueError(f"chunk of {n} steps, over the slot's {self.layout.chunk_capacity}")
        h = self.header
        seq = int(h[H_CHUNK_SEQ])
        h[H_CHUNK_SEQ] = seq + 1                       # odd: being written
        c = self.chunk
        c[:n, 0] = times
        c[:n, 1:4] = positions
        c[:n, 4:8] = quats
        c[:n, 8] = gripper
        self.chunk_meta[0], self.chunk_meta[1] = n, stamp
        h[H_CHUNK_SEQ] = seq + 2
        return seq + 2

    def read_chunk(self, seq: int, tries: int = 100) -> tuple[np.ndarray, float] | None:
        """The slot's steps (a reused buffer, rows [:n]) and capture stamp if it still holds chunk `seq`, else None
        (a newer chunk replaced it: this one is stale)."""
        h = self.header
        for _ in range(tries):
            before = int(h[H_CHUNK_SEQ])
            if before != seq:                          # a newer chunk is (being) written: this one is stale
                return None
            n = int(self.chunk_meta[0])
            stamp = float(self.chunk_meta[1])
            self._chunk_copy[:n] = self.chunk[:n]
            if int(h[H_CHUNK_SEQ]) == before:
                return self._chunk_copy[:n], stamp
        return None

    # --- states and taken commands: controller writes, node reads -----------------------------------
    def put_state(self, row: np.ndarray) -> int:
        """Append a state row (its [0] is overwritten with the sequence number); returns the sequence number."""
        return self._put_row(self.states, H_STATE_WRITE, row)

    def states_since(self, last: int, out: np.ndarray) -> tuple[int, int, int]:
        """Copy the rows after sequence `last` into `out` (oldest first, at most len(out)); returns (rows copied,
        the sequence to pass next time, rows lost: overwritten before they were read)."""
        return self._rows_since(self.states, H_STATE_WRITE, last, out)

    def put_taken(self, row: np.ndarray) -> int:
        """Append a taken-command row ([seq, tick stamp, target stamp or NaN, gripper, physics time])."""
        return self._put_row(self.taken, H_TAKEN_WRITE, row)

    def taken_since(self, last: int, out: np.ndarray) -> tuple[int, int, int]:
        """As `states_since`, for the taken-command rows."""
        return self._rows_since(self.taken, H_TAKEN_WRITE, last, out)

    def _put_row(self, ring: np.ndarray, write_slot: int, row: np.ndarray) -> int:
        h = self.header
        seq = int(h[write_slot]) + 1
        dst = ring[seq % len(ring)]
        dst[0] = -1.0
        dst[1:] = row[1:]
        dst[0] = seq
        h[write_slot] = seq
        return seq

    def _rows_since(self, ring: np.ndarray, write_slot: int, last: int, out: np.ndarray) -> tuple[int, int, int]:
        cap = len(ring)
        newest = int(self.header[write_slot])
        first = max(last + 1, newest - cap + 1)
        end = min(newest, first + len(out) - 1)
        lost, n = first - (last + 1), 0
        for seq in range(first, end + 1):
            src = ring[seq % cap]
            before = int(src[0])
            out[n] = src
            if before != seq or int(src[0]) != seq:     # overwritten before or while it was copied
                lost += 1
                continue
            n += 1
        return n, max(end, last), lost

    # --- status: controller writes, node reads -----------------------------------------------------
    def write_status(self, fields: np.ndarray, event_counts: np.ndarray, event_text: bytes | None) -> None:
        h = self.header
        seq = int(h[H_STATUS_SEQ])
        h[H_STATUS_SEQ] = seq + 1
        s = self.status
        s[1:1 + STATUS_FIELDS] = fields
        s[1 + STATUS_FIELDS:] = event_counts
        if event_text is not None:
            t = event_text[:EVENT_TEXT - 1]
            self.event_text[:len(t)] = np.frombuffer(t, dtype=np.uint8)
            self.event_text[len(t)] = 0
        h[H_STATUS_SEQ] = seq + 2

    def read_status(self, tries: int = 1000) -> tuple[np.ndarray, np.ndarray, str]:
        """(fields, event counts, last event text): one consistent snapshot (copies)."""
        h = self.header
        for _ in range(tries):
            before = int(h[H_STATUS_SEQ])
            if before % 2:
                time.sleep(0)
                continue
            copy = self.status.copy()
            text = self.event_text.tobytes()
            if int(h[H_STATUS_SEQ]) == before:
                return copy[1:1 + STATUS_FIELDS], copy[1 + STATUS_FIELDS:], text.split(b"\0", 1)[0].decode(
                    "utf-8", "replace")
        raise RuntimeError("no consistent status snapshot: the controller writes it continuously")

    def add_sample(self, ring: int, value: float) -> None:
        n = int(self.sample_counts[ring])
        self.samples[ring, n % self.layout.samples] = value
        self.sample_counts[ring] = n + 1

    def sample_values(self, ring: int) -> np.ndarray:
        n = min(int(self.sample_counts[ring]), self.layout.samples)
        return self.samples[ring, :n].copy()


def _untrack(shm: shared_memory.SharedMemory) -> None:
    """Python's resource tracker unlinks a segment an attaching process opened when that process exits (before
    3.13); only the creator should."""
    try:
        from multiprocessing import resource_tracker
        resource_tracker.unregister(shm._name, "shared_memory")     # noqa: SLF001 (the documented workaround)
    except Exception:       # pragma: no cover - a Python without the tracker
        pass


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
