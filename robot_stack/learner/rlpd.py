"""RLPD (Ball et al. 2023) as SERL and HIL-SERL use it, in PyTorch: every detail named in `RLPDConfig`.

One `update(demo_batch, online_batch)` is one learner step: the two halves are concatenated
(50/50 symmetric sampling is the caller's batch split, `demo_fraction`), the critic ensemble
takes `critic_actor_ratio` gradient steps against a target that is the minimum over a random
subset of `critic_subset` target critics (REDQ), the gripper critic one double-DQN step, then
the actor and the temperature one step each. Bootstrapping stops only at termination: a time
limit (truncation) still bootstraps, unlike SERL, which treats time-outs as terminal.
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from robot_stack.learner.networks import CriticEnsemble, ObservationEncoder, TanhGaussianActor, mlp
from robot_stack.learner.spaces import ActionSpec, ObsSpec, SpecError, fingerprint, specs_from_json, specs_to_json
from robot_stack.optim_state import load_optimizer_tensors, optimizer_tensors

FORMAT = "robot_stack.rlpd/1"


@dataclass
class RLPDConfig:
    num_critics: int = 10              # SERL: 10 (REDQ); HIL-SERL: 2
    critic_subset: int = 2             # target = min over this many randomly chosen target critics
    hidden: tuple[int, ...] = (256, 256)
    layer_norm: bool = True            # LayerNorm in actor and critic MLPs (RLPD's key stabiliser)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temperature_lr: float = 3e-4
    init_temperature: float = 0.01
    target_entropy: float | None = None   # None: -|A| / 2
    discount: float = 0.97
    tau: float = 0.005                 # Polyak averaging of the target critics
    batch_size: int = 256
    demo_fraction: float = 0.5         # share of each batch from the demo buffer (RLPD symmetric sampling)
    critic_actor_ratio: int = 1        # critic gradient steps per actor step within one update
    backup_entropy: bool = True        # subtract alpha * log pi(a'|s') in the critic target
    augment_pad: int = 4               # random shift of images on obs and next_obs (DrQ); 0 disables
    image_latent: int = 128
    proprio_latent: int = 64
    conv_channels: int = 32
    grasp_hidden: tuple[int, ...] = (256, 256)
    grasp_epsilon: float = 0.1         # exploration of the discrete gripper action while collecting
    normalize_state: bool = True       # standardise the state with the demo buffer's statistics (none: identity)
    min_state_std: float = 0.01        # floor on each entry's std (entries the demos hold constant)
    # Demonstration losses beyond RLPD (0 = off, as in RLPD/SERL): they carry the demos' actions into
    # the policy directly while the sparse-reward critic is still flat.
    bc_weight: float = 0.0             # Nair et al. 2018: BC on the demo rows of each batch, added to the actor loss
    bc_q_filter: bool = True           # ... only where the critic rates the demo action above the actor's own
    grasp_margin_weight: float = 0.0   # DQfD (Hester et al. 2018): large-margin loss on the demos' gripper actions
    grasp_margin: float = 0.05         # ... the margin by which the demo's gripper action must win

    @classmethod
    def from_dict(cls, d: dict) -> "RLPDConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise SpecError(f"unknown RLPD config keys {sorted(unknown)}")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)


def to_tensors(batch: dict, device="cpu") -> dict:
    """Numpy batch -> torch (observations stay uint8 until the encoder)."""
    out = {}
    for k, v in batch.items():
        out[k] = to_tensors(v, device) if isinstance(v, dict) else torch.as_tensor(v, device=device)
    return out


def concat_batches(a: dict, b: dict) -> dict:
    return {k: concat_batches(a[k], b[k]) if isinstance(a[k], dict) else np.concatenate((a[k], b[k])) for k in a}


class RLPDAgent(nn.Module):
    def __init__(self, obs_spec: ObsSpec, action_spec: ActionSpec, config: RLPDConfig | None = None, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.cfg = c = config or RLPDConfig()
        if not 1 <= c.critic_subset <= c.num_critics:
            raise ValueError(f"critic_subset must be in [1, num_critics={c.num_critics}], got {c.critic_subset}")
        self.obs_spec, self.action_spec = obs_spec, action_spec
        self.encoder = ObservationEncoder(obs_spec, c.image_latent, c.proprio_latent, c.conv_channels)
        feat, act = self.encoder.dim, action_spec.dim
        self.critic = CriticEnsemble(c.num_critics, feat + act, c.hidden, c.layer_norm)
        self.actor = TanhGaussianActor(feat, act, c.hidden, c.layer_norm)
        self.grasp = mlp(feat, c.grasp_hidden, 3, c.layer_norm) if action_spec.discrete_gripper else None
        self.log_alpha = nn.Parameter(torch.tensor(float(np.log(c.init_temperature))))
        self.target_entropy = c.target_entropy if c.target_entropy is not None else -act / 2.0
        # Targets: the encoder, the critics and the gripper critic, Polyak-averaged.
        self.target = nn.ModuleDict({"encoder": copy.deepcopy(self.encoder), "critic": copy.deepcopy(self.critic),
                                     **({"grasp": copy.deepcopy(self.grasp)} if self.grasp is not None else {})})
        self.target.requires_grad_(False)
        critic_params = [*self.encoder.parameters(), *self.critic.parameters()]
        self.critic_opt = torch.optim.Adam(critic_params, lr=c.critic_lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.actor_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=c.temperature_lr)
        self.grasp_opt = torch.optim.Adam(self.grasp.parameters(), lr=c.critic_lr) if self.grasp is not None else None
        self.updates = 0

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    def set_state_normalizer(self, states: np.ndarray) -> None:
        """Standardise the state with the mean and std of `states` (rows), in the online and target encoders."""
        mean = torch.as_tensor(states.mean(0), dtype=torch.float32)
        std = torch.as_tensor(states.std(0), dtype=torch.float32).clamp(min=self.cfg.min_state_std)
        for encoder in (self.encoder, self.target["encoder"]):
            encoder.state_mean.copy_(mean)
            encoder.state_std.copy_(std)

    # --- acting ----------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], deterministic: bool = False,
            rng: np.random.Generator | None = None) -> tuple[np.ndarray, int]:
        """One observation -> (continuous action in [-1, 1]^dim, gripper action 0 open / 1 stay / 2 close)."""
        batch = {k: torch.as_tensor(v).unsqueeze(0) for k, v in obs.items()}
        features = self.encoder(batch)
        action, _ = self.actor(features, deterministic=deterministic)
        grip = 1
        if self.grasp is not None:
            grip = int(self.grasp(features).argmax(-1))
            if not deterministic and rng is not None and rng.random() < self.cfg.grasp_epsilon:
                grip = int(rng.integers(3))
        return action[0].numpy(), grip

    # --- learning --------------------------------------------------------------------
    def next_features(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Encodings of s' by the online and the target encoder (no gradients), shared by both targets."""
        with torch.no_grad():
            pad = self.cfg.augment_pad
            return self.encoder(batch["next_obs"], pad), self.target["encoder"](batch["next_obs"], pad)

    def critic_target(self, batch: dict, features=None) -> torch.Tensor:
        """r + gamma * (1 - terminated) * (min over a random critic subset of Q'(s', a') - alpha log pi(a'|s'))."""
        c = self.cfg
        next_feat, target_feat = features or self.next_features(batch)
        with torch.no_grad():
            next_action, next_log_prob = self.actor(next_feat)
            q_next = self.target["critic"](target_feat, next_action)                  # (N, B)
            subset = torch.randperm(c.num_critics)[:c.critic_subset]
            q_next = q_next[subset].min(0).values
            if c.backup_entropy:
                q_next = q_next - self.alpha * next_log_prob
            not_done = 1.0 - batch["terminated"].float()                             # truncation still bootstraps
            return batch["reward"].float() + c.discount * not_done * q_next

    def grasp_target(self, batch: dict, features=None) -> torch.Tensor:
        """Double DQN: the online gripper critic picks the next action, the target critic values it."""
        next_feat, target_feat = features or self.next_features(batch)
        with torch.no_grad():
            best = self.grasp(next_feat).argmax(-1, keepdim=True)
            value = self.target["grasp"](target_feat).gather(-1, best).squeeze(-1)
            reward = batch["reward"].float() + batch["grasp_penalty"].float()
            return reward + self.cfg.discount * (1.0 - batch["terminated"].float()) * value

    def update(self, batch: dict) -> dict[str, float]:
        """One learner step on a torch batch (see module docstring); returns losses and statistics.

        Each encoder pass is done once per critic step and reused: s' by the online and target
        encoders for both targets, s by the online encoder for the critic, then detached for the
        gripper critic and the actor (the actor never trains the encoder, as in DrQ)."""
        c = self.cfg
        info: dict[str, float] = {}
        for _ in range(c.critic_actor_ratio):
            next_features = self.next_features(batch)
            target = self.critic_target(batch, next_features)
            features = self.encoder(batch["obs"], c.augment_pad)
            q = self.critic(features, batch["action"].float())
            critic_loss = ((q - target.unsqueeze(0)) ** 2).mean(1).sum()
            self.critic_opt.zero_grad(set_to_none=True)
            critic_loss.backward()
            self.critic_opt.step()
            self._polyak(self.encoder, self.target["encoder"])
            self._polyak(self.critic, self.target["critic"])
        info.update(critic_loss=critic_loss.item(), q_mean=q.mean().item(), target_mean=target.mean().item())
        features = features.detach()

        if self.grasp is not None:
            target = self.grasp_target(batch, next_features)
            q_all = self.grasp(features)
            q_grip = q_all.gather(-1, batch["grip"].long().unsqueeze(-1)).squeeze(-1)
            grasp_loss = F.mse_loss(q_grip, target)
            if c.grasp_margin_weight > 0 and "demo" in batch:
                margin_loss = self.grasp_margin_loss(features, batch, q_all)
                grasp_loss = grasp_loss + c.grasp_margin_weight * margin_loss
                info["grasp_margin_loss"] = margin_loss.item()
            self.grasp_opt.zero_grad(set_to_none=True)
            grasp_loss.backward()
            self.grasp_opt.step()
            self._polyak(self.grasp, self.target["grasp"])
            info["grasp_loss"] = grasp_loss.item()

        action, log_prob = self.actor(features)
        q = self.critic(features, action).mean(0)
        actor_loss = (self.alpha.detach() * log_prob - q).mean()
        if c.bc_weight > 0 and "demo" in batch:
            bc_loss, kept = self.bc_loss(features, batch, q.detach())
            actor_loss = actor_loss + c.bc_weight * bc_loss
            info.update(bc_loss=bc_loss.item(), bc_kept=kept)
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        alpha_loss = (self.alpha * (-log_prob.detach() - self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        self.updates += 1
        info.update(actor_loss=actor_loss.item(), alpha=self.alpha.item(), entropy=-log_prob.mean().item())
        return info

    def bc_loss(self, features: torch.Tensor, batch: dict, q_policy: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Squared error of the actor's mean action to the demo action on demo rows; with the Q filter only
        on rows where Q(s, a_demo) > Q(s, a_pi), so the policy is free to do better than the demo."""
        demo = batch["demo"].bool()
        mean_action, _ = self.actor(features, deterministic=True)
        error = ((mean_action - batch["action"].float()) ** 2).sum(-1)
        keep = demo
        if self.cfg.bc_q_filter:
            with torch.no_grad():
                keep = demo & (self.critic(features, batch["action"].float()).mean(0) > q_policy)
        return (error * keep).sum() / demo.sum().clamp(min=1), float(keep.sum()) / max(int(demo.sum()), 1)

    def grasp_margin_loss(self, features: torch.Tensor, batch: dict, q_all: torch.Tensor | None = None) -> torch.Tensor:
        """DQfD: max_a [Q(s, a) + margin * (a != a_demo)] - Q(s, a_demo), averaged over the demo rows
        (`q_all`: the gripper critic's values on `features`, when the caller has them)."""
        demo = batch["demo"].bool()
        q_all = self.grasp(features) if q_all is None else q_all
        grip = batch["grip"].long().unsqueeze(-1)
        margins = torch.full_like(q_all, self.cfg.grasp_margin).scatter(-1, grip, 0.0)
        loss = (q_all + margins).max(-1).values - q_all.gather(-1, grip).squeeze(-1)
        return (loss * demo).sum() / demo.sum().clamp(min=1)

    def _polyak(self, source: nn.Module, target: nn.Module) -> None:
        with torch.no_grad():
            for p, tp in zip(source.parameters(), target.parameters()):
                tp.lerp_(p, self.cfg.tau)

    # --- what the actor needs, and checkpoints -----------------------------------------
    def policy_state(self) -> dict[str, torch.Tensor]:
        """The weights an actor needs to act: encoder, actor, gripper critic."""
        keep = ("encoder.", "actor.", "grasp.")
        return {k: v.detach().clone() for k, v in self.state_dict().items() if k.startswith(keep)}

    def load_policy_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load actor weights; a missing, extra or wrongly shaped tensor raises SpecError and changes nothing."""
        own = self.policy_state()
        if set(state) != set(own):
            raise SpecError(f"policy weights: missing {sorted(set(own) - set(state))[:3]}, "
                            f"unexpected {sorted(set(state) - set(own))[:3]}")
        for k, v in state.items():
            if v.shape != own[k].shape:
                raise SpecError(f"policy weight {k}: shape {list(v.shape)}, expected {list(own[k].shape)}")
        self.load_state_dict(state, strict=False)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers by the names their moments are saved under."""
        opts = {"critic": self.critic_opt, "actor": self.actor_opt, "alpha": self.alpha_opt}
        return {**opts, "grasp": self.grasp_opt} if self.grasp_opt is not None else opts

    def fingerprint(self) -> str:
        return fingerprint(self.obs_spec, self.action_spec)

    def header(self) -> dict:
        return {"format": FORMAT, "config": asdict(self.cfg), "specs": specs_to_json(self.obs_spec, self.action_spec),
                "fingerprint": self.fingerprint()}

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        """model.safetensors (networks, targets) + optim.safetensors (optimiser moments) + agent.json."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, path / "model.safetensors")
        save_file(optimizer_tensors(self.optimizers()), path / "optim.safetensors")
        meta = {**self.header(), "updates": self.updates, **(extra or {})}
        (path / "agent.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "RLPDAgent":
        path = Path(path)
        try:
            meta = json.loads((path / "agent.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SpecError(f"{path}: no readable agent.json ({exc})") from exc
        if meta.get("format") != FORMAT:
            raise SpecError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
        obs_spec, action_spec = specs_from_json(meta["specs"])
        agent = cls(obs_spec, action_spec, RLPDConfig.from_dict(meta["config"]))
        state = load_file(path / "model.safetensors")
        try:
            agent.load_state_dict(state)
        except RuntimeError as exc:
            raise SpecError(f"{path}: weights do not match the config: {exc}") from exc
        optim_file = path / "optim.safetensors"
        if optim_file.exists():
            load_optimizer_tensors(agent.optimizers(), load_file(optim_file))
        agent.updates = int(meta.get("updates", 0))
        return agent

