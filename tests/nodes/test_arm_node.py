"""arm_node over the twin through real rclpy: following, watchdog, bad input, e-stop, chunks, and the bounds every
command source is held to (chunk size and horizon, the watchdog after a chunk, parsing off the control thread,
/diagnostics levels)."""
import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64
from std_srvs.srv import Trigger
from trajectory_msgs.msg import MultiDOFJointTrajectory

from robot_stack.nodes.arm_node import ArmNode
from robot_stack.ros import convert, qos
from robot_stack.ros.service_call import RESEND_AFTER, call_service
from robot_stack.types import ActionChunk
from tests.nodes.conftest import wait_for


class Client:
    """A test node that listens to the arm and sends it commands."""

    def __init__(self, ros):
        self.node = ros.node("client")
        self.poses, self.joints, self.diags, self.widths = [], [], [], []
        n = self.node
        n.create_subscription(PoseStamped, "arm/ee_pose", self.poses.append, qos.SENSOR)
        n.create_subscription(JointState, "arm/gripper", lambda m: self.widths.append(m.position[0]), qos.SENSOR)
        n.create_subscription(JointState, "joint_states", self.joints.append, qos.SENSOR)
        n.create_subscription(DiagnosticArray, "diagnostics", self.diags.append, 10)
        self.target = n.create_publisher(PoseStamped, "arm/target_pose", qos.COMMAND)
        self.chunk = n.create_publisher(MultiDOFJointTrajectory, "arm/action_chunk", qos.COMMAND)
        self.gripper = n.create_publisher(Float64, "arm/gripper_cmd", qos.RELIABLE)

    def now(self):
        return self.node.get_clock().now().nanoseconds * 1e-9

    def pose(self):
        pos, quat, _ = convert.parse_pose(self.poses[-1])
        return pos, quat

    def call(self, name):
        """arm/stop and arm/recover are idempotent, so a reply lost at start-up is resent."""
        return call_service(self.node.create_client(Trigger, name), timeout=10.0, resend_after=RESEND_AFTER)


def start(ros, **params):
    from rclpy.parameter import Parameter
    overrides = [Parameter(k, value=v) for k, v in {"robot": "panda", "task": "reach", "seed": 0, **params}.items()]
    node = ros.add(ArmNode(context=ros.context, parameter_overrides=overrides))
    client = Client(ros)
    wait_for(lambda: len(client.poses) > 5, what="ee poses from arm_node")
    return node, client


def test_publishes_state_at_100_hz_and_follows_targets(ros):
    node, client = start(ros)
    n0, sent0, t0 = len(client.joints), node.states_published, time.monotonic()
    time.sleep(1.0)
    elapsed = time.monotonic() - t0
    published = node.states_published - sent0
    received = len(client.joints) - n0
    # The loop runs at 100 Hz nominal; on CI's 2 shared cores it sags with load (73 Hz seen), so the rate bound is
    # loose (`robot-stack bench control` measures it). Load-independent: every state the node published arrives.
    assert published / elapsed > 50, published / elapsed
    assert received >= 0.95 * published - 2, (received, published)
    assert client.joints[-1].name[0] == "panda_joint1" and len(client.joints[-1].position) == 7
    pos, quat = client.pose()
    goal = pos + [0.04, -0.03, -0.05]
    for _ in range(15):
        client.target.publish(convert.pose_msg(goal, quat, client.now()))
        time.sleep(0.05)
    wait_for(lambda: np.linalg.norm(client.pose()[0] - goal) < 2e-3, what="TCP at the goal")


