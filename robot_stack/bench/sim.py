"""`robot-stack bench sim`: twin physics+control speed and camera rendering rates."""
from __future__ import annotations

import json
import time
from pathlib import Path


from robot_stack.sim.camera import CameraRenderer
from robot_stack.sim.env import make_env
from robot_stack.sim.rollout import run_expert

RENDER_SIZES = ((128, 128), (224, 224), (480, 640))


def physics_real_time_factor(robot: str, episodes: int = 5) -> dict:
    """Simulated seconds per wall second while the expert runs pick_place (no rendering)."""
    env = make_env("pick_place", robot, cameras=(), terminate_on_success=False)
    sim_time, wall = 0.0, 0.0
    for seed in range(episodes):
        t0 = time.perf_counter()
        ep = run_expert(env, seed)
        wall += time.perf_counter() - t0
        sim_time += ep.steps * env.policy_dt
    rate = env.scene.spec.control_hz
    return {"robot": robot, "control_hz": rate, "sim_seconds": round(sim_time, 2), "wall_seconds": round(wall, 3),
            "real_time_factor": round(sim_time / wall, 2), "us_per_control_tick": round(1e6 * wall / (sim_time * rate), 1)}


def render_rates(robot: str = "panda", frames: int = 300) -> list[dict]:
    env = make_env("pick_place", robot, cameras=())
    env.reset(seed=0)
    out = []
    for h, w in RENDER_SIZES:
        renderer = CameraRenderer(env.scene, h, w)
        row = {"size": f"{w}x{h}"}
        for cam in ("front", "wrist"):
            renderer.render(cam)
            t0 = time.perf_counter()
            for _ in range(frames):
                img = renderer.render(cam)
            row[f"{cam}_fps"] = round(frames / (time.perf_counter() - t0), 1)
            assert img.shape == (h, w, 3)
        t0 = time.perf_counter()
        for _ in range(frames):
            renderer.render("front")
            renderer.render("wrist")
        row["front_plus_wrist_fps"] = round(frames / (time.perf_counter() - t0), 1)
        renderer.close()
        out.append(row)
    return out


def main(episodes: int = 5, json_path: str | None = None) -> dict:
    result = {"physics": [physics_real_time_factor(r, episodes) for r in ("panda", "ur5e")],
              "rendering": render_rates()}
    print("physics + operational-space control, expert pick_place, no rendering:")
    for row in result["physics"]:
        print(f"  {row['robot']:<6} {row['control_hz']:>5} Hz control: {row['real_time_factor']:6.2f}x real time "
              f"({row['us_per_control_tick']} us per control tick)")
    print("rendering (panda scene), frames per second:")
    for row in result["rendering"]:
        print(f"  {row['size']:>8}: front {row['front_fps']:7.1f}  wrist {row['wrist_fps']:7.1f}  "
              f"front+wrist pairs {row['front_plus_wrist_fps']:7.1f}")
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
