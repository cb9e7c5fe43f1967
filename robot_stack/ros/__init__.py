"""ROS 2 glue: message conversion, QoS profiles, clock helpers. Only this package and nodes/ import rclpy."""
from robot_stack.dds import configure_environment

# DESIGN.md: discovery stays on this machine, over loopback only, unless the user configures otherwise
# (robot_stack/dds.py says how; before any participant exists, so it applies to this process too).
configure_environment()
