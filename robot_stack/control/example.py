"""Drive the twin's arm through the controller process, without ROS.

    python -m robot_stack.control.example [panda|ur5e]

Starts the controller process over the MuJoCo twin, streams a target 5 cm down at 20 Hz for a
second, closes the gripper, then stops sending and watches the watchdog hold the pose; prints
where the TCP went, the loop's figures and the safety events.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from robot_stack.config import load_config
from robot_stack.control import shm
from robot_stack.control.process import ControllerProcess, state_fields


def main(robot: str = "panda") -> int:
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(load_config("arm_node", [f"robot={robot}", "task=reach"]), resolve=True)
    arm = ControllerProcess(cfg)
    try:
        rows = arm.new_state_buffer()
        last = 0

        def newest():
            nonlocal last
            while True:
                n, last, _ = arm.states_since(last, rows)
                if n:
                    return state_fields(arm.layout, rows[n - 1])
                time.sleep(0.005)

        start = newest()
        goal = start["ee_pos"] + [0.0, 0.0, -0.05]
        quat = start["ee_quat"].copy()
        print(f"TCP at {np.round(start['ee_pos'], 4).tolist()}; commanding {np.round(goal, 4).tolist()}")
        for _ in range(20):
            arm.set_target(goal, quat, time.time())
            time.sleep(0.05)
        arm.set_gripper(1.0)
        time.sleep(0.5)
        reached = newest()
        fields, counts, last_event = arm.status()
        print(f"TCP at {np.round(reached['ee_pos'], 4).tolist()} ({1000 * np.linalg.norm(reached['ee_pos'] - goal):.1f}"
              f" mm from the goal), mode {shm.MODES[int(fields[shm.S_MODE])]}, ticks {int(fields[shm.S_TICKS])}, "
              f"late {int(fields[shm.S_MISSED])}, SCHED_FIFO {bool(fields[shm.S_FIFO])}")
        latency = arm.shared.sample_values(2)
        print(f"target stamp -> controller tick: p50 {1e3 * np.percentile(latency, 50):.2f} ms, "
              f"p99 {1e3 * np.percentile(latency, 99):.2f} ms over {len(latency)} targets")
        events = {k: int(n) for k, n in zip(shm.EVENT_KINDS, counts) if n}
        print(f"safety events {events}; last: {last_event!r}")
    finally:
        arm.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:2]))