@pytest.mark.parametrize("controller_process", [False, True], ids=["thread", "process"])
def test_each_tick_that_takes_a_command_reports_it_for_replay(ros, controller_process):
    from std_msgs.msg import Float64MultiArray
    node, client = start(ros, controller_process=controller_process)
    taken = []
    client.node.create_subscription(Float64MultiArray, "arm/commands_taken", lambda m: taken.append(list(m.data)),
                                    qos.COMMAND_LOG)
    wait_for(lambda: node.pub_taken.get_subscription_count() > 0, what="the commands_taken subscription")
    pos, quat = client.pose()
    stamps = []
    for k in range(5):
        stamps.append(client.now())
        client.target.publish(convert.pose_msg(pos + [0.0, 0.005 * k, 0.0], quat, stamps[-1]))
        time.sleep(0.05)
    client.gripper.publish(Float64(data=1.0))
    wait_for(lambda: any(row[2] == 1.0 for row in taken), what="the gripper command reported")
    rows = np.array(taken)
    targets = rows[np.isfinite(rows[:, 1])]
    which = [int(np.argmin(np.abs(np.array(stamps) - s))) for s in targets[:, 1]]
    np.testing.assert_allclose(targets[:, 1], np.array(stamps)[which], atol=1e-6)   # the targets' own stamps
    assert len(targets) >= 3 and len(set(which)) == len(which)                     # each taken once
    # the tick's stamp is its state's, read just before it takes what has arrived: within a tick of the send, or after
    assert (targets[:, 0] > targets[:, 1] - 0.01).all() and (targets[:, 0] - targets[:, 1] < 1.0).all()
    assert np.isfinite(rows[:, 3]).all() and (np.diff(rows[:, 3]) > 0).all()     # the twin's physics time, rising
    assert (np.diff(rows[:, 0]) >= 0).all()
    late = rows[rows[:, 2] == 1.0][0]
    assert late[0] > targets[-1][0] and np.isnan(late[1])            # a gripper change alone is a row too


def test_watchdog_holds_pose_when_commands_stop(ros):
    node, client = start(ros)
    pos, quat = client.pose()
    far = pos + [0.0, 0.25, -0.1]            # 0.27 m: at 0.5 m/s it would take ~0.55 s
    client.target.publish(convert.pose_msg(far, quat, client.now()))
    wait_for(lambda: node.safety.events.counts.get("watchdog_hold", 0) >= 1, timeout=3.0, what="watchdog hold")
    assert node.mode == "hold"
    time.sleep(0.3)                         # the arm settles onto the frozen set point
    held = client.pose()[0]
    time.sleep(0.5)
    assert np.linalg.norm(client.pose()[0] - held) < 2e-3          # it stays
    assert np.linalg.norm(held - far) > 0.05                       # it did not finish the move
    assert np.linalg.norm(held - pos) > 0.02                       # but it had started it


def test_bad_commands_are_rejected_without_motion(ros):
    node, client = start(ros)
    pos, quat = client.pose()
    bad = [
        convert.pose_msg([np.nan, 0.0, 0.3], quat, client.now()),
        convert.pose_msg(pos + 0.05, quat, client.now(), frame_id="world"),
        convert.pose_msg(pos + 0.05, quat * 2.0, client.now()),
        convert.pose_msg(pos + 0.05, quat, client.now() - 5.0),       # stale
    ]
    for msg in bad:
        client.target.publish(msg)
        time.sleep(0.05)                    # depth-1 command queue: latest wins, so pace them
    client.gripper.publish(Float64(data=3.0))
    wait_for(lambda: node.safety.events.counts.get("rejected", 0) >= 5, what="five rejections")
    time.sleep(0.3)
    assert np.linalg.norm(client.pose()[0] - pos) < 2e-3
    wait_for(lambda: any(kv.key == "safety.rejected" for d in client.diags for s in d.status for kv in s.values),
             timeout=3.0, what="rejections on /diagnostics")


def test_estop_latches_until_recover(ros):
    node, client = start(ros)
    pos, quat = client.pose()
    assert client.call("arm/stop").success
    for _ in range(6):
        client.target.publish(convert.pose_msg(pos + [0.05, 0, 0], quat, client.now()))
        time.sleep(0.05)
    assert np.linalg.norm(client.pose()[0] - pos) < 2e-3
    assert client.call("arm/recover").success
    goal = pos + [0.05, 0, 0]
    for _ in range(10):
        client.target.publish(convert.pose_msg(goal, quat, client.now()))
        time.sleep(0.05)
    wait_for(lambda: np.linalg.norm(client.pose()[0] - goal) < 3e-3, what="motion after recover")


