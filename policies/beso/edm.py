"""EDM (Karras et al. 2022) pieces BESO uses, as pure functions on tensors.

Written out rather than taken from diffusers: `EDMEulerScheduler` can express the exponential
schedule and the first-order step, but it is stateful (a step index advanced by `step()`), owns
its own preconditioning behind a `prediction_type`, and hides where classifier-free guidance
combines two denoiser outputs. The whole BESO sampler is a few lines here, each one testable.

Conventions: `sigma` broadcasts against `x` (a float, a 0-d tensor or shape (B,)); a denoiser is
`D(x, sigma) -> x0 estimate`; a network is `F(c_in * x, c_noise) -> raw output`.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def bcast(sigma, x: torch.Tensor) -> torch.Tensor:
    """A per-sample (B,) or scalar sigma shaped to multiply x (B, ...)."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return sigma.reshape(sigma.shape + (1,) * (x.ndim - sigma.ndim)) if sigma.ndim else sigma


def scalings(sigma, sigma_data: float = 0.5):
    """EDM preconditioning (c_skip, c_out, c_in, c_noise): unit-variance network inputs and targets at every sigma."""
    sigma = torch.as_tensor(sigma, dtype=torch.float32)
    total = sigma ** 2 + sigma_data ** 2
    return sigma_data ** 2 / total, sigma * sigma_data / total.sqrt(), total.rsqrt(), sigma.log() / 4


def denoise(net: Callable, x: torch.Tensor, sigma, sigma_data: float = 0.5) -> torch.Tensor:
    """D(x; s) = c_skip x + c_out F(c_in x, c_noise); c_noise keeps the shape of sigma."""
    c_skip, c_out, c_in, c_noise = scalings(sigma, sigma_data)
    return bcast(c_skip, x) * x + bcast(c_out, x) * net(bcast(c_in, x) * x, c_noise)


def training_target(a: torch.Tensor, x_noisy: torch.Tensor, sigma, sigma_data: float = 0.5) -> torch.Tensor:
    """What F must output so that D(x_noisy) = a: (a - c_skip x) / c_out (the EDM-weighted denoiser loss)."""
    c_skip, c_out, _, _ = scalings(sigma, sigma_data)
    return (a - bcast(c_skip, a) * x_noisy) / bcast(c_out, a)


def sample_sigmas(n: int, loc: float, scale: float, lo: float, hi: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Truncated log-logistic training sigmas, by inverse CDF restricted to [cdf(lo), cdf(hi)].

    Official BESO (utils.rand_log_logistic): loc = ln(sigma_data), scale = 0.5, [sigma_min, sigma_max]."""
    cdf = lambda s: torch.sigmoid(torch.tensor((math.log(s) - loc) / scale, dtype=torch.float64))
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    u = cdf(lo) + u * (cdf(hi) - cdf(lo))
    return (torch.logit(u) * scale + loc).exp().clamp(lo, hi).float()


def sigma_schedule(steps: int, sigma_min: float, sigma_max: float, kind: str = "exponential",
                   rho: float = 7.0) -> torch.Tensor:
    """`steps` noise levels from sigma_max down to sigma_min, then 0 (steps + 1 values)."""
    if kind == "exponential":   # BESO: log-linear
        sig = torch.linspace(math.log(sigma_max), math.log(sigma_min), steps, dtype=torch.float64).exp()
    elif kind == "karras":
        ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
        sig = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    else:
        raise ValueError(f"unknown sigma schedule {kind!r}")
    return torch.cat([sig, sig.new_zeros(1)]).float()


def dpm1_step(x: torch.Tensor, sigma, sigma_next, denoised: torch.Tensor) -> torch.Tensor:
    """DPM-Solver-1 = Euler in sigma on the probability-flow ODE: x <- (s'/s) x + (1 - s'/s) D; s' = 0 gives D."""
    r = float(sigma_next) / float(sigma)
    return denoised if r == 0 else r * x + (1 - r) * denoised


def ddpm_step(x: torch.Tensor, sigma, sigma_next, denoised: torch.Tensor,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Ancestral step: a draw from the DDPM posterior q(x_s' | x_s, x0 = D) of the VE process."""
    s, s1 = float(sigma), float(sigma_next)
    if s1 == 0:
        return denoised
    r2 = (s1 / s) ** 2
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return r2 * x + (1 - r2) * denoised + s1 * math.sqrt(1 - r2) * noise


def guide(d_cond: torch.Tensor, d_uncond: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance D_u + lam (D_c - D_u); lam 0 and 1 return D_u and D_c exactly."""
    if guidance == 1:
        return d_cond
    if guidance == 0:
        return d_uncond
    return d_uncond + guidance * (d_cond - d_uncond)


SAMPLERS = {  # method -> (default steps, schedule, step function)
    "beso": (3, "exponential", "dpm1"),    # the paper's sampler: 3 evaluations, log-linear sigmas
    "ddim": (16, "karras", "dpm1"),        # deterministic, DDIM == DPM-Solver-1 in the sigma parametrisation
    "ddpm": (100, "karras", "ddpm"),       # stochastic ancestral steps
}


def sample(denoiser: Denoiser, shape: tuple, sigma_min: float, sigma_max: float, method: str = "beso",
           steps: int | None = None, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Draw x ~ N(0, sigma_max^2) and integrate down the schedule; one denoiser call per noise level."""
    if method not in SAMPLERS:
        raise ValueError(f"unknown sampler {method!r}; known: {sorted(SAMPLERS)}")
    default_steps, kind, step = SAMPLERS[method]
    sigmas = sigma_schedule(steps or default_steps, sigma_min, sigma_max, kind).to(device)
    x = torch.randn(shape, generator=generator, device=device) * sigmas[0]
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        d = denoiser(x, s.expand(shape[0]))
        x = dpm1_step(x, s, s_next, d) if step == "dpm1" else ddpm_step(x, s, s_next, d, generator)
    return x
