"""SwitchVLA (Li et al. 2025, arXiv 2506.03574): a policy that changes task mid-execution.

It reads the previous and the current instruction and the previous contact state besides the cameras and
proprio. Trained on forward, rollback and advance samples built from ordinary demonstrations (samples.py), it
learns to continue (forward), to put back what it holds when the instruction changes in contact (rollback) and
to go straight to the new task otherwise (advance); its mode and contact heads say which it is doing.

At run time the policy keeps its own switch state (`SwitchState`): a new instruction mid-episode
(`update_task`) keeps the observation history, makes the instruction being executed the previous one and the
new one current; the contact state is the policy's own estimate (contact head, refined by the gripper: a hand
closed on nothing holds nothing) or, with
`contact_source="gripper_rule"`, robot_stack.contact_phases' rule on the observed gripper, never the
simulator's. Once the arm is out of contact after the switch and a new contact begins (the new task's object
in hand), the switch is complete: previous := current, forward again.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from robot_stack.policies import actions as act_space
from robot_stack.policies.augment import random_shift
from robot_stack.policies.base import DataSpec, Policy, register
from robot_stack.policies.errors import CheckpointMismatch, MissingConditioning
from robot_stack.policies.grif import language
from robot_stack.policies.grif.policy import as_uint8_images
from robot_stack.policies.switchvla import flow
from robot_stack.policies.switchvla.config import SwitchVLAConfig
from robot_stack.policies.switchvla.model import SwitchVLANet
from robot_stack.policies.switchvla.samples import MODES, mode_of
from robot_stack.types import Observation, Task

MAX_STATUS_CHARS = 200


def text_stats(embeddings: np.ndarray) -> dict:
    """The training instructions' mean sentence embedding and their spread about it (one scale for all
    dimensions, so a phrasing never seen keeps the geometry the encoder gave it). Raw MiniLM embeddings of two
    instructions about different blocks differ by 0.1 of their norm: left so, the policy ignored its text."""
    e = np.asarray(embeddings, dtype=np.float64)
    centred = e - e.mean(0)
    return {"mean": e.mean(0).tolist(), "scale": float(max(np.sqrt((centred ** 2).mean()), 1e-3))}


@dataclass
class SwitchState:
    """What the policy carries between decisions of one episode."""

    previous: str = ""
    current: str = ""
    contact: bool = False            # the contact estimate of the last decision (the next decision's input)
    contact_prob: float = 0.0
    released: bool = True            # out of contact since the last switch (rollback is over)
    mode: str = "forward"            # the mode head's answer at the last decision
    width: float | None = None       # the last observed gripper width and command (gripper_rule)
    command: float = 0.0
    switches: int = 0


@register
class SwitchVLAPolicy(Policy):
    name = "switchvla"
    conditioning = frozenset({"switch"})
    Config = SwitchVLAConfig
    deploy_keys = ("contact_source", "flow_steps")

    def __init__(self, config: SwitchVLAConfig | None = None, stats: dict | None = None):
        super().__init__(config or SwitchVLAConfig(), stats)
        self.net = SwitchVLANet(self.config, act_space.ACTION_DIM)
        self.state = SwitchState()
        self._noise = torch.Generator().manual_seed(0)

    def serve(self) -> "SwitchVLAPolicy":
        """Load the sentence encoder and the flow scheduler now: done lazily, they made the first decision on the
        graph 4.5 s late, and the arm node dropped its chunk as stale."""
        language.embed(["warm-up"])
        flow.sample(lambda x, s: torch.zeros_like(x), torch.zeros(1, 1, 1), 1)
        return super().serve()

    def data_spec(self) -> DataSpec:
        c = self.config
        return DataSpec(cameras=c.cameras, image_size=c.image_size, obs_horizon=1, action_horizon=c.action_horizon,
                        goal_camera=c.cameras[0], action_norm="meanstd",
                        conditioning={"switch": {"switch_prob": c.switch_prob}})

    # --- inputs ---------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        return self.net.cls.device

    def _images(self, frames: list, augment: bool) -> list[torch.Tensor]:
        """Per camera uint8 (B, H, W, 3) -> float (B, 3, H, W) in [0, 1]; shifted at random in training."""
        out = []
        for f in frames:
            x = as_uint8_images(f).to(self._device())
            if augment and self.config.aug_pad:
                x = random_shift(x, self.config.aug_pad)
            out.append(x.permute(0, 3, 1, 2).float().div_(255.0))
        return out

    def _text(self, texts: list[str]) -> torch.Tensor:
        """Sentence embeddings centred and scaled by the training instructions' `text` statistics."""
        if "text" not in self.stats:
            raise CheckpointMismatch(f"policy {self.name!r} has no text statistics")
        t = self.stats["text"]
        mean = torch.as_tensor(t["mean"], dtype=torch.float32)
        return ((language.embed(list(texts)) - mean) / float(t["scale"])).to(self._device())

    def _memory(self, frames, proprio, previous, current, contact_prev, augment=False) -> torch.Tensor:
        dev = self._device()
        return self.net.embed(self._images(frames, augment), torch.as_tensor(proprio, dtype=torch.float32, device=dev),
                              self._text(previous), self._text(current),
                              torch.as_tensor(contact_prev, dtype=torch.float32, device=dev))

    # --- training -------------------------------------------------------------------------------
    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        c, dev = self.config, self._device()
        frames = [torch.as_tensor(batch["images"][cam])[:, -1] for cam in c.cameras]
        memory = self._memory(frames, torch.as_tensor(batch["proprio"])[:, -1], batch["previous_instruction"],
                              batch["instruction"], batch["contact_prev"], augment=self.training)
        mode_logits, contact_logits = self.net.heads(memory)
        target = torch.as_tensor(batch["action"], dtype=torch.float32, device=dev)
        keep = (~torch.as_tensor(batch["action_is_pad"], device=dev)).float()
        sigma = flow.training_sigmas(len(target), device=dev)
        x, v_target = flow.noisy_actions(target, torch.randn_like(target), sigma)
        err = (self.net.velocity(memory, x, sigma) - v_target).pow(2).mean(-1)
        flow_loss = (err * keep).sum() / keep.sum().clamp(min=1.0)
        mode = torch.as_tensor(batch["mode"], device=dev).long()
        contact = torch.as_tensor(batch["contact"], device=dev).long()
        mode_ce, contact_ce = F.cross_entropy(mode_logits, mode), F.cross_entropy(contact_logits, contact)
        total = flow_loss + c.mode_weight * mode_ce + c.contact_weight * contact_ce
        with torch.no_grad():
            metrics = {"loss": float(total), "flow": float(flow_loss), "mode_ce": float(mode_ce),
                       "contact_ce": float(contact_ce),
                       "mode_acc": float((mode_logits.argmax(-1) == mode).float().mean()),
                       "contact_acc": float((contact_logits.argmax(-1) == contact).float().mean())}
        return total, metrics

    # --- deciding -------------------------------------------------------------------------------
    def _sample(self, memory: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn((len(memory), self.config.action_horizon, act_space.ACTION_DIM), generator=generator)
        return flow.sample(lambda x, s: self.net.velocity(memory, x, s), noise.to(memory.device),
                           self.config.flow_steps)

    @torch.no_grad()
    def predict_batch(self, batch: dict) -> torch.Tensor:
        c = self.config
        frames = [torch.as_tensor(batch["images"][cam])[:, -1] for cam in c.cameras]
        memory = self._memory(frames, torch.as_tensor(batch["proprio"])[:, -1], batch["previous_instruction"],
                              batch["instruction"], batch["contact_prev"])
        return self._sample(memory, torch.Generator().manual_seed(0))

    def _on_reset(self, task: Task) -> None:
        if not task.instruction:
            raise MissingConditioning(f"policy {self.name!r} needs an instruction")
        self.state = SwitchState(previous=task.previous_instruction or task.instruction, current=task.instruction,
                                 released=True)
        self._noise = torch.Generator().manual_seed(0)

    def update_task(self, task: Task) -> None:
        """A new instruction mid-episode: the history and the contact estimate stay; the instruction being executed
        becomes the previous one. During a switch (previous != current) the previous one stays: it names what the
        arm still holds or has just put back; switching back to it ends the switch."""
        if self.task is None or not task.instruction:
            return self.reset(task)
        st = self.state
        if task.instruction != st.current:
            if st.previous == st.current:        # not already switching: the arm's contact decides rollback or advance
                st.released = not st.contact
            st.current = task.instruction
            st.switches += 1
        self.task = task

    def _contact_now(self, obs: Observation, contact_prob: float) -> bool:
        from robot_stack.contact_phases import ContactRule, contact_steps
        if self.config.contact_source == "estimate":
            # refined with the gripper state, as the paper refines its VLM's labels: fingers closed to nothing hold
            # nothing. The head never saw a missed grasp (every demonstration's close takes its block), and after
            # one it read 1.00 on an empty hand (seed 201, an early checkpoint): a switch would have been a rollback.
            return contact_prob > 0.5 and float(obs.gripper) > ContactRule().empty_width
        st = self.state
        widths = [st.width if st.width is not None else obs.gripper, obs.gripper]
        return bool(contact_steps(widths, [st.command, st.command])[-1])

    def predict(self, obs: list[Observation], task: Task) -> np.ndarray:
        if any(k not in self.stats for k in ("action", "proprio", "text")):
            raise CheckpointMismatch(f"policy {self.name!r} has no action/proprio/text statistics")
        st, last = self.state, obs[-1]
        prop = act_space.proprio(np.asarray(last.ee_pose, dtype=np.float64), np.array(last.gripper))
        prop = act_space.normalise(prop, self.stats["proprio"], "meanstd")[None]
        frames = [np.asarray(last.images[cam])[None] for cam in self.config.cameras]
        memory = self._memory(frames, prop, [st.previous], [st.current], [float(st.contact)])
        mode_logits, contact_logits = self.net.heads(memory)
        pred = self._sample(memory, self._noise)[0].cpu().numpy().astype(np.float64)
        actions = act_space.unnormalise(pred, self.stats["action"], "meanstd")
        contact_prob = float(torch.softmax(contact_logits, -1)[0, 1])
        st.contact, st.contact_prob = self._contact_now(last, contact_prob), contact_prob
        st.mode = MODES[int(mode_logits.argmax(-1)[0])]
        st.width, st.command = float(last.gripper), float(actions[0, -1])
        if st.previous != st.current:            # a switch under way: rollback until released, then advance
            if not st.contact:
                st.released = True
            elif st.released:                    # the new task's object in hand: the switch is complete
                st.previous = st.current
        return actions

    def status(self) -> dict:
        st = self.state
        return {"switch_mode": st.mode, "switch_mode_rule": MODES[mode_of(st.previous, st.current, st.contact)],
                "contact": str(st.contact), "contact_prob": f"{st.contact_prob:.2f}", "switches": str(st.switches),
                "previous_instruction": st.previous[:MAX_STATUS_CHARS], "instruction": st.current[:MAX_STATUS_CHARS]}
