"""policy_server on real rclpy: chunks stamped at capture, bad input refused and survived, runtime switching."""
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import MultiDOFJointTrajectory

from robot_stack.nodes.policy_server import PolicyServer, parse_checkpoints
from robot_stack.ros import convert, qos
from robot_stack.ros.service_call import RESEND_AFTER, call_service
from tests.nodes.conftest import wait_for
from tests.policies.toy import ToyPolicy, toy_stats


def test_parse_checkpoints():
    assert parse_checkpoints(" a=/x/y , /z ") == [("a", "/x/y"), (None, "/z")]


@pytest.fixture
def graph(ros, tmp_path):
    ToyPolicy(ToyPolicy.Config(), toy_stats()).save(tmp_path / "toy")
    ToyPolicy(ToyPolicy.Config(action_horizon=5), toy_stats()).save(tmp_path / "toy5")
    return serve(ros, f"{tmp_path / 'toy'},long={tmp_path / 'toy5'}")


def serve(ros, checkpoints: str) -> dict:
    """A policy server on `checkpoints` at 20 Hz and an `io` node feeding it (image, pose, gripper, instruction)
    and taking its chunks and diagnostics."""
    server = ros.add(PolicyServer(context=ros.context, parameter_overrides=[
        Parameter("checkpoints", value=checkpoints), Parameter("rate", value=20.0)]))
    io = ros.node("io")
    g = {"server": server, "io": io, "chunks": [], "diag": []}
    io.create_subscription(MultiDOFJointTrajectory, "arm/action_chunk", g["chunks"].append, qos.COMMAND)
    io.create_subscription(DiagnosticArray, "diagnostics", lambda m: g["diag"].extend(m.status), 10)
    g["image"] = io.create_publisher(Image, "front/color/image_raw", qos.IMAGE)
    g["pose"] = io.create_publisher(PoseStamped, "arm/ee_pose", qos.SENSOR)
    g["grip"] = io.create_publisher(JointState, "arm/gripper", qos.SENSOR)
    g["text"] = io.create_publisher(String, "task/instruction", qos.LATCHED)
    g["enable"] = io.create_client(SetBool, "policy_server/enable")
    return g


def feed(g, t, size=32):
    g["image"].publish(convert.image_msg(np.full((size, size, 3), 90, np.uint8), t, "front"))
    g["pose"].publish(convert.pose_msg(np.array([0.4, 0.0, 0.2]), np.array([1.0, 0, 0, 0]), t + 0.004))
    g["grip"].publish(convert.joint_state_msg(["gripper"], [0.08], [0.0], None, t))


def enable(g, on=True):
    call_service(g["enable"], SetBool.Request(data=on), timeout=10.0, resend_after=RESEND_AFTER)   # idempotent


def pump(g, seconds, size=32, until=None):
    """Feed observations for `seconds`; with `until`, only until it holds (failing after `seconds`), so a loaded
    machine gets the time it needs and a fast one does not wait."""
    import time
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if until is not None and until():
            return
        feed(g, g["server"].now(), size)
        time.sleep(0.02)
    if until is not None and not until():
        raise AssertionError(f"no {until.__doc__ or 'condition'} after {seconds} s of observations")


def test_chunks_carry_the_capture_stamp_and_bad_input_is_survived(graph):
    g = graph
    g["text"].publish(String(data="put the red block in the bowl"))
    enable(g)
    pump(g, 20.0, until=lambda: len(g["chunks"]) > 2)
    chunk = convert.parse_chunk(g["chunks"][-1])
    assert len(chunk) == 3
    stamp = convert.from_time(g["chunks"][-1].header.stamp)
    np.testing.assert_allclose(chunk.times - stamp, [0.1, 0.2, 0.3], atol=1e-6)   # relative to the observation
    # a wrong image size: an error on /diagnostics, no chunk
    pump(g, 0.3, size=48)
    n = len(g["chunks"])
    pump(g, 0.5, size=48)
    assert len(g["chunks"]) == n
    wait_for(lambda: any(s.name == "policy_server" and "32x32" in s.message for s in g["diag"]), what="diagnostic")
    pump(g, 20.0, until=lambda: len(g["chunks"]) > n)          # valid input again: serving resumes


def test_a_decision_reads_the_newest_tcp_pose_taken_when_it_decides(graph):
    import time
    g = graph
    g["text"].publish(String(data="go"))
    enable(g)
    pump(g, 20.0, until=lambda: len(g["chunks"]) > 0)
    time.sleep(0.3)                              # frames still in flight are handled first
    for x in (0.41, 0.42, 0.43):                 # 100 Hz poses between frames: only the newest matters
        g["pose"].publish(convert.pose_msg(np.array([x, 0.0, 0.2]), np.array([1.0, 0, 0, 0]), g["server"].now()))
        time.sleep(0.01)
    assert g["server"].pose[1][0] != 0.43        # not delivered by the executor: taken at the next decision
    n = len(g["chunks"])
    g["image"].publish(convert.image_msg(np.full((32, 32, 3), 90, np.uint8), g["server"].now(), "front"))
    wait_for(lambda: len(g["chunks"]) > n, what="a chunk from the new frame")
    assert g["server"].pose[1][0] == pytest.approx(0.43)


