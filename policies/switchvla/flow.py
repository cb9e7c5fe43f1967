"""Flow matching for action chunks, in diffusers' FlowMatchEulerDiscreteScheduler convention.

A noise level sigma in [0, 1] mixes data and noise linearly, x = sigma * noise + (1 - sigma) * actions, and the
network learns the constant velocity of that path, v = noise - actions (rectified flow; pi0 and SwitchVLA's
expert train this way, with time running the other direction). Sampling integrates dx/dsigma = v from pure
noise (sigma = 1) to sigma = 0 with Euler steps on an even grid; the scheduler's own `step` does each update,
so the sampler is diffusers' exactly (its default grid ends at sigma 1/1000 before 0; we pass the grid
1, 1 - 1/N, ..., 1/N explicitly).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def noisy_actions(actions: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_sigma, the velocity target) for clean `actions` (B, T, D), `noise` like it and `sigma` (B,)."""
    s = sigma.reshape(-1, *([1] * (actions.dim() - 1)))
    return s * noise + (1.0 - s) * actions, noise - actions


def training_sigmas(batch: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Noise levels for training: 0.001 + 0.999 * Beta(1.5, 1), pi0's schedule (openpi's time is our sigma),
    weighted to the noisy end, where sampling starts and the conditioning decides what the chunk does. Weighted
    to the clean end instead, a policy learns to denoise from x alone and ignores its instructions."""
    u = torch.rand(batch, generator=generator, device=device)
    tau = u.pow(1.0 / 1.5)                   # Beta(1.5, 1) by inversion: its CDF is tau^1.5
    return 0.001 + 0.999 * tau


def sigma_grid(steps: int) -> list[float]:
    return list(np.linspace(1.0, 1.0 / steps, steps))


def sample(velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], noise: torch.Tensor,
           steps: int) -> torch.Tensor:
    """Integrate from `noise` (sigma 1) to actions (sigma 0): `velocity(x, sigma (B,))` -> v like x."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    scheduler.set_timesteps(sigmas=sigma_grid(steps), device=noise.device)
    x = noise
    for k, t in enumerate(scheduler.timesteps):
        sigma = scheduler.sigmas[k].to(noise.dtype).expand(len(x))
        x = scheduler.step(velocity(x, sigma), t, x).prev_sample.to(noise.dtype)
    return x
