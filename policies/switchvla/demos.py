"""Ordinary pick_place demonstrations, one per block of each scene: what SwitchVLA's sample builder pairs.

For each seed the twin's scene is set up once per block colour and the scripted expert puts that block in the
bowl: every episode is a plain single-task demonstration (one instruction, one object, no switch), and the
episodes of one seed share a `layout` in their metadata, so the builder can pair an observation of one with
the instruction and approach of another (policies/switchvla/samples.py). The other blocks of a pick_place
scene are its clutter, so the layout is the same whichever block the instruction names.

    python -m robot_stack.policies.switchvla.demos --episodes 100 --seed 1000 --out outputs/switchvla/data/pp3.zarr
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from robot_stack.sim.env import TwinEnv
from robot_stack.sim.tasks.base import TaskParams

SWITCH_TASKS = ("pick_place",)


class RetargetedEnv(TwinEnv):
    """The twin whose reset keeps the seed's scene and makes the task about block `color` (None: the seed's own)."""

    color: str | None = None

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        if self.color is not None and self.color != self.task.params.color:
            p = self.task.params
            self.task.params = TaskParams(object=f"{self.color} block", color=self.color, target=p.target,
                                          extra=dict(p.extra))
            self.instruction = self.task.instruction(self._rng)
            info = self._info()
        return obs, info


def layout_key(task: str, robot: str, seed: int) -> str:
    return f"{task}/{robot}/seed{seed}"


def collect(out: str, episodes: int, seed: int, robot: str = "panda", task: str = "pick_place",
            image_size: int = 128, position_noise: float = 0.0, overwrite: bool = False) -> dict:
    """`episodes` seeds from `seed`, every block of each: up to 3 * episodes demonstrations (failures dropped)."""
    from robot_stack.data import EpisodeStore
    from robot_stack.sim.expert_data import record_expert_episode
    from robot_stack.sim.scene import BLOCKS

    if task not in SWITCH_TASKS:
        raise ValueError(f"sibling demos exist for {SWITCH_TASKS}, not {task!r}")
    env = RetargetedEnv(task, robot=robot, image_size=image_size)
    attrs = {"source": "scripted expert, every block per scene", "task": task, "robot": robot, "image_size": image_size}
    store = EpisodeStore.create(out, overwrite=overwrite, attrs=attrs)
    kept, failed = 0, []
    try:
        for s in range(seed, seed + episodes):
            for color in BLOCKS:
                env.color = color
                writer = store.begin_episode()
                meta = record_expert_episode(env, writer, s, position_noise)
                if not meta["success"]:
                    writer.discard()
                    failed.append([s, color])
                    continue
                writer.commit(success=meta.pop("success"), layout=layout_key(task, robot, s), **meta)
                kept += 1
    finally:
        store.close()
        env.close()
    return {"store": out, "episodes": kept, "seeds": [seed, seed + episodes - 1], "failed": failed}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--episodes", type=int, default=100, help="scenes (seeds); each gives one demo per block")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--robot", default="panda")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--position-noise", type=float, default=0.0)
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args(argv)
    print(json.dumps(collect(a.out, a.episodes, a.seed, a.robot, image_size=a.image_size,
                             position_noise=a.position_noise, overwrite=a.overwrite)))
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    raise SystemExit(main())
