"""The DDS layer under our graphs (Fast DDS through rmw_fastrtps): which profile and discovery mode a process gets,
shared memory that killed processes left behind, and the sockets a process holds (docs/design.md, "DDS").

Discovery stays on this machine by default, and so does every socket: conf/dds/fastdds.xml implements localhost
discovery itself (unicast to 127.0.0.1, participant ids 0..99, UDP bound to 127.0.0.1 only). rmw_fastrtps's own
LOCALHOST mode cannot do that: it adds a second shared-memory transport and a UDP transport of its own on top of
the profile's, and that UDP transport binds 0.0.0.0. So where our profile is in use, LOCALHOST is asked of the
profile (ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT, "use the profile") rather than of rmw; SUBNET gets a profile
with the same large shared memory and UDP on every interface.

Fast DDS keeps per-process state in /dev/shm: a segment per participant (ours 33.5 MiB, rmw's 0.5 MiB) and a
port per listening locator, each with a lock file its owner holds (flock) while it lives. A SIGKILLed process
leaves them all; `clean_stale_shm` removes those nobody holds, as `fastdds shm clean` does.

Where SCHED_FIFO is permitted, a process gets its profile's real-time variant (`realtime_profile`): Fast DDS's
reception threads, which take every message off the wire or the shared-memory port and hand it to rmw, run at
SCHED_FIFO `RECEPTION_PRIORITY`. At SCHED_OTHER they waited behind the FIFO camera renderers and the policy:
target stamp to the arm's control tick, p99 about 9 ms, against 2.5-3.3 ms with them at FIFO (docs/design.md).
"""
from __future__ import annotations

import fcntl
import os
import re
import threading
import xml.etree.ElementTree as ET
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import MutableMapping

CONF_DIR = Path(__file__).resolve().parent / "conf" / "dds"
LOOPBACK_PROFILE = CONF_DIR / "fastdds.xml"
SUBNET_PROFILE = CONF_DIR / "fastdds_subnet.xml"
SHM_DIR = Path("/dev/shm")
# Above the cameras' renderers (40), command sources (45) and the policy's act() (50); below the arm's threads
# (70-80), which a burst of camera frames arriving must not delay.
RECEPTION_PRIORITY = 60
_FASTDDS_NS = "http://www.eprosima.com"

# Lock files a live owner holds: `fastdds_<16 hex>_el` (a participant's segment), `fastdds_port<N>_el` (a port
# opened for exclusive reading) and `_sl` (shared reading); tools/fastdds/shm/clean.py in Fast DDS uses these.
_SEGMENT_LOCK = re.compile(r"^fastdds_[0-9a-z]{16}_(el|sl)$")
_PORT_LOCK = re.compile(r"^fastdds_port\d{1,5}_(el|sl)$")
# A lock file younger than this may belong to a process between creating the file and locking it (microseconds
# in Fast DDS, but a loaded machine can stop a process anywhere); it is left for the next clean.
MIN_AGE = 5.0


def configure_environment(env: MutableMapping[str, str] | None = None) -> None:
    """Pick the DDS profile and discovery mode for this process and the ones it starts (idempotent).

    A user's own profile (FASTRTPS_/FASTDDS_DEFAULT_PROFILES_FILE naming another file) and discovery mode are left
    alone. With ours: LOCALHOST (or unset) becomes SYSTEM_DEFAULT over the loopback profile; SUBNET gets the subnet
    profile; each as its real-time variant where this process may use SCHED_FIFO."""
    env = os.environ if env is None else env
    user_profile = env.get("FASTRTPS_DEFAULT_PROFILES_FILE") or env.get("FASTDDS_DEFAULT_PROFILES_FILE")
    if user_profile and not _is_ours(Path(user_profile)):
        env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        return
    env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)      # ours, under the old name: one variable from here on
    mode = env.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST").upper()
    if mode in ("LOCALHOST", ""):
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "SYSTEM_DEFAULT"
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(_with_priority(LOOPBACK_PROFILE))
    elif mode == "SYSTEM_DEFAULT":
        # Set by an earlier call (a parent process): keep whichever of our profiles it chose, without probing again.
        if "FASTDDS_DEFAULT_PROFILES_FILE" not in env:
            env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(_with_priority(LOOPBACK_PROFILE))
    elif mode == "SUBNET":
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(_with_priority(SUBNET_PROFILE))
    # OFF: no discovery; either profile does


def fifo_permitted(priority: int = RECEPTION_PRIORITY) -> bool:
    """Whether a thread of this process may take SCHED_FIFO `priority` (root, CAP_SYS_NICE or RLIMIT_RTPRIO).

    Asked of a throwaway thread, so the caller's own scheduling is never touched."""
    answer: list[bool] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            answer.append(True)
        except (OSError, AttributeError):
            answer.append(False)

    thread = threading.Thread(target=probe, name="fifo-probe")
    thread.start()
    thread.join()
    return answer[0]


