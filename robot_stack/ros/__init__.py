"""ROS 2 glue: message conversion, QoS profiles, clock helpers. Only this package and nodes/ import rclpy."""
import os

# DESIGN.md: discovery stays on this machine unless the user configures otherwise.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