def test_missing_conditioning_publishes_nothing(graph):
    g = graph
    enable(g)
    pump(g, 1.2)
    assert g["chunks"] == []
    wait_for(lambda: any("needs one of" in s.message for s in g["diag"]), what="diagnostic")
    assert g["server"].errors > 0


def test_switching_policy_at_runtime(graph):
    g = graph
    g["text"].publish(String(data="go"))
    enable(g)
    pump(g, 20.0, until=lambda: len(g["chunks"]) > 0)
    assert len(g["chunks"][-1].points) == 3
    refused = g["server"].set_parameters([Parameter("policy", value="nope")])[0]
    assert not refused.successful and "not loaded" in refused.reason and g["server"].active == "toy"
    assert g["server"].set_parameters([Parameter("policy", value="long")])[0].successful
    pump(g, 20.0, until=lambda: len(g["chunks"][-1].points) == 5)   # the next chunk comes from the other policy
    enable(g, False)
    pump(g, 0.5)                                     # a chunk already being computed may still land
    n = len(g["chunks"])
    pump(g, 0.4)
    assert len(g["chunks"]) == n                     # paused: nothing goes out
    # but the pause itself went out: one chunk with no points, so the arm ends the stream without a stall alarm
    assert sum(not m.points for m in g["chunks"]) == 1


@pytest.fixture
def two_camera_server(ros, tmp_path):
    """An enabled 10 Hz server over a front + wrist policy, and `frame(cam, t)`, which hands it a frame stamped t."""
    ToyPolicy(ToyPolicy.Config(cameras=("front", "wrist")), toy_stats()).save(tmp_path / "toy2")
    server = ros.add(PolicyServer(context=ros.context, parameter_overrides=[
        Parameter("checkpoints", value=str(tmp_path / "toy2")), Parameter("rate", value=10.0)]))
    server.task_inputs.fields["instruction"] = "go"
    server.gripper, server.enabled = 0.08, True
    server.pose = (0.0, np.array([0.4, 0.0, 0.2, 1.0, 0.0, 0.0, 0.0]))

    def frame(cam, t):
        server._on_image(cam, convert.image_msg(np.full((32, 32, 3), 90, np.uint8), t, cam))
    return server, frame


def test_decides_on_frames_of_one_capture_instant(two_camera_server):
    """With two cameras, a new front frame beside the wrist frame of the instant before is not a decision:
    it would stamp the chunk a camera period early (measured: BESO's capture->arm p50 53 -> 25 ms).
    Frames of unsynchronised cameras within `sync_slop` are one instant."""
    server, frame = two_camera_server

    t0 = server.now()
    frame("front", t0), frame("wrist", t0)
    assert server.published == 1
    frame("wrist", t0 + 0.066)
    frame("front", t0 + 0.1)             # beside wrist t0+0.066: not one instant
    assert server.published == 1
    frame("wrist", t0 + 0.1)
    assert server.published == 2 and server._last_frames == pytest.approx(t0 + 0.1)
    frame("front", t0 + 0.2)
    frame("wrist", t0 + 0.19)            # unsynchronised, within sync_slop (20 ms): one instant
    assert server.published == 3 and server._last_stamp == pytest.approx(t0 + 0.19)


def test_a_late_decision_neither_skips_the_next_instant_nor_mixes_instants(two_camera_server):
    """Decisions are spaced by capture stamps, not by when they ran. Spaced by wall time, a decision made
    late (frames on their way, a slow act()) made the next instant's frames look early; they were skipped
    and the leftover front frame was then paired with the next wrist frame, 100 ms apart (obs age p99
    122 ms through ROS). Here every instant is decided however late its frames arrive, and a front frame
    whose wrist partner never came is never combined with a later one."""
    import time
    server, frame = two_camera_server

    t0 = server.now()
    frame("front", t0), frame("wrist", t0)
    time.sleep(0.06)                     # the next instant's frames arrive right after a late decision
    frame("front", t0 + 0.1), frame("wrist", t0 + 0.1)
    assert server.published == 2
    frame("front", t0 + 0.2)             # its wrist frame is lost
    frame("wrist", t0 + 0.3)             # 100 ms from the only new front frame: not one instant
    assert server.published == 2
    frame("front", t0 + 0.3)
    assert server.published == 3 and server._last_stamp == pytest.approx(t0 + 0.3)


