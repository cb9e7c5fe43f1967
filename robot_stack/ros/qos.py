"""QoS profiles named after what they carry (DESIGN.md, Topics)."""
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

SENSOR = qos_profile_sensor_data                       # best effort, keep last 5
COMMAND = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Images are large: reliable with a short queue (latest frames) for live consumers such as the policy server.
IMAGE = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# Actor -> learner transitions: reliable with a deep queue, so a resend burst after a learner restart is not cut.
TRANSITIONS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# camera_node's colour publisher: history sized for a second of frames (30 Hz), so a reliable subscriber that misses
# a fragment gets it resent even after a stall (with IMAGE's depth 2 a frame is gone once two newer ones are published).
CAMERA_IMAGE = QoSProfile(depth=30, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# recorder_node's image subscriptions: reliable, and a reader queue of two seconds of frames (30 Hz), so that a stall
# of the recorder's executor (CPU contention, the GIL held by the writer thread) delays frames instead of overwriting them.
RECORDER_IMAGE = QoSProfile(depth=60, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# recorder_node's state subscriptions (joint states, TCP pose, wrench, gripper at 100 Hz): best effort like their
# publishers, with the same two seconds of reader queue as RECORDER_IMAGE, so a stall of the recorder's executor delays
# samples instead of overwriting them (with SENSOR's depth 5, a 50 ms stall loses samples: 44-67 Hz of 100 were
# recorded on a loaded 2-core host). Samples keep their capture stamps, so a delayed one is still placed in time.
RECORDER_STATE = QoSProfile(depth=200, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
# arm/commands_taken (a row per tick that took a command, up to the command rate): reliable with ten seconds of
# history at 20 Hz, so a stalled recorder gets every row; replay needs them all (a lost row replays a target late).
COMMAND_LOG = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
