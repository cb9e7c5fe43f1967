"""expert_commander: drives the twin's arm with a task's scripted expert, through topics only.

It sees what any client of the graph sees: the simulator state the arm node publishes
(`sim/state`), which it mirrors into its own scene to run the expert and the task's
success predicate, and it commands `arm/target_pose` and `arm/gripper_cmd` at policy
rate. Episodes start with the arm node's `sim/reset` service, whose seed fixes the
task's parameters.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from rclpy.node import Node
from std_msgs.msg import Float64, Float64MultiArray, String
from std_srvs.srv import Trigger
from geometry_msgs.msg import PoseStamped

from robot_stack.nodes.common import COMMAND_SOURCE_PRIORITY, thread_priority
from robot_stack.ros import convert, qos
from robot_stack.ros.service_call import RESET_RESEND_AFTER, call_service
from robot_stack.sim.scene import Scene
from robot_stack.sim.tasks import make_task


@dataclass
class EpisodeReport:
    seed: int
    instruction: str
    success: bool
    steps: int
    seconds: float
    phases: list[str] = field(default_factory=list)


class ExpertCommander(Node):
    def __init__(self, robot: str, task: str, policy_hz: float = 10.0, **node_kwargs):
        super().__init__("expert_commander", **node_kwargs)
        self.scene = Scene(robot)
        self.task = make_task(task)
        self.dt = 1.0 / policy_hz
        self._state: np.ndarray | None = None
        self._lock = threading.Lock()
        self.create_subscription(Float64MultiArray, "sim/state", self._on_state, qos.SENSOR)
        self.pub_target = self.create_publisher(PoseStamped, "arm/target_pose", qos.COMMAND)
        self.pub_gripper = self.create_publisher(Float64, "arm/gripper_cmd", qos.RELIABLE)
        self.pub_instruction = self.create_publisher(String, "task/instruction", qos.LATCHED)
        self.reset_client = self.create_client(Trigger, "sim/reset")

    def _on_state(self, msg: Float64MultiArray) -> None:
        with self._lock:
            self._state = np.asarray(msg.data)

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def wait_for_graph(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        if not self.reset_client.wait_for_service(timeout_sec=timeout):
            raise RuntimeError("no sim/reset service: is arm_node running with the mujoco driver?")
        while self._state is None:
            if time.monotonic() > deadline:
                raise RuntimeError("no simulator state on sim/state")
            time.sleep(0.01)

    def _mirror(self) -> float:
        """Copy the latest simulator state into the mirror scene; returns its stamp."""
        with self._lock:
            state = self._state
        return self.scene.load_state_message(state)   # positions and contacts, for the expert and the predicate

    def reset(self) -> int:
        result = call_service(self.reset_client, timeout=15.0, resend_after=RESET_RESEND_AFTER)
        if not result.success:
            raise RuntimeError(f"sim/reset failed: {result.message}")
        seed = int(result.message.split("=")[1])
        self.task.reset(Scene(self.scene.spec), np.random.default_rng(seed))    # same seed, same parameters
        time.sleep(0.1)                                                          # a state after the reset
        return seed

    def run_episode(self, max_steps: int | None = None, on_start=None) -> EpisodeReport:
        """Reset, announce the instruction, call `on_start()` (e.g. start recording), run the expert. The calling
        thread streams the commands: it takes a command source's real-time priority for the episode, where
        permitted."""
        with thread_priority(self.get_logger(), COMMAND_SOURCE_PRIORITY, "scripted commander"):
            return self._run_episode(max_steps, on_start)

    def _run_episode(self, max_steps: int | None, on_start) -> EpisodeReport:
        seed = self.reset()
        self._mirror()
        rng = np.random.default_rng(seed)
        instruction = self.task.instruction(rng)
        self.pub_instruction.publish(String(data=instruction))
        if on_start is not None:
            on_start()
        expert = self.task.expert(self.scene, np.random.default_rng(seed + 1), self.dt)
        phases, touching_ever = [], False
        start, next_tick, steps, success = time.monotonic(), time.monotonic(), 0, False
        for steps in range(1, (max_steps or self.task.max_steps) + 1):
            self._mirror()
            action = expert.act(self.scene)
            self.pub_target.publish(convert.pose_msg(action[:3], action[3:7], self.now()))
            self.pub_gripper.publish(Float64(data=float(action[7])))
            next_tick += self.dt
            time.sleep(max(0.0, next_tick - time.monotonic()))
            self._mirror()
            touching = self.scene.touching(self.scene.gripper_geoms, self.task.manipulated_geoms(self.scene))
            touching_ever |= touching
            phases.append("in_contact" if touching else "post_contact" if touching_ever else "pre_contact")
            if self.task.success(self.scene):
                success = True
                break
        return EpisodeReport(seed, instruction, success, steps, time.monotonic() - start, phases)
