"""Training ZeroMimic on human clips only: `robot-stack human train --skill S --clips STORE`.

The data are a clip store (frames, intrinsics) and its wrist store (`robot-stack human perceive`: wrist
poses in the first frame's camera, grasp and release frames). A sample is a frame of the post-grasp
segment [grasp, release): the frame, the clip's last frame as the goal, the wrist pose, and the next 10
wrist poses (steps past the release are padding, repeating the last pose, masked out of the loss). Frames
are resized to the policy's image size (3:4, as the clips and the robot's camera).

It uses the project's one training loop and checkpoint format (robot_stack.training.fit, EMA, resume).
Robot stores are refused: the training stores must be human clips (kind `human_clip`, no robot streams),
and the manifest records that zero robot episodes were read.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from robot_stack.human.clips import CLIP_KIND, IMAGE_STREAM
from robot_stack.policies.base import config_from_dict
from robot_stack.policies.zeromimic import poses
from robot_stack.policies.zeromimic.config import ZeroMimicConfig
from robot_stack.policies.zeromimic.policy import ZeroMimicPolicy
from robot_stack.training import EMA, fit, git_commit, load_state, minibatches

ROBOT_STREAMS = ("joint_pos", "ee_pose", "action_pose", "action_gripper", "gripper", "tick")


def resize(frames: np.ndarray, hw: tuple) -> np.ndarray:
    """Frames resized (area) to (height, width)."""
    import cv2
    return np.stack([cv2.resize(np.ascontiguousarray(f), (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
                     for f in frames])


def check_human_only(store) -> None:
    """Refuse a store that is not human clips: a robot episode must never reach ZeroMimic's training."""
    robot = sorted(set(store.streams) & set(ROBOT_STREAMS))
    if robot or store.root.attrs.get("kind") != CLIP_KIND:
        raise ValueError(f"{store.path}: not a human clip store (kind {store.root.attrs.get('kind')!r}, robot "
                         f"streams {robot}); ZeroMimic trains on human video only")
    for k in range(store.num_episodes):
        if store.metadata(k).get("kind") != CLIP_KIND:
            raise ValueError(f"{store.path}: episode {k} is not a human clip")


class HumanClipData:
    """Every post-grasp frame of the usable clips of one skill, in memory."""

    def __init__(self, clips_path: str | Path, wrist_path: str | Path, skill: str, image_hw: tuple, chunk: int,
                 mode: str, episodes: list[int] | None = None):
        from robot_stack.data.store import EpisodeStore
        clips, wrist = EpisodeStore.open(clips_path), EpisodeStore.open(wrist_path)
        check_human_only(clips)
        self.clips_read: list[int] = []
        images, goals, pose_in, actions, pads, owner = [], [], [], [], [], []
        eps = range(wrist.num_episodes) if episodes is None else episodes
        for e in eps:
            meta = wrist.metadata(e)
            if meta["skill"] != skill:
                raise ValueError(f"{wrist_path} episode {e} is {meta['skill']!r}, not {skill!r}")
            clip = int(meta["clip"])
            frames = clips.read_stream(clip, IMAGE_STREAM)["data"]
            self.clips_read.append(clip)
            vec = wrist.read_stream(e, "wrist_pose")["data"]
            mats = np.array([poses_from_vec(v) for v in vec])
            g, r = int(meta["grasp_frame"]), int(meta["release_frame"])
            small = resize(frames[list(range(g, r)) + [len(frames) - 1]], image_hw)
            for j, t in enumerate(range(g, r)):
                future = [min(t + 1 + k, r - 1) for k in range(chunk)]
                pads.append([t + 1 + k > r - 1 for k in range(chunk)])
                actions.append(poses.encode_chunk(mats[t], mats[future], mode))
                pose_in.append(poses.pose_features(mats[t]))
                owner.append(len(goals))
            images.append(small[:-1])
            goals.append(small[-1])
        if not owner:
            raise ValueError(f"{wrist_path}: no post-grasp frames to train on")
        self.images = np.concatenate(images)
        self.goals = np.stack(goals)
        self.owner = np.array(owner)
        self.pose = np.stack(pose_in).astype(np.float32)
        self.action = np.stack(actions).astype(np.float32)
        self.pad = np.array(pads)

    def __len__(self) -> int:
        return len(self.pose)

    def stats(self) -> dict:
        keep = ~self.pad
        a = self.action[keep]
        return {"pose": {"mean": self.pose.mean(0).tolist(), "std": (self.pose.std(0) + 1e-3).tolist()},
                "action": {"mean": a.mean(0).tolist(), "std": (a.std(0) + 1e-3).tolist()}}

    def batch(self, idx) -> dict:
        return {"image": torch.from_numpy(self.images[idx]),
                "goal_image": torch.from_numpy(self.goals[self.owner[idx]]),
                "pose": self.pose[idx], "action": self.action[idx], "action_is_pad": self.pad[idx]}


def poses_from_vec(v: np.ndarray) -> np.ndarray:
    from robot_stack import transforms as tf
    return tf.pose_to_mat(v[:3], v[3:7])


def train(skill: str, clips: str | Path, wrist: str | Path, out: str | Path, steps: int = 20000,
          batch_size: int = 32, overrides: dict | None = None, max_minutes: float | None = None, seed: int = 0,
          threads: int = 1, progress: bool = True, command: str = "") -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    config = config_from_dict(ZeroMimicConfig, {"skill": skill, **(overrides or {})}, "zeromimic")
    data = HumanClipData(clips, wrist, skill, config.image_hw, config.chunk_size, config.action_mode)
    policy = ZeroMimicPolicy(config, data.stats())
    opt = torch.optim.AdamW(policy.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    ema = EMA(policy, config.ema_decay)
    out = Path(out)
    cfg = OmegaConf.create({"out": str(out), "steps": steps, "log_every": 50, "val_every": 10 ** 9,
                            "save_every": 250, "max_minutes": max_minutes, "progress": progress})
    step, history = load_state(out, policy, ema, opt)
    manifest = {"command": command, "skill": skill, "clips": str(clips), "wrist": str(wrist),
                "human_clips_read": sorted(set(data.clips_read)), "robot_episodes_read": 0,
                "samples": len(data), "commit": git_commit(), "steps": steps, "batch_size": batch_size}
    rng = np.random.default_rng(seed + step)
    batches = minibatches(len(data), batch_size, rng)
    t0 = time.time()
    step, history = fit(cfg, policy, ema, opt, lambda: policy.loss(data.batch(next(batches))),
                        lr=lambda s: config.lr, clip_grad=10.0, start=(step, history),
                        save=lambda path, s: ema.model.save(path, extra={"manifest": {**manifest, "step": s}}),
                        title=f"zeromimic {skill}", desc=f"train zeromimic {skill}")
    final = {"checkpoint": str(out / "checkpoint"), "steps": step, "minutes": (time.time() - t0) / 60,
             "final_loss": history[-1]["loss"] if history else None, "samples": len(data),
             "clips": len(set(data.clips_read)), "robot_episodes_read": 0}
    (out / "summary.json").write_text(json.dumps(final, indent=1))
    return final
