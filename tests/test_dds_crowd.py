"""Discovery on a crowded domain, in a module of its own: 34 participants load both cores, so this runs after
test_dds's graph (a 1 kHz SCHED_FIFO arm node, module-scoped) is gone, never beside it."""
from tests.test_dds import (CROWD, DISCOVERY_BOUND, PROJECT_NODE, fresh_domain, kill_all, observe, outside_env,
                            project_env, wait_line)
import subprocess
import sys


def test_node_found_on_a_domain_with_more_participants_than_localhost_discovery_probes():
    """rmw's LOCALHOST discovery announces to the ports of participant ids 0..31 only; two participants that both
    took an id above that never meet. With 34 outside participants on the domain, a new node and a new outside
    tool both land there: only the wider range of our profile (ids 0..99) lets them meet."""
    domain = fresh_domain()
    crowd = subprocess.Popen([sys.executable, "-c", CROWD, "34"], env=outside_env(domain), stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    node = None
    try:
        wait_line(crowd, "up", 120)
        node = subprocess.Popen([sys.executable, "-c", PROJECT_NODE, "late_node"], env=project_env(domain),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        wait_line(node, "ready", 60)
        seen = observe(domain, "late_node", "/dds_probe", "std_msgs.msg.String")
        assert seen["seen"] is not None and seen["seen"] < DISCOVERY_BOUND, seen
        assert seen["messages"] > 0, seen
    finally:
        kill_all([p for p in (crowd, node) if p is not None])