def test_action_chunk_is_played_at_its_times_skipping_stale_steps(ros):
    node, client = start(ros)
    pos, quat = client.pose()
    now = client.now()
    times = now + np.arange(-0.3, 0.5, 0.1)            # the first three steps are already past
    offsets = np.linspace(0.0, 0.08, len(times))
    positions = np.array([pos + [0.0, 0.0, -o] for o in offsets])
    positions[:3] = pos + [0.3, 0.3, 0.0]               # stale steps far away: must never be visited
    chunk = ActionChunk(times, positions, np.tile(quat, (len(times), 1)), np.zeros(len(times)))
    client.chunk.publish(convert.chunk_msg(chunk))
    seen = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        seen.append(client.pose()[0])
        time.sleep(0.01)
    seen = np.array(seen)
    assert np.abs(seen[:, :2] - pos[:2]).max() < 5e-3               # never headed for the stale steps
    assert abs(seen[-1][2] - positions[-1][2]) < 3e-3               # reached the last step


def test_malformed_chunk_is_rejected(ros):
    node, client = start(ros)
    pos, quat = client.pose()
    msg = convert.chunk_msg(ActionChunk(client.now() + np.array([0.1, 0.2]), np.array([pos, pos + 0.02]),
                                        np.tile(quat, (2, 1)), np.zeros(2)))
    msg.points[1].transforms[1].translation.x = 1.5        # gripper out of [0, 1]
    client.chunk.publish(msg)
    wait_for(lambda: node.safety.events.counts.get("rejected", 0) >= 1, what="rejection")
    assert "gripper" in node.safety.events.last


# --- every command source is bounded in time, and chunks never hold up the control loop ---------------------------
def chunk_msg(client, offsets, times, quat, pos):
    """A chunk from `pos` through `pos + offsets[k]` at absolute `times[k]`."""
    n = len(times)
    return convert.chunk_msg(ActionChunk(np.asarray(times, dtype=float), pos + np.asarray(offsets, dtype=float),
                                         np.tile(quat, (n, 1)), np.zeros(n)))


def test_a_10000_step_chunk_is_refused_before_it_is_parsed(ros):
    node, client = start(ros)
    pos, quat = client.pose()
    times = client.now() + 0.05 + np.linspace(0.0, 1.9, 10_000)       # inside the 2 s horizon: refused for its size
    offsets = np.outer(np.linspace(0.0, 1.0, 10_000), [0.0, 0.1, 0.0])
    client.chunk.publish(chunk_msg(client, offsets, times, quat, pos))
    wait_for(lambda: "action chunk" in node.safety.events.last and "bytes" in node.safety.events.last,
             what="the 10,000-step chunk refused")
    assert node.mode == "hold" and node._chunk is None
    assert np.linalg.norm(client.pose()[0] - pos) < 2e-3


def test_a_chunk_stamped_far_ahead_or_longer_than_the_horizon_is_refused(ros):
    node, client = start(ros)
    pos, quat = client.pose()
    offsets = [[0.0, 0.05, 0.0], [0.0, 0.1, 0.0]]
    client.chunk.publish(chunk_msg(client, offsets, client.now() + 1e6 + np.array([0.1, 0.2]), quat, pos))
    wait_for(lambda: node.safety.events.counts.get("rejected", 0) >= 1, what="the future chunk refused")
    assert "ahead of now" in node.safety.events.last, node.safety.events.last
    time.sleep(0.05)                        # depth-1 command queue: latest wins, so pace them
    client.chunk.publish(chunk_msg(client, offsets, client.now() + np.array([0.1, 3.0]), quat, pos))
    wait_for(lambda: node.safety.events.counts.get("rejected", 0) >= 2, what="the 2.9 s chunk refused")
    assert "horizon" in node.safety.events.last, node.safety.events.last
    assert node.mode == "hold" and node._chunk is None
    assert np.linalg.norm(client.pose()[0] - pos) < 2e-3


