"""The noise schedule of a DDPM: the forward process q(x_t | x_0) and one reverse step of each sampler.

References:
1) Ho, Jain, Abbeel 2020, "Denoising Diffusion Probabilistic Models" (DDPM): T = 1000, betas linear
   from 1e-4 to 0.02; equations (4), (6), (7), (11), (15) and Algorithm 2 are cited by number below.
2) Nichol, Dhariwal 2021, "Improved Denoising Diffusion Probabilistic Models": the cosine schedule, eq. (17).
3) Song, Meng, Ermon 2021, "Denoising Diffusion Implicit Models" (DDIM): eq. (12) and the sigma of eq. (16).
4) Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed": "trailing" spacing,
   so that a DDIM run with few steps still starts at the last timestep, t = T - 1, from pure noise.

Names as in the papers and in diffusers' schedulers:

    betas                   beta_t, the variance added at step t
    alphas                  alpha_t = 1 - beta_t
    alphas_cumprod          alpha_bar_t = prod_{s <= t} alpha_s
    posterior_variance      beta_tilde_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t), eq. (7)

Timesteps are 0-based, t = 0 .. T-1, as in diffusers: the paper's t = 1 is our t = 0.
This module never sees a network: `train.py` calls `add_noise`, `sample.py` calls the steps with the
network's predicted noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import torch

from engine.core.config import check_fields, spec
from engine.core.errors import ConfigError

SCHEDULES = ("linear", "cosine")
MAX_TIMESTEPS = 10_000
VARIANCES = ("beta_tilde", "beta")  # Algorithm 2's two choices of sigma_t^2: both "had similar results" (DDPM section 3.2)


@dataclass(frozen=True)
class ScheduleConfig:
    timesteps: int = field(default=1000, metadata=spec(2, MAX_TIMESTEPS, label="timesteps (T)"))  # T
    schedule: str = field(default="linear", metadata=spec(choices=SCHEDULES))  # linear (DDPM) or cosine (Improved DDPM)
    beta_start: float = 1e-4  # linear only: beta_1
    beta_end: float = 0.02  # linear only: beta_T

    def validate(self) -> "ScheduleConfig":
        check_fields(self)
        if self.schedule == "linear" and not 0 < self.beta_start < self.beta_end < 1:
            raise ConfigError(
                f"A linear schedule needs 0 < beta_start < beta_end < 1, got beta_start {self.beta_start} and beta_end {self.beta_end}."
            )
        return self


def linear_betas(timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """DDPM section 4: betas increasing linearly; the paper's values are for T = 1000."""
    return torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)


def cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Improved DDPM eq. (17): alpha_bar_t = f(t) / f(0), f(t) = cos^2(((t/T + s) / (1 + s)) pi/2), betas clipped at 0.999."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alphas_cumprod = f / f[0]
    return (1 - alphas_cumprod[1:] / alphas_cumprod[:-1]).clamp(max=max_beta)