def realtime_profile(base: Path, cache_dir: Path | None = None) -> Path:
    """`base` with SCHED_FIFO `RECEPTION_PRIORITY` for every transport's reception threads, written once to a cache
    directory (replaced atomically, so processes starting together read a whole file)."""
    ET.register_namespace("", _FASTDDS_NS)
    tree = ET.parse(base)
    for transport in tree.getroot().iter(f"{{{_FASTDDS_NS}}}transport_descriptor"):
        threads = ET.SubElement(transport, f"{{{_FASTDDS_NS}}}default_reception_threads")
        ET.SubElement(threads, f"{{{_FASTDDS_NS}}}scheduling_policy").text = str(int(os.SCHED_FIFO))
        ET.SubElement(threads, f"{{{_FASTDDS_NS}}}priority").text = str(RECEPTION_PRIORITY)
    text = (f"<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<!-- Written by robot_stack/dds.py from conf/dds/{base.name}: "
            f"its reception threads at SCHED_FIFO {RECEPTION_PRIORITY}. -->\n"
            + ET.tostring(tree.getroot(), encoding="unicode") + "\n")
    out = (cache_dir or _cache_dir()) / f"{base.stem}_rt.xml"
    if not out.exists() or out.read_text() != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, out)
    return out


def _with_priority(base: Path) -> Path:
    return realtime_profile(base) if fifo_permitted() else base


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "robot_stack" / "dds"


def _is_ours(profile: Path) -> bool:
    profile = profile.resolve()
    return profile in (LOOPBACK_PROFILE, SUBNET_PROFILE) or (
        profile.parent == _cache_dir().resolve() and profile.name in (f"{p.stem}_rt.xml" for p in (LOOPBACK_PROFILE, SUBNET_PROFILE)))


@dataclass
class CleanReport:
    segments: int = 0           # participant segments removed
    ports: int = 0              # ports removed
    in_use: int = 0             # lock files a live process holds
    freed_bytes: int = 0
    removed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"removed {self.segments} stale Fast DDS segments and {self.ports} ports "
                f"({self.freed_bytes / 2**20:.1f} MiB); {self.in_use} in use")


def _held(lock: Path) -> bool:
    """Whether a live process holds `lock` (flock, as Fast DDS's RobustExclusiveLock/RobustSharedLock take it)."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return True                     # gone meanwhile: its owner cleaned up, nothing for us to do
    except OSError:
        return True                     # not ours to judge (another user's file)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _remove(path: Path, report: CleanReport) -> None:
    try:
        size = path.stat().st_size
        path.unlink()
    except OSError:                     # already gone, or not ours to remove
        return
    report.freed_bytes += size
    report.removed.append(path.name)


def clean_stale_shm(shm_dir: Path = SHM_DIR, min_age: float = MIN_AGE) -> CleanReport:
    """Remove the Fast DDS segments and ports whose owner is dead: a lock file nobody holds, with its segment (and,
    for a port, its `sem.*_mutex`). Files of live processes, and lock files younger than `min_age` seconds, stay."""
    report = CleanReport()
    try:
        names = os.listdir(shm_dir)
    except OSError:
        return report
    now = time.time()
    for name in sorted(names):
        segment = _SEGMENT_LOCK.match(name)
        port = _PORT_LOCK.match(name)
        if not (segment or port):
            continue
        lock = shm_dir / name
        try:
            if now - lock.stat().st_mtime < min_age:
                continue
        except OSError:
            continue
        if _held(lock):
            report.in_use += 1
            continue
        base = name[:-3]
        _remove(shm_dir / base, report)
        _remove(lock, report)
        if port:
            _remove(shm_dir / f"sem.{base}_mutex", report)
            report.ports += 1
        else:
            report.segments += 1
    return report


def prepare_graph(env: MutableMapping[str, str] | None = None) -> CleanReport:
    """Before a graph starts: its DDS environment, and what dead processes left in shared memory."""
    configure_environment(env)
    return clean_stale_shm()


def udp_bindings(pid: int) -> list[tuple[str, int]]:
    """The (address, port) of every UDP/IPv4 socket process `pid` holds: its socket inodes (/proc/PID/fd) looked up
    in the network namespace's table (/proc/PID/net/udp lists every socket of the namespace, not only its own)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    bound = []
    for line in Path(f"/proc/{pid}/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes:
            host, port = fields[1].split(":")
            octets = bytes.fromhex(host)[::-1]          # little-endian u32 on x86 and arm64
            bound.append((".".join(str(b) for b in octets), int(port, 16)))
    return bound


def main(argv: list[str] | None = None) -> int:
    """`python -m robot_stack.dds clean`: what `fastdds shm clean` does, without Fast DDS's Python tools."""
    import sys
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["clean"]:
        print("usage: python -m robot_stack.dds clean", file=sys.stderr)
        return 2
    print(clean_stale_shm())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
