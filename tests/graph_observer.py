"""An outside observer of a running graph, as `ros2 node list` / `ros2 topic echo`, RViz or a Foxglove bridge would
be: a plain rclpy process with the middleware's default settings (the caller strips robot_stack's DDS profile and
discovery range from its environment), nothing imported from robot_stack.

    python tests/graph_observer.py --nodes /arm_node,/front_camera --timeout 60

Waits until every named node is discovered and a message has arrived on every topic those nodes publish (except
the ones named with --event-topics, published only when something happens, and ROS's own /rosout and
/parameter_events), then prints one JSON object: the node names seen (duplicates kept), each topic the nodes
publish with its type and the number of messages received, and whether it got everything before the timeout.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

INFRASTRUCTURE = {"/rosout", "/parameter_events"}
SETTLE = 2.0    # s without a newly discovered topic before the set of topics is taken as complete


def message_class(type_name: str):
    package, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def adapted_qos(node, topic: str) -> QoSProfile:
    """What `ros2 topic echo` subscribes with: reliable and transient local only where every publisher offers it,
    so the subscription matches them all (a reliable one would not match the best-effort streams) and still gets
    a latched message published before it joined."""
    infos = node.get_publishers_info_by_topic(topic)
    reliable = bool(infos) and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
    latched = bool(infos) and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
    return QoSProfile(depth=10,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", required=True, help="comma-separated fully qualified node names")
    parser.add_argument("--topics", default="", help="comma-separated topics that must be published and received "
                                                     "(a node can show up seconds before its publishers do)")
    parser.add_argument("--event-topics", default="", help="comma-separated topics that may stay silent")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--set-true", default="", help="a std_srvs/SetBool service to call with true once it is up "
                                                       "(a policy server publishes chunks only when enabled)")
    args = parser.parse_args()
    expected = {n for n in args.nodes.split(",") if n}
    event_topics = {t for t in args.event_topics.split(",") if t}
    required = {t for t in args.topics.split(",") if t}

    rclpy.init()
    node = rclpy.create_node("outside_observer")
    received: dict[str, int] = {}
    types: dict[str, str] = {}
    seen_nodes: list[str] = []
    deadline = time.monotonic() + args.timeout
    complete = False
    switched = not args.set_true
    last_new = time.monotonic()     # publishers are discovered one by one: a topic set counts once it holds still
    switch = pending = None
    asked = 0.0
    if args.set_true:
        from std_srvs.srv import SetBool
        switch = node.create_client(SetBool, args.set_true)
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
        # A reply can be lost while the two sides still discover each other ("failed to send response (timeout)"):
        # setting true is idempotent, so ask again after 3 s without one, as robot_stack's service calls do.
        if switch is not None and switch.service_is_ready() and (
                pending is None or (not pending.done() and time.monotonic() - asked > 3.0)):
            pending, asked = switch.call_async(SetBool.Request(data=True)), time.monotonic()
        seen_nodes = [f"{ns.rstrip('/')}/{name}" for name, ns in node.get_node_names_and_namespaces()]
        for full in expected & set(seen_nodes):
            ns, _, name = full.rpartition("/")
            try:
                published = node.get_publisher_names_and_types_by_node(name, ns or "/")
            except Exception:           # the node left the graph between the two calls: look again next round
                continue
            for topic, topic_types in published:
                if topic in INFRASTRUCTURE or topic in types:
                    continue
                types[topic] = topic_types[0]
                last_new = time.monotonic()
                received[topic] = 0
                node.create_subscription(message_class(topic_types[0]), topic,
                                         lambda _msg, t=topic: received.__setitem__(t, received[t] + 1),
                                         adapted_qos(node, topic))
        silent = [t for t, n in received.items() if n == 0 and t not in event_topics]
        switched = switch is None or (pending is not None and pending.done() and pending.result().success)
        if (expected <= set(seen_nodes) and required <= set(received) and not silent and switched
                and time.monotonic() - last_new > SETTLE):
            complete = True
            break
    print(json.dumps({"complete": complete, "switched": switch is not None and switched, "nodes": sorted(seen_nodes),
                      "topics": {t: {"type": types[t], "received": received[t]} for t in sorted(types)}}))
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
