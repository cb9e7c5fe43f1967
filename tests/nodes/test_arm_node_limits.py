"""arm_node's joint-margin check: a step that drives a joint further into its margin is held, one out of it is not."""
import numpy as np
from rclpy.parameter import Parameter

from robot_stack.nodes.arm_node import ArmNode
from robot_stack.types import RobotState


def test_a_step_into_a_joint_margin_is_refused_and_one_out_of_it_is_taken(ros):
    node = ros.add(ArmNode(context=ros.context, start_loop=False, parameter_overrides=[
        Parameter("driver", value="mujoco"), Parameter("realtime", value=False)]))
    kin, spec = node.kinematics, node.spec
    for j in (1, 3, 5):                                   # shoulder, elbow, wrist
        q = np.array(spec.q_home, dtype=float)
        q[j] = node.safety.q_max[j] - 0.5 * node.limits.joint_margin
        assert list(node.safety.joints_near_limits(q)) == [j]
        state = RobotState(stamp=0.0, q=q, dq=np.zeros_like(q), ee_pos=np.zeros(3), ee_quat=np.array([0, 0, 0, 1.0]),
                           gripper_width=0.08, wrench=np.zeros(6), tau=np.zeros_like(q), mode="ok")

        def pose(qj):
            moved = q.copy()
            moved[j] = qj
            kin.set_q(moved)
            return kin.ee_pose()
        node.setpoint = pose(q[j])
        assert node._pushes_into_joint_limit(state, *pose(q[j] + 0.002))       # further toward q_max
        assert not node._pushes_into_joint_limit(state, *pose(q[j] - 0.002))   # back out of the margin