def test_execute_steps_spaces_decisions_by_that_many_chunk_steps(ros, tmp_path):
    """execute_steps 3 at 10 Hz: frames captured 0.1 or 0.2 s after a decision's are no decision, 0.3 s after
    are, and the frames between go to the policy's history; a policy whose chunk is shorter than execute_steps
    decides when its chunk runs out."""
    ToyPolicy(ToyPolicy.Config(action_horizon=5, obs_horizon=2), toy_stats()).save(tmp_path / "toy")
    server = ros.add(PolicyServer(context=ros.context, parameter_overrides=[
        Parameter("checkpoints", value=str(tmp_path / "toy")), Parameter("rate", value=10.0),
        Parameter("execute_steps", value=3)]))
    server.task_inputs.fields["instruction"] = "go"
    server.gripper, server.enabled = 0.08, True
    t0 = server.now()
    server.pose = (t0 + 1.0, np.array([0.4, 0.0, 0.2, 1.0, 0.0, 0.0, 0.0]))    # newer than the frames: they stamp

    def frame(k):                         # camera frame k, captured 0.1 k s after the first
        server._on_image("front", convert.image_msg(np.full((32, 32, 3), 90, np.uint8), t0 + 0.1 * k, "front"))

    frame(0)
    assert server.published == 1
    frame(1)
    frame(2)
    assert server.published == 1
    frame(3)
    assert server.published == 2
    assert [o.stamp for o in server.policy._window(t0 + 0.3)] == pytest.approx([t0 + 0.2, t0 + 0.3])
    assert server.set_parameters([Parameter("execute_steps", value=8)])[0].successful   # more than the 5-step chunk:
    assert server.execute_steps == 8                                                     # decide after 5 steps
    for k in range(4, 8):
        frame(k)
    assert server.published == 2
    frame(8)
    assert server.published == 3
    with pytest.raises(ValueError, match="execute_steps"):
        PolicyServer(context=ros.context, parameter_overrides=[
            Parameter("checkpoints", value=str(tmp_path / "toy")), Parameter("execute_steps", value=0)])


def test_parameters_are_validated_and_a_bad_one_never_takes_the_node_down(graph):
    server = graph["server"]
    for name, value, reason in (("policy", [1, 2], "not loaded"), ("rate", "abc", "must be a number"),
                                ("rate", -1.0, "positive"), ("execute_steps", -1, "at least 1"),
                                ("execute_steps", 1.5, "whole number"), ("chunk_blend", 1.0, "[0, 1)"),
                                ("checkpoints", "/elsewhere", "start-up only")):
        result = server.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful and reason in result.reason, (name, value, result.reason)
    assert server.active == "toy" and server.rate == 20.0 and server.execute_steps == 1
    assert server.set_parameters([Parameter("rate", value=5)])[0].successful and server.rate == 5.0


def test_task_inputs_beyond_the_limits_are_refused_and_memory_stays_flat(graph):
    """Instructions over max_instruction_chars and images over max_image_side are refused before they are decoded or
    copied; a hundred of them leave the server's resident memory where it was."""
    import time
    g = graph
    goal = g["io"].create_publisher(Image, "task/goal_image", qos.LATCHED)
    g["text"].publish(String(data="go"))
    wait_for(lambda: g["server"].task_inputs.take()[0].get("instruction") == "go", what="the instruction")
    huge = Image(height=1100, width=1100, encoding="rgb8", step=3300, data=bytes(3300) * 1100)   # 3.6 MB, over 1024

    def rss_mb() -> float:
        line = next(x for x in open("/proc/self/status") if x.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024
    inputs, seen = g["server"].task_inputs, []
    report = inputs.on_error
    inputs.on_error = lambda text: (seen.append(text), report(text))

    def burst(n):
        seen.clear()
        for k in range(n):
            (g["text"].publish(String(data="x" * 100_000)) if k % 2 else goal.publish(huge))
            time.sleep(0.01)
        # latched topics keep only the newest message, so a burst is not n deliveries: wait for both refusals
        wait_for(lambda: any("at most 1024 pixels a side" in t for t in seen)
                 and any("at most 1000 are accepted" in t for t in seen), timeout=30.0, what="refusals of both inputs")
    burst(10)                                     # the transport's own buffers for messages this size, allocated once
    rss = rss_mb()
    burst(100)
    assert g["server"].task_inputs.take()[0] == {"instruction": "go"}             # the last good task stands
    assert rss_mb() - rss < 20                    # 100 x 3.6 MB (or 100 kB of text) passed through; none was kept


def test_a_task_input_changed_mid_episode_goes_to_update_task_not_to_a_new_episode(graph):
    """The server tells the policy a task changed while the arm moves (policy.update_task), which a task-switching
    method answers without starting over; a new episode (enable) is a reset."""
    g = graph
    policy = g["server"].policies["toy"]
    resets, updates = [], []
    reset, update = policy.reset, policy.update_task
    policy.reset = lambda task: (resets.append(task.instruction), reset(task))[1]
    policy.update_task = lambda task: (updates.append(task.instruction), update(task))[1]
    g["text"].publish(String(data="go"))
    enable(g)
    pump(g, 20.0, until=lambda: len(g["chunks"]) > 1)
    assert resets == ["go"] and updates == []
    g["text"].publish(String(data="no, the other one"))
    pump(g, 20.0, until=lambda: updates == ["no, the other one"])
    assert resets == ["go", "no, the other one"]       # through update_task, whose default starts over
