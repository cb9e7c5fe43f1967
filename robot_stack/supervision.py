"""Process supervision: a graph dies with the process that started it, however that process dies.

A CLI starts its graph (our launcher and the launcher's nodes) in a session of its own, so that a Ctrl-C at the
terminal reaches the graph only through the CLI's orderly `child_graph.stop`. The price: killing the CLI's
process group (SIGKILL, an OOM kill, a crashed terminal) does not reach the graph, which ran on with nobody to
stop it: an orphaned policy server kept driving the arm. Process groups cannot fix that, so two links that do not
depend on them tie each child to its parent:

- A supervising pipe (`start_graph`): the CLI keeps the write end of a pipe and the launcher gets the read end.
  The kernel closes the write end when the CLI dies, for any reason, so EOF on the read end means "parent gone".
  It is portable, cannot be confused with a signal someone sends, and it also covers a parent that died before
  the child was ready to notice, since EOF is waiting for it.
- A parent-death signal (Linux `prctl(PR_SET_PDEATHSIG)`, `die_with_parent`): the kernel signals the child
  when its parent goes. The launcher arms it for itself (a second alarm beside the pipe) and for every node it
  starts, so a node dies even when the launcher itself is SIGKILLed and can no longer stop it.

Caveat of the parent-death signal: the kernel sends it when the *thread* that started the child ends, not the
process. The launcher starts and respawns its nodes from the thread that runs the graph and outlives them;
where the thread may end first (the launcher's own signal) the handler checks `os.getppid()` before acting.
"""
from __future__ import annotations

import ctypes
import os
import signal
import stat
import subprocess
import sys
import threading
from typing import Callable

PARENT_FD_ENV = "ROBOT_STACK_PARENT_FD"     # the launcher's end of the supervising pipe, set by start_graph
PR_SET_PDEATHSIG = 1                        # <linux/prctl.h>


def _prctl():
    """libc's prctl, or None off Linux (then only the supervising pipe ties a graph to its CLI)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def set_parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send this process `sig` when its parent (thread) dies; 0 disarms. False where unsupported."""
    prctl = _prctl()
    return prctl is not None and prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A `preexec_fn` for Popen: the child gets `sig` when the calling thread ends (see the module's caveat).

    Everything is looked up here, before the fork, so that the child runs only a foreign call and two system
    calls between fork and exec (a preexec_fn must not take locks other threads may hold). A parent that died
    between fork and prctl sends no signal any more; the child sees it re-parented and exits at once instead."""
    prctl, parent = _prctl(), os.getpid()

    def arm() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(128 + int(sig))

    return arm


# --------------------------------------------------------------------------- the CLI's side

class SupervisedPopen(subprocess.Popen):
    """A child holding the read end of a supervising pipe; this process keeps the write end until the child has
    exited (`poll` or `wait` says so), so the child sees EOF exactly when this process dies first."""

    _link_fd: int | None = None

    def _release_link(self) -> None:
        fd, self._link_fd = self._link_fd, None
        if fd is not None:
            os.close(fd)

    def poll(self):
        code = super().poll()
        if code is not None:
            self._release_link()
        return code

    def wait(self, timeout=None):
        code = super().wait(timeout)
        self._release_link()
        return code


def start_graph(cmd: list[str], **popen_kwargs) -> SupervisedPopen:
    """Popen for a launcher (`robot-stack launch ...`) that takes its graph down when this process dies.

    The launcher runs in a new session, as before (Ctrl-C reaches it only through `child_graph.stop`), and gets
    the read end of a supervising pipe through PARENT_FD_ENV."""
    read_end, write_end = os.pipe()             # both close-on-exec: no other child of ours inherits them
    env = popen_kwargs.pop("env", None)
    env = dict(os.environ if env is None else env)
    env[PARENT_FD_ENV] = str(read_end)
    try:
        proc = SupervisedPopen(cmd, env=env, pass_fds=(read_end,), start_new_session=True, **popen_kwargs)
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)                      # the child has its copy; ours would hide the EOF
    proc._link_fd = write_end
    return proc


# --------------------------------------------------------------------------- the launcher's side

class ParentLink:
    """The launcher's watch on the process that started it: `gone` turns True when that process has died.

    Three alarms, any one enough: EOF on the supervising pipe (read by a daemon thread), the parent-death
    signal (a handler, armed by `arm_signal` from the main thread), and a re-parenting seen by `check`, which
    the launcher's loop calls every few tens of milliseconds anyway. Only plain attribute writes happen in the
    thread and the handler."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self.parent_pid = os.getppid()
        self.gone = False
        if fd is not None:
            threading.Thread(target=self._read_until_eof, name="parent-link", daemon=True).start()

    @classmethod
    def from_env(cls) -> "ParentLink | None":
        """The link start_graph set up, taken out of the environment so the nodes do not inherit it; None when
        this launcher was not started by start_graph (a user's shell: the graph then lives until stopped)."""
        text = os.environ.pop(PARENT_FD_ENV, None)
        if text is None:
            return None
        try:
            fd = int(text)
            is_pipe = stat.S_ISFIFO(os.fstat(fd).st_mode)
        except (ValueError, OSError):
            is_pipe = False
        if not is_pipe:       # a stale variable (exported in a shell) names no pipe of ours: ignore it
            print(f"robot-stack launch: warning: {PARENT_FD_ENV}={text!r} is not an open pipe; not supervised",
                  file=sys.stderr, flush=True)
            return None
        return cls(fd)

    def _read_until_eof(self) -> None:
        try:
            while os.read(self.fd, 4096):
                pass                  # nothing is ever written; only the EOF means something
        except OSError:
            pass
        self.gone = True

    def check(self) -> bool:
        if not self.gone and os.getppid() != self.parent_pid:
            self.gone = True
        return self.gone

    def arm_signal(self, sig: int = signal.SIGUSR1) -> Callable[[], None]:
        """Install a handler for `sig`, then arm it as this process's parent-death signal; returns the undo.

        A signal of its own, not SIGTERM: the kernel also sends it when the parent's starting thread ends while
        the parent lives on, so the handler trusts it only when this process has really been re-parented."""
        previous = signal.signal(sig, lambda signum, frame: self.check())
        armed = set_parent_death_signal(sig)

        def undo() -> None:
            if armed:
                set_parent_death_signal(0)
            signal.signal(sig, previous)

        return undo