def test_the_arm_holds_once_a_chunks_last_step_is_a_watchdog_period_past(ros):
    node, client = start(ros)
    pos, quat = client.pose()
    times = client.now() + np.linspace(0.05, 0.4, 8)
    offsets = np.outer(np.linspace(0.0, 1.0, 8), [0.0, 0.25, 0.0])    # 0.62 m/s asked: the arm lags behind the plan
    msg = chunk_msg(client, offsets, times, quat, pos)
    for point in msg.points:
        point.transforms[1].translation.x = 1.0                         # the chunk closes the gripper
    client.chunk.publish(msg)
    wait_for(lambda: node.mode == "chunk", what="the chunk played")
    wait_for(lambda: node.mode == "hold" and node.safety.events.counts.get("watchdog_hold", 0) >= 1,
             what="a watchdog hold after the chunk's end")
    assert node._chunk is None                                          # over, not paused
    wait_for(lambda: np.abs(client.joints[-1].velocity).max() < 0.01, what="the arm at rest")
    held, ticks = node.setpoint[0].copy(), node.stats.ticks
    wait_for(lambda: node.stats.ticks > ticks + 300, what="300 more control periods")
    assert np.array_equal(node.setpoint[0], held)                       # the set point did not move again
    assert np.abs(client.joints[-1].velocity).max() < 0.01
    assert np.linalg.norm(client.pose()[0] - held) < 3e-3
    wait_for(lambda: client.widths[-1] < 0.005, what="the gripper closed")
    n = len(client.widths)
    wait_for(lambda: len(client.widths) > n + 30, what="more gripper states")
    assert max(client.widths[n:]) < 0.005                              # the hold keeps the chunk's grasp


def test_chunks_are_parsed_off_the_control_thread(ros, monkeypatch):
    """A chunk whose parsing does not finish must not stop the control loop: the loop keeps ticking meanwhile."""
    node, client = start(ros)
    pos, quat = client.pose()
    parsing, release = threading.Event(), threading.Event()
    parse = convert.parse_chunk

    def slow_parse(msg, *args, **kwargs):
        parsing.set()
        release.wait(timeout=30.0)
        return parse(msg, *args, **kwargs)

    monkeypatch.setattr(convert, "parse_chunk", slow_parse)
    times = client.now() + 0.3 + np.linspace(0.0, 1.5, 500)             # the largest chunk accepted
    offsets = np.outer(np.linspace(0.0, 1.0, 500), [0.0, 0.0, -0.05])
    client.chunk.publish(chunk_msg(client, offsets, times, quat, pos))
    try:
        wait_for(parsing.is_set, what="the chunk's parsing started")
        ticks = node.stats.ticks
        wait_for(lambda: node.stats.ticks > ticks + 200, what="control periods while the chunk is parsed")
    finally:
        release.set()
    wait_for(lambda: abs(client.pose()[0][2] - (pos[2] - 0.05)) < 3e-3, what="the chunk played once parsed")


def diag_levels(client, since: int):
    return [(s.level, s.message) for d in client.diags[since:] for s in d.status]


def test_diagnostics_warn_on_a_burst_of_rejected_commands(ros):
    node, client = start(ros, overrides="diagnostics_rate=10.0")
    pos, quat = client.pose()
    wait_for(lambda: len(client.diags) >= 2, what="diagnostics")
    assert all(level == DiagnosticStatus.OK for level, _ in diag_levels(client, 0))
    seen = len(client.diags)
    for _ in range(10):
        client.target.publish(convert.pose_msg([np.nan, 0.0, 0.3], quat, client.now()))
        time.sleep(0.005)
    wait_for(lambda: any(level == DiagnosticStatus.WARN for level, _ in diag_levels(client, seen)),
             what="WARN on /diagnostics")
    message = next(m for level, m in diag_levels(client, seen) if level == DiagnosticStatus.WARN)
    assert "rejected" in message and "non-finite" in message, message