class NoiseSchedule:
    """All the per-timestep constants, in float64 on the CPU; `at` hands them out as float32 on the sample's device."""

    def __init__(self, config: ScheduleConfig = ScheduleConfig()):
        self.config = config.validate()
        if config.schedule == "linear":
            self.betas = linear_betas(config.timesteps, config.beta_start, config.beta_end)
        else:
            self.betas = cosine_betas(config.timesteps)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        self.posterior_variance = self.betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)  # eq. (7)

    @property
    def timesteps(self) -> int:
        return self.config.timesteps

    @cached_property
    def signal_to_noise(self) -> torch.Tensor:
        """SNR(t) = alpha_bar_t / (1 - alpha_bar_t): the signal's variance over the noise's in x_t."""
        return self.alphas_cumprod / (1.0 - self.alphas_cumprod)

    def at(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """values[t] for each sample, shaped (B, 1, 1, 1) to broadcast over `like` (B, C, H, W)."""
        picked = values[t.cpu()].to(device=like.device, dtype=like.dtype)
        return picked.view(-1, *([1] * (like.dim() - 1)))

    # the forward process

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q_sample, eq. (4): x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps."""
        alpha_bar = self.at(self.alphas_cumprod, t, x0)
        return alpha_bar.sqrt() * x0 + (1.0 - alpha_bar).sqrt() * noise

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Eq. (4) solved for x_0: x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t) (eq. 15)."""
        alpha_bar = self.at(self.alphas_cumprod, t, x_t)
        return (x_t - (1.0 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()

    def eps_from_x0(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha_bar = self.at(self.alphas_cumprod, t, x_t)
        return (x_t - alpha_bar.sqrt() * x0) / (1.0 - alpha_bar).sqrt()

    # the reverse process

    def step(
        self,
        eps: torch.Tensor,
        t: int,
        t_prev: int,
        x_t: torch.Tensor,
        noise: torch.Tensor | None = None,
        *,
        sampler: str = "ddim",
        eta: float = 0.0,
        variance: str = "beta_tilde",
        clip: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One reverse step from x_t to x_{t_prev} (t_prev = -1: the clean image); returns (x_{t_prev}, the predicted x_0).

        Both samplers share 1. and 4.; they differ in the mean and sigma of q(x_{t_prev} | x_t, x_0):
        1. predict x_0 from the noise (eq. 15), and clip it to the data's range [-1, 1];
        DDPM (Algorithm 2, t_prev = t - 1):
        2. the posterior mean mu_tilde(x_t, x_0), eq. (7). Without clipping this equals Algorithm 2's
           (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t), eq. (11); with it, it is the paper's released
           code (clip_denoised=True) and diffusers' default;
        3. sigma_t^2 = beta_tilde_t, or beta_t (section 3.2);
        DDIM (any t_prev < t):
        2. the noise re-derived from the clipped x_0, so both terms of the update agree (diffusers'
           use_clipped_model_output); mean = sqrt(alpha_bar_prev) x_0 + sqrt(1 - alpha_bar_prev - sigma^2) eps, eq. (12);
        3. sigma_t(eta) = eta sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_prev), eq. (16):
           eta = 0 is deterministic DDIM, eta = 1 has DDPM's variance;
        4. x_{t_prev} = mean + sigma z with z ~ N(0, I) (`noise`, drawn by the caller, so that its generator can live on
           the CPU whatever the device); no noise at the last step.
        """
        if sampler == "ddpm" and t_prev != t - 1:
            raise ValueError(f"a DDPM step goes from t to t - 1, got t = {t} and t_prev = {t_prev}")
        steps = torch.full((x_t.shape[0],), t, dtype=torch.long)
        x0 = self.predict_x0(x_t, eps, steps)  # 1.
        if clip:
            x0 = x0.clamp(-1.0, 1.0)
        alpha_bar, alpha_bar_prev = self.alphas_cumprod[t].item(), self.alpha_bar(t_prev)
        if sampler == "ddpm":
            beta, alpha = self.betas[t].item(), self.alphas[t].item()
            mean = (math.sqrt(alpha_bar_prev) * beta / (1 - alpha_bar)) * x0 + (math.sqrt(alpha) * (1 - alpha_bar_prev) / (1 - alpha_bar)) * x_t  # 2.
            if t == 0:
                return mean, x0
            if variance not in VARIANCES:
                raise ConfigError(f"variance must be one of {', '.join(VARIANCES)}, got {variance!r}.")
            sigma = math.sqrt(self.posterior_variance[t].item() if variance == "beta_tilde" else beta)  # 3.
        else:
            if clip:
                eps = self.eps_from_x0(x_t, x0, steps)  # 2.
            sigma = eta * math.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev))  # 3.
            mean = math.sqrt(alpha_bar_prev) * x0 + math.sqrt(max(1 - alpha_bar_prev - sigma**2, 0.0)) * eps  # 2.
        if sigma == 0:
            return mean, x0
        if noise is None:
            raise ValueError(f"a {sampler.upper()} step that adds noise (sigma {sigma:.3g} at t = {t}) needs noise z")
        return mean + sigma * noise, x0  # 4.

    def ddpm_step(
        self,
        eps: torch.Tensor,
        t: int,
        x_t: torch.Tensor,
        noise: torch.Tensor | None = None,
        variance: str = "beta_tilde",
        clip: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of Algorithm 2, from x_t to x_{t-1}; returns (x_{t-1}, the predicted x_0)."""
        return self.step(eps, t, t - 1, x_t, noise, sampler="ddpm", variance=variance, clip=clip)

    def ddim_step(
        self,
        eps: torch.Tensor,
        t: int,
        t_prev: int,
        x_t: torch.Tensor,
        eta: float = 0.0,
        noise: torch.Tensor | None = None,
        clip: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One DDIM step (eq. 12) from x_t to x_{t_prev}, t_prev = -1 meaning the clean image; returns (x_{t_prev}, the predicted x_0)."""
        return self.step(eps, t, t_prev, x_t, noise, sampler="ddim", eta=eta, clip=clip)

    def alpha_bar(self, t: int) -> float:
        """alpha_bar_t, with alpha_bar_{-1} = 1: the clean image."""
        return self.alphas_cumprod[t].item() if t >= 0 else 1.0

    def timestep_pairs(self, sampler: str, steps: int) -> list[tuple[int, int]]:
        """The reverse process as (t, t_prev) pairs, t_prev = -1 for the clean image: DDPM walks all T, DDIM `steps` trailing ones."""
        timesteps = list(range(self.timesteps - 1, -1, -1)) if sampler == "ddpm" else self.ddim_timesteps(steps)
        return list(zip(timesteps, timesteps[1:] + [-1]))

    def ddim_timesteps(self, steps: int) -> list[int]:
        """`steps` timesteps from T - 1 down, evenly spaced ("trailing"), each followed by the next or by -1 (clean)."""
        if not 1 <= steps <= self.timesteps:
            raise ConfigError(
                f"DDIM needs between 1 and {self.timesteps} steps (the model was trained with T = {self.timesteps}), got {steps}."
            )
        return [round(self.timesteps - i * self.timesteps / steps) - 1 for i in range(steps)]


def noised_at(schedule: NoiseSchedule, x0: torch.Tensor, t: int, seed: int = 0) -> tuple[torch.Tensor, float]:
    """(x_t, alpha_bar_t) for t counted 0 .. T, where 0 is x_0 itself (alpha_bar 1) and T is the last timestep.

    The noise comes from `seed` alone, so scrubbing t shows one noise image fading in rather than a new one each time."""
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    if t == 0:
        return x0, 1.0
    return schedule.add_noise(x0, noise, torch.tensor([t - 1])), schedule.alphas_cumprod[t - 1].item()
