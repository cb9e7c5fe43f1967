"""GRIFPolicy: behaviour cloning conditioned on a task embedding z from either a goal image or an
instruction, with the two encoders aligned contrastively so language inherits what goal images teach.

Training (Myers et al.): L = BC(f(s0, g), all rows) + BC(h(l), labelled rows) + align_weight * InfoNCE(f, h)
over the labelled rows. Labelled rows use the episode's final frame as g (batch key
"final_goal_image" when the trainer provides it); unlabelled rows use the hindsight goal.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from robot_stack.policies import actions as act_space
from robot_stack.policies.augment import random_shift
from robot_stack.policies.base import DataSpec, Policy, register
from robot_stack.policies.errors import BadObservation, CheckpointMismatch, MissingConditioning
from robot_stack.policies.grif import language
from robot_stack.policies.grif.config import GRIFConfig
from robot_stack.policies.grif.losses import alignment_loss
from robot_stack.policies.grif.model import FiLMPolicy, ImageTaskEncoder, LanguageProjection
from robot_stack.types import Observation, Task


def as_uint8_images(image) -> torch.Tensor:
    """uint8 (..., H, W, C), numpy or torch -> uint8 tensor (N, H, W, C)."""
    if not torch.is_tensor(image):
        image = np.asarray(image)
        image = np.ascontiguousarray(image) if image.flags.writeable else image.copy()   # e.g. ROS buffers
    x = image if torch.is_tensor(image) else torch.from_numpy(image)
    return x.reshape(-1, *x.shape[-3:])


def to_float_image(image, device) -> torch.Tensor:
    """uint8 (..., H, W, C) -> float (N, C, H, W) in [0, 1]."""
    return as_uint8_images(image).to(device).permute(0, 3, 1, 2).float().div_(255.0)


@register
class GRIFPolicy(Policy):
    """GRIF with a frozen MiniLM instruction encoder; the current frame of one camera ("front"), no proprio.

    Differences from the paper, each for this stack: MiniLM instead of CLIP's text encoder (ships
    offline); small ResNets instead of ResNet-34s (CPU training); a short action chunk instead of
    one step; everything trained jointly in one loss (as METHODS.md states it). Options beyond the
    paper: the finger width (`gripper_input`) and a wrist camera (`cameras`) as policy inputs.
    """

    name = "grif"
    conditioning = frozenset({"goal_image", "instruction"})
    Config = GRIFConfig
    deploy_keys = ("prefer",)

    def __init__(self, config: GRIFConfig | None = None, stats: dict | None = None):
        super().__init__(config or GRIFConfig(), stats)
        c = self.config
        self.task_encoder = ImageTaskEncoder(c.task_channels, c.task_dim, c.blocks_per_stage, c.stem)
        self.language_projection = LanguageProjection(c.text_dim, c.lang_hidden, c.task_dim)
        self.policy = FiLMPolicy(c.channels, c.task_dim, c.film_hidden, c.head_hidden, c.action_horizon,
                                 act_space.ACTION_DIM, c.image_size, c.pooling, c.blocks_per_stage, c.stem,
                                 extra_dim=int(c.gripper_input), keypoints=c.keypoints, views=len(c.cameras))
        self.log_tau = torch.nn.Parameter(torch.tensor(math.log(c.tau_init)))
        self.to(memory_format=torch.channels_last)   # matches the NHWC camera frames; ~15% faster convs on CPU
        self._z: torch.Tensor | None = None   # the episode's task embedding (reset, or the first act)

    def data_spec(self) -> DataSpec:
        """The current frame of each camera. action_horizon > 1 is ours: the paper predicts a single step;
        a short chunk executes more smoothly at 10 Hz. Unlabelled goals: final frame w.p. 0.5, else a
        uniform future frame (the paper's relabelling)."""
        return DataSpec(cameras=self.config.cameras, image_size=self.config.image_size, obs_horizon=1,
                        action_horizon=self.config.action_horizon, goal_camera="front", goal_final_prob=0.5,
                        action_norm="meanstd")

    # --- encoders ---------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        return self.log_tau.device

    def tau(self) -> torch.Tensor:
        return self.log_tau.clamp(math.log(self.config.tau_min), math.log(self.config.tau_max)).exp()

    def _float_images(self, images) -> torch.Tensor:
        """uint8 images -> float (N, 3, H, W), randomly shifted in training mode."""
        x = as_uint8_images(images).to(self._device())   # shift on the device: one gather on a GPU
        if self.training:
            x = random_shift(x, self.config.aug_pad)
        return to_float_image(x, self._device())

    def _float_task_pair(self, s0, goal) -> tuple[torch.Tensor, torch.Tensor]:
        """Start and goal frames as float (N, 3, H, W) each, moved by one random shift per row in training.
        f(s0, g) reads the pixel-wise change between them; shifting them independently would add up to
        2 * aug_pad pixels of misalignment that act() never sees and that hides which object moved."""
        pair = torch.cat((as_uint8_images(s0), as_uint8_images(goal)), -1).to(self._device())
        if self.training:
            pair = random_shift(pair, self.config.aug_pad)
        x = to_float_image(pair, self._device())
        return x[:, :3], x[:, 3:]

    def _z_language(self, texts: list[str]) -> torch.Tensor:
        return self.language_projection(language.embed(texts).to(self._device()))

    @torch.no_grad()
    def embed_images(self, s0, goal) -> torch.Tensor:
        """f(s0, g) for uint8 images (H, W, 3) or (N, H, W, 3): (N, task_dim), unit norm, no augmentation."""
        dev = self._device()
        return self.task_encoder(to_float_image(s0, dev), to_float_image(goal, dev))

    @torch.no_grad()
    def embed_instructions(self, texts: list[str]) -> torch.Tensor:
        """h(l) for each string: (N, task_dim), unit norm."""
        return self._z_language(list(texts))

    # --- training ---------------------------------------------------------------------------------
    def _current_frames(self, batch: dict) -> list[torch.Tensor]:
        """The batch's newest frame of each camera, uint8 (B, H, W, 3)."""
        frames = [as_uint8_images(batch["images"][cam]) for cam in self.config.cameras]
        return [f.reshape(-1, self.data_spec().obs_horizon, *f.shape[1:])[:, -1] for f in frames]

    def _gripper(self, batch: dict) -> torch.Tensor | None:
        """The newest normalised finger width (B, 1) from batch-format proprio (B, To, 8), if the head takes it."""
        if not self.config.gripper_input:
            return None
        return torch.as_tensor(batch["proprio"], dtype=torch.float32, device=self._device())[:, -1, 7:8]

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        dev = self._device()
        frames = self._current_frames(batch)
        grip = self._gripper(batch)
        labelled = torch.as_tensor(np.asarray(batch["labelled"]), dtype=torch.bool)
        texts = list(batch["instruction"])
        # not in place: as_tensor may share the batch's memory; a labelled row needs a non-empty text
        labelled = labelled & torch.tensor([bool(t) for t in texts], dtype=torch.bool)
        goal = as_uint8_images(batch["goal_image"])
        if batch.get("final_goal_image") is not None:   # labelled episodes: the final frame is the goal
            goal = torch.where(labelled[:, None, None, None], as_uint8_images(batch["final_goal_image"]), goal)

        obs = [self._float_images(f) for f in frames]
        z_img = self.task_encoder(*self._float_task_pair(batch["start_image"], goal))
        target = torch.as_tensor(batch["action"], dtype=torch.float32, device=dev)
        rows = labelled.nonzero().flatten().to(dev)
        lab_texts = [texts[i] for i in rows.tolist()]
        n = len(obs[0])

        # One policy pass: every row with its image-task z, then the labelled rows again with h(l).
        feats = self.policy.stem(obs)
        if lab_texts:
            z_lang = self._z_language(lab_texts)
            pred = self.policy.from_stem([torch.cat((f, f[rows])) for f in feats], torch.cat((z_img, z_lang)),
                                         None if grip is None else torch.cat((grip, grip[rows])))
            bc_language = F.mse_loss(pred[n:], target[rows])
            align = alignment_loss(z_img[rows], z_lang, lab_texts, self.tau())
        else:
            pred = self.policy.from_stem(feats, z_img, grip)
            bc_language = align = torch.zeros((), device=dev)
        bc_image = F.mse_loss(pred[:n], target)
        total = bc_image + bc_language + self.config.align_weight * align
        metrics = {"loss": total.item(), "bc_image": bc_image.item(), "bc_language": bc_language.item(),
                   "align": align.item(), "tau": self.tau().item(), "n_labelled": float(len(lab_texts))}
        return total, metrics

    # --- inference --------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_batch(self, batch: dict) -> torch.Tensor:
        """The image-task policy: z = f(start, goal), actions from the current frames."""
        frames = [to_float_image(f, self._device()) for f in self._current_frames(batch)]
        z = self.embed_images(as_uint8_images(batch["start_image"]), as_uint8_images(batch["goal_image"]))
        return self.policy(frames, z, self._gripper(batch))

    def serve(self) -> "Policy":
        """Also loads the sentence encoder now: loaded at the first instruction, its seconds made the first chunk
        of a served episode stale, and the arm refused it."""
        language.warm_up()
        return super().serve()

    def _on_reset(self, task: Task) -> None:
        self._z = self._task_z(task, first_frame=None)

    def _task_z(self, task: Task, first_frame) -> torch.Tensor | None:
        """z for a task; None while a goal image waits for its start frame (the first observation)."""
        use_image = task.goal_image is not None and not (self.config.prefer == "instruction" and task.instruction)
        if use_image:
            s0 = task.start_image if task.start_image is not None else first_frame
            return None if s0 is None else self.embed_images(s0, task.goal_image)
        if task.instruction:
            return self.embed_instructions([task.instruction])
        raise MissingConditioning(f"policy {self.name!r} needs a goal image or an instruction")

    def predict(self, obs: list[Observation], task: Task) -> np.ndarray:
        missing = [cam for cam in self.config.cameras if obs[-1].images.get(cam) is None]
        if missing:
            raise BadObservation(f"policy {self.name!r} needs camera(s) {missing}; got {sorted(obs[-1].images)}")
        frames = [to_float_image(obs[-1].images[cam], self._device()) for cam in self.config.cameras]
        if "action" not in self.stats:
            raise CheckpointMismatch(f"policy {self.name!r} has no action statistics to unnormalise with")
        if self.config.gripper_input and "proprio" not in self.stats:
            raise CheckpointMismatch(f"policy {self.name!r} reads the finger width but has no proprio statistics")
        first = obs[0].images.get("front")
        if task is self.task:
            if self._z is None:     # goal given without a start frame: the episode's first frame is s0
                self._z = self._task_z(task, first_frame=first)
            z = self._z
        else:
            z = self._task_z(task, first_frame=first)
        grip = None
        if self.config.gripper_input:     # the width is proprio's last entry, normalised as in training
            prop = act_space.proprio(np.asarray(obs[-1].ee_pose, dtype=np.float64), np.array(obs[-1].gripper))
            width = act_space.normalise(prop, self.stats["proprio"], "meanstd")[-1]
            grip = torch.tensor([[width]], dtype=torch.float32, device=self._device())
        with torch.no_grad():
            pred = self.policy(frames, z, grip)[0]
        return act_space.unnormalise(pred.cpu().numpy().astype(np.float64), self.stats["action"], "meanstd")
