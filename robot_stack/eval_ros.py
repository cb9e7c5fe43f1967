"""The ROS 2 backend of `robot-stack eval`: episodes through the live graph, in real time.

launch/policy.launch.yaml runs in a child process (arm_node over the twin, front and
wrist twin cameras, policy_server with the checkpoint). This process joins the graph with
an ExpertCommander used only as the twin's episode monitor (`sim/reset`, the mirrored
scene for the success predicate) and a Viewer for video and /diagnostics. Per episode:
pause the server, reset the twin to the next seed, publish the episode's task on every
registered conditioning kind's topics (the chosen kind's fields; the others cleared), enable the server (the policy resets with the first frames after that), watch for success
or the task's step limit at 10 Hz, pause.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from tqdm import tqdm

from robot_stack.child_graph import BackgroundSpin, call, stop
from robot_stack.supervision import start_graph
from robot_stack.video import write_mp4


def run_ros(checkpoint: str, policy, task: str, robot: str, seeds: list[int], conditioning: str, options: dict,
            video: str | None, realtime: bool = True,
            execute_steps: int = 1, chunk_blend: float = 0.0) -> tuple[list[dict], dict]:
    import rclpy
    from std_srvs.srv import SetBool

    from robot_stack.bringup_demo import Viewer
    from robot_stack.evaluate import episode_task
    from robot_stack.nodes.expert_commander import ExpertCommander
    from robot_stack.policies.conditioning import NONE, EpisodeContext, get_kind
    from robot_stack.ros.task_topics import task_publishers

    size = policy.data_spec().image_size
    cmd = [sys.executable, "-m", "robot_stack.cli", "launch", "policy.launch.yaml",
           f"checkpoints:={Path(checkpoint).resolve()}", f"robot:={robot}", f"task:={task}", f"seed:={seeds[0]}",
           f"image_width:={size}", f"image_height:={size}", f"realtime:={str(realtime).lower()}",
           f"execute_steps:={execute_steps}", f"chunk_blend:={chunk_blend}", f"overrides:=chunk_blend={chunk_blend}"]
    print(f"starting the graph: robot-stack launch {' '.join(cmd[4:])}", flush=True)
    graph = start_graph(cmd)            # its own session, and taken down if this process dies
    rclpy.init()
    monitor = ExpertCommander(robot, task)
    viewer = Viewer(rclpy.create_node("eval_viewer"))
    publish_task = task_publishers(monitor)
    enable = monitor.create_client(SetBool, "policy_server/enable")
    spin = BackgroundSpin(monitor, viewer.node)
    set_enabled = lambda on: call(enable, SetBool.Request(data=on), idempotent=True)     # noqa: E731
    records, diagnostics, cache = [], {}, {}
    try:
        monitor.wait_for_graph(timeout=90.0)
        deadline = time.monotonic() + 30.0
        while viewer.frame() is None:           # cameras publishing and discovered, as the server needs them
            if time.monotonic() > deadline or graph.poll() is not None:
                raise RuntimeError("no camera images from the graph within 30 s")
            time.sleep(0.05)
        set_enabled(False)
        for expected in tqdm(seeds, desc=f"eval {policy.name} {task} (ros)", unit="ep"):
            if graph.poll() is not None:
                raise RuntimeError(f"the graph exited with code {graph.returncode}")
            set_enabled(False)
            seed = monitor.reset()
            if seed != expected:
                raise RuntimeError(f"the twin started seed {seed}, expected {expected}")
            params = monitor.task.params.as_dict()
            ctx = EpisodeContext(seed=seed, task=task, robot=robot, image_size=size, params=params, options=options,
                                 goal_camera=policy.data_spec().goal_camera, spec=policy.data_spec(), cache=cache)
            episode = episode_task(conditioning, ctx)    # the server takes the start frames itself, once enabled
            text = episode.values().get("instruction")
            publish_task(episode, monitor.now())
            time.sleep(0.15)
            set_enabled(True)
            frames, success, touched, steps = [], False, False, 0
            gripper, manipulated = monitor.scene.gripper_geoms, monitor.task.manipulated_geoms(monitor.scene)
            start = next_tick = time.monotonic()
            kind, phase = (get_kind(conditioning) if conditioning != NONE else None), "pre_contact"
            for steps in range(1, monitor.task.max_steps + (kind.extra_steps(ctx) if kind else 0) + 1):
                next_tick += monitor.dt
                time.sleep(max(0.0, next_tick - time.monotonic()))
                if video and viewer.frame() is not None:
                    frames.append(viewer.frame())
                monitor._mirror()
                touching = monitor.scene.touching(gripper, manipulated)
                touched |= touching
                phase = "in_contact" if touching else ("post_contact" if phase == "in_contact" else phase)
                task_done = monitor.task.success(monitor.scene)
                judged = kind.success(ctx, monitor.scene, monitor.task) if kind else None
                if task_done if judged is None else judged:
                    success = True
                    break
                change = kind.during_episode(ctx, steps, {"contact_phase": phase, "success": task_done,
                                                         "status": viewer.server}) if kind else None
                if change:                               # the task changes while the arm moves (a switch)
                    episode = episode.replace(**change)
                    publish_task(episode, monitor.now())
            set_enabled(False)
            if video and frames:
                write_mp4(Path(video) / f"{policy.name}_{task}_seed{seed}_ros.mp4", frames, fps=10)
            records.append({"seed": seed, "success": success, "touched": touched, "steps": steps, "instruction": text,
                            "params": params, "seconds": time.monotonic() - start, **(kind.record(ctx) if kind else {})})
        time.sleep(1.2)                         # one more 1 Hz diagnostics message, covering the last episode
        diagnostics = dict(viewer.diagnostics)
    finally:
        spin.close()
        stop(graph)
    return records, diagnostics
