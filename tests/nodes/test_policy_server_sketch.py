"""The sketch on the graph: /task/sketch reaches an RT-Trajectory policy through the server; a bad sketch is refused."""
import numpy as np
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import SetBool
from geometry_msgs.msg import PoseStamped
from trajectory_msgs.msg import MultiDOFJointTrajectory

from robot_stack.nodes.policy_server import PolicyServer
from robot_stack.ros import convert, qos
from robot_stack.ros.service_call import RESEND_AFTER, call_service
from tests.nodes.conftest import wait_for
from tests.policies.test_rt_trajectory import tiny


def test_a_sketch_on_task_sketch_conditions_the_served_policy_and_a_black_one_is_refused(ros, tmp_path):
    import time
    tiny().save(tmp_path / "rtt")
    server = ros.add(PolicyServer(context=ros.context, parameter_overrides=[
        Parameter("checkpoints", value=str(tmp_path / "rtt")), Parameter("rate", value=20.0)]))
    io = ros.node("io")
    chunks, errors = [], []
    io.create_subscription(MultiDOFJointTrajectory, "arm/action_chunk", chunks.append, qos.COMMAND)
    image = io.create_publisher(Image, "front/color/image_raw", qos.IMAGE)
    pose = io.create_publisher(PoseStamped, "arm/ee_pose", qos.SENSOR)
    grip = io.create_publisher(JointState, "arm/gripper", qos.SENSOR)
    sketch = io.create_publisher(Image, "task/sketch", qos.LATCHED)
    enable = io.create_client(SetBool, "policy_server/enable")
    report = server.task_inputs.on_error
    server.task_inputs.on_error = lambda text: (errors.append(text), report(text))

    def feed(seconds, until):
        end = time.monotonic() + seconds
        while time.monotonic() < end and not until():
            t = server.now()
            image.publish(convert.image_msg(np.full((32, 32, 3), 90, np.uint8), t, "front"))
            pose.publish(convert.pose_msg(np.array([0.4, 0.0, 0.2]), np.array([1.0, 0, 0, 0]), t + 0.004))
            grip.publish(convert.joint_state_msg(["gripper"], [0.08], [0.0], None, t))
            time.sleep(0.05)
        assert until()

    drawn = np.zeros((32, 32, 3), np.uint8)
    drawn[10:12, 5:25, 0] = 200
    sketch.publish(convert.image_msg(drawn, server.now(), "front"))
    call_service(enable, SetBool.Request(data=True), timeout=10.0, resend_after=RESEND_AFTER)
    feed(20.0, lambda: len(chunks) > 2)
    assert server.policy.task.sketch is not None and server.policy.task.sketch.sum() == drawn.sum()
    sketch.publish(convert.image_msg(np.zeros((32, 32, 3), np.uint8), server.now(), "front"))   # all black
    wait_for(lambda: any("all black" in e for e in errors), what="the refusal")
    assert server.task_inputs.take()[0]["sketch"].sum() == drawn.sum()            # the last good sketch stands