def test_diagnostics_error_when_commands_stop_mid_episode_until_they_resume(ros):
    node, client = start(ros, overrides="diagnostics_rate=10.0")
    pos, quat = client.pose()
    client.target.publish(convert.pose_msg(pos + [0.0, 0.0, -0.01], quat, client.now()))
    wait_for(lambda: node.safety.events.counts.get("watchdog_hold", 0) >= 1, what="a hold after a single target")
    seen = len(client.diags)
    wait_for(lambda: len(client.diags) >= seen + 3, what="three more diagnostics")
    assert all(level == DiagnosticStatus.OK for level, _ in diag_levels(client, seen))    # one command is no stream
    for k in range(20):                                                 # a stream at 50 Hz, then silence
        client.target.publish(convert.pose_msg(pos + [0.0, 0.001 * k, -0.01], quat, client.now()))
        time.sleep(0.02)
    seen = len(client.diags)
    wait_for(lambda: any(level == DiagnosticStatus.ERROR for level, _ in diag_levels(client, seen)),
             what="ERROR on /diagnostics after the stream stopped")
    message = next(m for level, m in diag_levels(client, seen) if level == DiagnosticStatus.ERROR)
    assert "mid-episode" in message and "watchdog" in message, message
    assert node.mode == "hold"
    for k in range(10):
        client.target.publish(convert.pose_msg(pos + [0.0, 0.02, -0.01], quat, client.now()))
        time.sleep(0.02)
        if k == 2:
            seen = len(client.diags)
    wait_for(lambda: any(level == DiagnosticStatus.OK for level, _ in diag_levels(client, seen)),
             what="OK again once commands resumed")


@pytest.mark.parametrize("controller_process", [False, True])
def test_an_empty_chunk_ends_the_stream_on_purpose_the_arm_holds_with_no_stall_alarm(ros, controller_process):
    node, client = start(ros, overrides="diagnostics_rate=10.0", controller_process=controller_process)
    pos, quat = client.pose()
    for k in range(20):                                                 # a stream at 50 Hz, as a policy serves
        client.target.publish(convert.pose_msg(pos + [0.0, 0.001 * k, -0.01], quat, client.now()))
        time.sleep(0.02)
    client.chunk.publish(convert.end_of_stream_msg(client.now()))       # a policy server pausing
    wait_for(lambda: node.safety.events.counts.get("watchdog_hold", 0) >= 1, what="the hold after the stream")
    seen = len(client.diags)
    wait_for(lambda: len(client.diags) >= seen + 3, what="three more diagnostics")
    assert all(level == DiagnosticStatus.OK for level, _ in diag_levels(client, seen))
    assert node.mode == "hold" and "rejected" not in node.safety.events.counts


def test_chunk_blend_follows_the_served_policy_and_is_validated(ros, tmp_path):
    """The policy server sets the arm node's chunk_blend to its active checkpoint's deployment setting; a bad value or
    a start-up-only parameter is refused with the reason."""
    from rclpy.parameter import Parameter

    from robot_stack.nodes.policy_server import PolicyServer
    from robot_stack.policies.base import set_deploy
    from tests.policies.toy import ToyPolicy, toy_stats

    arm, _ = start(ros)
    assert arm.chunk_blend == 0.0
    for name, value, reason in (("chunk_blend", 1.5, "[0, 1)"), ("chunk_blend", "x", "[0, 1)"),
                                ("robot", "ur5e", "start-up only")):
        result = arm.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful and reason in result.reason
    ToyPolicy(ToyPolicy.Config(), toy_stats()).save(tmp_path / "toy")
    set_deploy(tmp_path / "toy", {"chunk_blend": 0.4})
    ros.add(PolicyServer(context=ros.context, parameter_overrides=[Parameter("checkpoints", value=str(tmp_path / "toy"))]))
    wait_for(lambda: arm.chunk_blend == 0.4, timeout=20.0, what="the checkpoint's chunk_blend on the arm")
