"""ROS 2 glue: message conversion, QoS profiles, clock helpers. Only this package and nodes/ import rclpy."""
import os
from pathlib import Path

# DESIGN.md: discovery stays on this machine unless the user configures otherwise.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
# Shared memory large enough for full-size frames (see conf/dds/fastdds.xml); a user's own profile wins.
if "FASTRTPS_DEFAULT_PROFILES_FILE" not in os.environ:
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE",
                          str(Path(__file__).resolve().parent.parent / "conf" / "dds" / "fastdds.xml"))
