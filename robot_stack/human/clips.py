"""Human clips: the hand performs a skill in the robot-free twin, filmed by the moving head camera.

A clip store holds what a web video gives a learner: RGB frames (`head_rgb`, 10 Hz) and the camera
intrinsics (episode metadata `calibration.head.k`), nothing else. What the twin knows besides (camera poses,
wrist poses, closure, when the hand grasps) goes to a separate truth store beside it (`<store>_truth`),
read only by the wrist-pose error model (the HaMeR stand-in) and by tests that measure the perception.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np

from robot_stack import transforms as tf
from robot_stack.human import skills
from robot_stack.human.hand import grasp_centre
from robot_stack.human.head import HeadConfig, head_path
from robot_stack.human.motion import WristPath, sample
from robot_stack.human.scene import HEAD, HumanScene
from robot_stack.sim.camera import CameraRenderer, extrinsics, intrinsics
from robot_stack.sim.tasks import make_task

CLIP_KIND = "human_clip"
IMAGE_STREAM = "head_rgb"
PHASES = ("approach", "grasp", "skill", "release", "retreat")


@dataclass
class ClipConfig:
    fps: float = 10.0
    height: int = 240
    width: int = 320
    head: HeadConfig = field(default_factory=HeadConfig)
    max_tries: int = 5          # redraws of a clip whose skill failed (a block that missed the bowl)


@dataclass
class Clip:
    frames: np.ndarray          # (T, H, W, 3) uint8
    k: np.ndarray               # (3, 3)
    camera_pose: np.ndarray     # (T, 4, 4) base_T_camera (optical frame), truth
    wrist: WristPath            # truth, base frame
    success: bool
    truth_meta: dict


def truth_path(store: str | Path) -> Path:
    store = Path(store)
    return store.with_name(store.name.removesuffix(".zarr") + "_truth" + (".zarr" if store.suffix == ".zarr" else ""))


def pose7(t: np.ndarray) -> np.ndarray:
    return np.concatenate((t[:3, 3], tf.mat_to_quat(t[:3, :3])))


def mat4(p: np.ndarray) -> np.ndarray:
    return tf.pose_to_mat(p[:3], p[3:7])


class _Holder:
    """Moves what the hand holds with the hand: the drawer along its slide, or a block rigidly."""

    def __init__(self, scene: HumanScene, skill: str, color: str | None):
        self.scene, self.skill, self.color = scene, skill, color
        self.grip: np.ndarray | None = None      # hand_T_object at the grasp (block) / grasp point x (drawer)

    def start(self, pos: np.ndarray, quat: np.ndarray) -> None:
        hand = tf.pose_to_mat(pos, quat)
        if self.skill.startswith("drawer"):
            self.grip = np.array([grasp_centre(pos, quat)[0], self.scene.drawer_opening])
        else:
            obj = tf.pose_to_mat(*self.scene.body_pose(f"{self.color}_block"))
            self.grip = np.linalg.inv(hand) @ obj

    def apply(self, pos: np.ndarray, quat: np.ndarray) -> None:
        if self.skill.startswith("drawer"):
            x0, opening0 = self.grip
            self.scene.set_drawer(float(np.clip(opening0 + x0 - grasp_centre(pos, quat)[0], 0.0, 0.16)))
        else:
            obj = tf.pose_to_mat(pos, quat) @ self.grip
            self.scene.set_free_body(f"{self.color}_block", obj[:3, 3], tf.mat_to_quat(obj[:3, :3]))


def make_clip(scene: HumanScene, renderer: CameraRenderer, skill: str, seed: int,
              cfg: ClipConfig | None = None) -> Clip:
    """One clip of `skill` on `seed` (the task's reset and the human's variation both come from it)."""
    if skill not in skills.SKILLS:
        raise ValueError(f"unknown skill {skill!r}; human clips exist for {', '.join(skills.SKILLS)}")
    cfg = cfg or ClipConfig()
    rng = np.random.default_rng(seed)
    scene.reset()
    task = make_task(skill)
    params = task.reset(scene, rng)
    scene.forward()
    keyframes = getattr(skills, skill)(scene, rng, params.color) if skill == "pick_place" \
        else getattr(skills, skill)(scene, rng)
    path = sample(keyframes, cfg.fps, rng)
    centre = scene.handle_pos() if skill.startswith("drawer") else \
        0.5 * (scene.block_pos(params.color) + scene.body_pose("bowl")[0])
    eye, head_quat = head_path(path.pos, centre, cfg.fps, rng, cfg.head)
    holder = _Holder(scene, skill, params.color)
    substeps = max(1, int(round(1.0 / cfg.fps / scene.model.opt.timestep)))
    frames, poses = [], []
    was_holding = False
    for i in range(len(path.times)):
        pos, quat, closure, holding = path.pos[i], path.quat[i], path.closure[i], bool(path.holding[i])
        if holding and not was_holding:
            holder.start(pos, quat)
        was_holding = holding
        for _ in range(substeps):      # free objects settle and fall (a released block) between frames
            scene.hand.set(pos, quat, closure)
            if holding:
                holder.apply(pos, quat)
            mujoco.mj_step(scene.model, scene.data)
        scene.hand.set(pos, quat, closure)
        if holding:
            holder.apply(pos, quat)
        scene.set_head(eye[i], head_quat[i])
        scene.forward()
        frames.append(renderer.render(HEAD))
        poses.append(extrinsics(scene, HEAD))
    for _ in range(50):                # let a dropped block come to rest before judging
        mujoco.mj_step(scene.model, scene.data)
    success = bool(task.success(scene))
    grasp_frame = int(np.argmax(path.holding)) if path.holding.any() else -1
    release_frame = int(len(path.holding) - np.argmax(path.holding[::-1])) if path.holding.any() else -1
    truth_meta = {"skill": skill, "seed": int(seed), "success": success, "grasp_frame": grasp_frame,
                  "release_frame": release_frame, "params": params.as_dict(),
                  "grasp_point": grasp_centre(path.pos[grasp_frame], path.quat[grasp_frame]).tolist()}
    return Clip(np.stack(frames), intrinsics(scene, HEAD, cfg.height, cfg.width), np.stack(poses), path,
                success, truth_meta)


def write_clip(store, truth, clip: Clip, fps: float) -> None:
    """One clip into the clip store (frames, intrinsics) and its truth into the truth store."""
    stamps = np.arange(len(clip.frames)) / fps
    meta = {"kind": CLIP_KIND, "skill": clip.truth_meta["skill"], "seed": clip.truth_meta["seed"], "fps": fps,
            "calibration": {"head": {"k": clip.k.tolist(), "height": int(clip.frames.shape[1]),
                                     "width": int(clip.frames.shape[2])}}}
    writer = store.begin_episode(meta)
    writer.append_many(IMAGE_STREAM, clip.frames, stamps)
    writer.commit(success=True)
    w = clip.wrist
    twriter = truth.begin_episode({"kind": CLIP_KIND + "_truth", **clip.truth_meta})
    twriter.append_many("camera_pose", np.stack([pose7(t) for t in clip.camera_pose]), stamps)
    twriter.append_many("wrist_pose", np.concatenate((w.pos, w.quat), axis=1), stamps)
    twriter.append_many("closure", w.closure[:, None], stamps)
    twriter.append_many("holding", w.holding[:, None].astype(np.uint8), stamps)
    twriter.append_many("phase", np.array([PHASES.index(p) for p in w.phase], dtype=np.uint8)[:, None], stamps)
    twriter.commit(success=clip.success)


def collect(skill: str, clips: int, seed: int, out: str | Path, cfg: ClipConfig | None = None,
            progress: bool = True) -> dict:
    """Write `clips` successful clips of `skill` to `out` (resumes a store that has fewer). Clip i is drawn
    from seed `seed + i * cfg.max_tries + try`, so a resumed run draws the same clips."""
    from tqdm import tqdm

    from robot_stack.data.store import EpisodeStore
    cfg = cfg or ClipConfig()
    if skill not in skills.SKILLS:
        raise ValueError(f"unknown skill {skill!r}; human clips exist for {', '.join(skills.SKILLS)}")
    out = Path(out)
    store = EpisodeStore.open(out, "a") if out.exists() else EpisodeStore.create(out, attrs={"kind": CLIP_KIND})
    tpath = truth_path(out)
    truth = EpisodeStore.open(tpath, "a") if tpath.exists() else EpisodeStore.create(tpath)
    if truth.num_episodes != store.num_episodes:
        raise ValueError(f"{out} has {store.num_episodes} clips but {tpath} {truth.num_episodes}: not a pair")
    scene = HumanScene()
    renderer = CameraRenderer(scene, cfg.height, cfg.width)
    done0, failed = store.num_episodes, 0
    start = time.monotonic()
    try:
        for i in tqdm(range(done0, clips), desc=f"human {skill}", unit="clip", disable=not progress,
                      initial=done0, total=clips):
            for attempt in range(cfg.max_tries):
                clip = make_clip(scene, renderer, skill, seed + i * cfg.max_tries + attempt, cfg)
                if clip.success:
                    write_clip(store, truth, clip, cfg.fps)
                    break
                failed += 1
            else:
                raise RuntimeError(f"{skill}: clip {i} failed {cfg.max_tries} times in a row")
    finally:
        renderer.close()
        store.close()
        truth.close()
    minutes = (time.monotonic() - start) / 60
    made = clips - done0
    return {"store": str(out), "truth": str(tpath), "skill": skill, "clips": clips, "new": made,
            "failed_redrawn": failed, "clips_per_minute": round(made / minutes, 2) if minutes > 0 else None}
