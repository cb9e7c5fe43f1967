"""Training the affordance heatmap on human clips (VRB's contact points): first frame -> where the hand touched.

Each usable clip gives one example: its first frame (resized to `image_hw`) and the contact pixel the
perception projected into it (`contact_px` of the wrist store). The checkpoint is a folder with
`model.safetensors` and `config.json`, like the policies'.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from robot_stack.human.clips import IMAGE_STREAM
from robot_stack.policies.zeromimic.grasp import AffordanceNet, affordance_loss, heatmap_target
from robot_stack.policies.zeromimic.train import check_human_only, resize
from robot_stack.training import load_weights, write_checkpoint


def affordance_examples(clips_path, wrist_path, image_hw: tuple) -> tuple[np.ndarray, np.ndarray, list[int]]:
    from robot_stack.data.store import EpisodeStore
    clips, wrist = EpisodeStore.open(clips_path), EpisodeStore.open(wrist_path)
    check_human_only(clips)
    images, pixels, read = [], [], []
    for e in range(wrist.num_episodes):
        meta = wrist.metadata(e)
        frame = clips.read_stream(int(meta["clip"]), IMAGE_STREAM, rows=slice(0, 1))["data"]
        h, w = frame.shape[1:3]
        images.append(resize(frame, image_hw)[0])
        pixels.append(np.array(meta["contact_px"]) * (image_hw[1] / w))
        read.append(int(meta["clip"]))
    return np.stack(images), np.stack(pixels), read


def zoom_and_shift(images: np.ndarray, pixels: np.ndarray, image_hw: tuple, rng: np.random.Generator
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image cut to a random window of 60-100% of its side at a random place and resized back, the label
    moved with it: the robot's camera sees the scene larger and elsewhere in the frame than a head does."""
    import cv2
    h, w = image_hw
    out_x, out_t = [], []
    for img, uv in zip(images, pixels):
        s = rng.uniform(0.6, 1.0)
        ch, cw = int(h * s), int(w * s)
        y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        if not (x0 + 4 <= uv[0] < x0 + cw - 4 and y0 + 4 <= uv[1] < y0 + ch - 4):   # the contact must stay in view
            s, ch, cw, y0, x0 = 1.0, h, w, 0, 0
        window = np.ascontiguousarray(img[y0:y0 + ch, x0:x0 + cw])
        out_x.append(cv2.resize(window, (w, h), interpolation=cv2.INTER_AREA))
        out_t.append(_target((np.asarray(uv) - [x0, y0]) / s, (h // 4, w // 4)))
    x = (torch.as_tensor(np.stack(out_x)).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.25
    return x, torch.as_tensor(np.stack(out_t))


def train_affordance(clips_path, wrist_path, out, image_hw=(96, 128), width: int = 16, steps: int = 400,
                     lr: float = 3e-3, seed: int = 0, augment: bool = True) -> dict:
    torch.manual_seed(seed)
    images, pixels, read = affordance_examples(clips_path, wrist_path, tuple(image_hw))
    hm = (image_hw[0] // 4, image_hw[1] // 4)
    targets = np.stack([_target(p, hm) for p in pixels])
    x = (torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.25
    t = torch.as_tensor(targets)
    net = AffordanceNet(width)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        idx = rng.choice(len(x), min(16, len(x)), replace=False)
        xb, tb = zoom_and_shift(images[idx], pixels[idx], image_hw, rng) if augment else (x[idx], t[idx])
        loss = affordance_loss(net(xb), tb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        final = float(affordance_loss(net(x), t))
    doc = {"format": 1, "policy": "zeromimic_affordance", "config": {"image_hw": list(image_hw), "width": width},
           "stats": {}, "manifest": {"clips": str(clips_path), "wrist": str(wrist_path), "human_clips_read": read,
                                     "robot_episodes_read": 0, "steps": steps, "augment": augment,
                                     "final_loss": final}}
    write_checkpoint(out, net, doc)
    return {"checkpoint": str(out), "examples": len(x), "final_loss": final}


def _target(uv: np.ndarray, hm: tuple) -> np.ndarray:
    """A Gaussian over a (h, w) heatmap of 4-px cells around image pixel uv."""
    side = max(hm)
    square = heatmap_target(uv, side)
    out = square[: hm[0], : hm[1]]
    return (out / max(out.sum(), 1e-9)).astype(np.float32)


def load_affordance(path) -> AffordanceNet:
    doc = json.loads((Path(path) / "config.json").read_text())
    if doc.get("policy") != "zeromimic_affordance":
        raise ValueError(f"{path}: not a ZeroMimic affordance checkpoint")
    net = AffordanceNet(int(doc["config"]["width"]))
    load_weights(net, Path(path) / "model.safetensors")
    net.image_hw = tuple(doc["config"]["image_hw"])
    return net.eval()
