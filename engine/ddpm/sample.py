"""Drawing digits from a trained DDPM, one denoising step at a time.

`frames` is a Python generator that yields a `Frame` after every network call, so a viewer can
play the whole reverse process; `generate` runs it to the end and returns only the images. It walks the
schedule's (t, t_prev) pairs for either sampler:

- "ddpm": ancestral sampling, DDPM's Algorithm 2, through all T steps (`ddpm_frames`).
- "ddim": DDIM with any number of steps and any eta (0: deterministic), on "trailing" timesteps (`ddim_frames`).

Each step, like diffusers' pipelines: the U-Net predicts the noise in x_t, the schedule steps.
With a class-conditional model, classifier-free guidance (Ho & Salimans 2021) mixes the noise predicted
with the label and with the null label, in one batch of twice the size:

    eps = eps(x_t, null) + guidance * (eps(x_t, label) - eps(x_t, null))

guidance 1 is the plain conditional model, 0 the unconditional one, above 1 trades variety for
clearer digits. Randomness comes from one torch.Generator on the CPU, seeded, so a seed draws the same
digits on any device.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

import numpy as np
import torch

from engine.core.config import check_fields, from_dict, seed_spec, spec
from engine.core.errors import ConfigError
from engine.core.grids import png_bytes, tile_images, upscale
from engine.ddpm.data import to_unit
from engine.ddpm.schedule import VARIANCES, NoiseSchedule
from engine.ddpm.unet import UNet, UNetConfig

SAMPLERS = ("ddpm", "ddim")
MAX_SAMPLES = 10_000
MAX_GUIDANCE = 20.0
# for a conditional model (an unconditional one samples with 1): what the shipped model's recorded sweep suggests
# (its card; tests/engine/test_ddpm_shipped.py holds them together). At 1.5, of 500 digits 99.4% were recognised and
# 99.8% read as the digit asked, 1.18x as far from MNIST's test digits as real digits are; at 1, 94.8% recognised;
# at 3, 99.8% recognised and 2.3x as far: stereotyped digits.
DEFAULT_GUIDANCE = 1.5
DEFAULT_DDIM_STEPS = 50
CHUNK = 250  # `generate` draws this many samples at once, to bound memory


@dataclass(frozen=True)
class SampleSettings:
    sampler: str = field(default="ddim", metadata=spec(choices=SAMPLERS))
    n: int = field(default=16, metadata=spec(1, MAX_SAMPLES, label="n (the number of samples)"))
    steps: int | None = None  # DDIM's number of steps (default 50); DDPM always runs all T
    eta: float = field(default=1.0, metadata=spec(0, 1, note="(0: deterministic DDIM, 1: DDPM's noise)"))  # DDIM only. With 50 steps, 1 draws
    # clean backgrounds where 0 leaves speckles on the quick preset's model (and scores 99% against 97.5%)
    digit: int | None = None  # a conditional model draws this digit; None: digits 0-9 in turn
    unconditional: bool = False  # a conditional model draws with the null label (no digit, no guidance)
    guidance: float | None = field(default=None, metadata=spec(0, MAX_GUIDANCE))  # classifier-free guidance scale; None: DEFAULT_GUIDANCE if conditional, else 1
    seed: int = field(default=0, metadata=seed_spec())
    clip: bool = True  # clip each predicted x_0 to [-1, 1]
    variance: str = field(default="beta_tilde", metadata=spec(choices=VARIANCES))  # DDPM's sigma_t^2: beta_tilde (posterior) or beta

    @classmethod
    def from_dict(cls, values: dict) -> "SampleSettings":
        return from_dict(cls, values, "sampling settings")

    def resolved(self, model: UNetConfig, timesteps: int) -> "SampleSettings":
        """These settings checked against the model, with the defaults filled in; ConfigError says what cannot work."""

        def require(ok: bool, message: str):
            if not ok:
                raise ConfigError(message)

        check_fields(self)
        steps = self.steps
        if self.sampler == "ddpm":
            require(
                steps is None or steps == timesteps,
                f"The DDPM sampler runs all T = {timesteps} steps (Algorithm 2); for {steps} steps use the DDIM sampler.",
            )
            steps = timesteps
        else:
            steps = DEFAULT_DDIM_STEPS if steps is None else steps
            require(1 <= steps <= timesteps, f"DDIM needs between 1 and {timesteps} steps (the model was trained with T = {timesteps}), got {steps}.")
        if self.digit is not None:
            require(
                0 <= self.digit < max(model.num_classes, 10),
                f"digit must be between 0 and {max(model.num_classes, 10) - 1}, got {self.digit}.",
            )
            require(model.conditional, f"This model was trained without labels, so it cannot be asked for a digit ({self.digit}): train one with conditioning.")
            require(not self.unconditional, "Ask for a digit or for unconditional samples, not both.")
        guidance = self.guidance
        if guidance is None:
            guidance = DEFAULT_GUIDANCE if model.conditional and not self.unconditional else 1.0
        require(
            guidance == 1.0 or (model.conditional and not self.unconditional),
            f"Guidance ({guidance:g}) needs a class-conditional model and a label to steer towards; "
            + ("this model was trained without labels: use guidance 1." if not model.conditional else "unconditional samples have none: use guidance 1."),
        )
        return replace(self, steps=steps, guidance=guidance)


@dataclass(frozen=True)
class Frame:
    """The state after one denoising step: the sample at its new noise level, and the step's guess of the clean image."""

    index: int  # 1 .. steps: the network calls made so far
    steps: int
    t: int  # the timestep the network saw at this step
    x: torch.Tensor  # (n, 1, 28, 28) in model space on the CPU: x_{t-1} for DDPM, x_{t_prev} for DDIM; the sample itself at the end
    x0: torch.Tensor  # (n, 1, 28, 28): the predicted x_0 (eq. 15), clipped
    alpha_bar: float  # alpha_bar of x's noise level: x = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps; 1 at the end

    @property
    def noise_std(self) -> float:
        """sqrt(1 - alpha_bar): how much of x is noise, from 1 (pure noise) to 0 (clean)."""
        return math.sqrt(max(1.0 - self.alpha_bar, 0.0))

    @property
    def final(self) -> bool:
        return self.index == self.steps


def sample_labels(model: UNetConfig, settings: SampleSettings, n: int, offset: int = 0) -> torch.Tensor | None:
    """One label per sample: the digit asked for, the null label, or digits 0-9 in turn (sample i draws i % 10)."""
    if not model.conditional:
        return None
    if settings.unconditional:
        return torch.full((n,), model.null_label, dtype=torch.long)
    if settings.digit is not None:
        return torch.full((n,), settings.digit, dtype=torch.long)
    return (torch.arange(offset, offset + n) % min(model.num_classes, 10)).long()


def predict_noise(model: UNet, x: torch.Tensor, t: int, labels: torch.Tensor | None, guidance: float) -> torch.Tensor:
    """eps_theta(x_t, t, label), with classifier-free guidance when it changes anything."""
    steps = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
    if labels is None or guidance == 1.0:
        return model(x, steps, labels)
    null = torch.full_like(labels, model.config.null_label)
    if guidance == 0.0:
        return model(x, steps, null)
    eps_label, eps_null = model(torch.cat([x, x]), torch.cat([steps, steps]), torch.cat([labels, null])).chunk(2)  # (2n, ...) -> 2 x (n, ...)
    return eps_null + guidance * (eps_label - eps_null)


def starting_noise(n: int, model: UNetConfig, generator: torch.Generator, device) -> torch.Tensor:
    shape = (n, model.channels, model.image_size, model.image_size)
    return torch.randn(shape, generator=generator).to(device)


@torch.inference_mode()
def frames(model: UNet, schedule: NoiseSchedule, settings: SampleSettings, device=None, labels_from: int = 0) -> Iterator[Frame]:
    """The sampler the settings name, from x_T ~ N(0, I) to the clean image; yields every step.

    One loop for both, as diffusers' pipelines walk `scheduler.timesteps`: the schedule hands out the (t, t_prev)
    pairs (DDPM all T, DDIM a trailing subsequence), the U-Net predicts the noise, the schedule steps.
    """
    settings = settings.resolved(model.config, schedule.timesteps)
    device = device or next(model.parameters()).device
    generator = torch.Generator().manual_seed(settings.seed)
    labels = sample_labels(model.config, settings, settings.n, labels_from)
    labels = labels.to(device) if labels is not None else None
    x = starting_noise(settings.n, model.config, generator, device)
    pairs = schedule.timestep_pairs(settings.sampler, settings.steps)
    stochastic = settings.sampler == "ddpm" or settings.eta > 0
    for index, (t, t_prev) in enumerate(pairs, start=1):
        eps = predict_noise(model, x, t, labels, settings.guidance)
        # z is drawn only for a step that adds noise, so that a seed draws the same digits as it always has
        noise = torch.randn(x.shape, generator=generator).to(device) if stochastic and t_prev >= 0 else None
        x, x0 = schedule.step(
            eps, t, t_prev, x, noise, sampler=settings.sampler, eta=settings.eta, variance=settings.variance, clip=settings.clip
        )
        yield Frame(index, len(pairs), t, x.float().cpu(), x0.float().cpu(), schedule.alpha_bar(t_prev))


def ddpm_frames(model: UNet, schedule: NoiseSchedule, settings: SampleSettings, device=None, labels_from: int = 0) -> Iterator[Frame]:
    """Algorithm 2: x_T ~ N(0, I); for t = T .. 1, x_{t-1} = mu_theta(x_t, t) + sigma_t z; yields every step."""
    return frames(model, schedule, replace(settings, sampler="ddpm"), device, labels_from)


def ddim_frames(model: UNet, schedule: NoiseSchedule, settings: SampleSettings, device=None, labels_from: int = 0) -> Iterator[Frame]:
    """DDIM (eq. 12) on `steps` trailing timesteps from T - 1 down to the clean image; yields every step."""
    return frames(model, schedule, replace(settings, sampler="ddim"), device, labels_from)


def generate(
    model: UNet,
    schedule: NoiseSchedule,
    settings: SampleSettings,
    device=None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Run a sampler to the end: (images (n, 28, 28) in [0, 1], the label each was drawn with or None).

    More than CHUNK samples are drawn CHUNK at a time, chunk k seeded with seed + k, so memory stays bounded.
    When `should_stop()` turns true between steps, drawing ends at once and the images are None.
    """
    settings = settings.resolved(model.config, schedule.timesteps)
    images, labels = [], []
    chunks = math.ceil(settings.n / CHUNK)
    total = chunks * settings.steps
    for k in range(chunks):
        size = min(CHUNK, settings.n - k * CHUNK)
        chunk = replace(settings, n=size, seed=settings.seed + k)
        for frame in frames(model, schedule, chunk, device, labels_from=k * CHUNK):
            if progress:
                progress(k * settings.steps + frame.index, total)
            if should_stop is not None and should_stop():
                return None, None
        images.append(to_unit(frame.x))
        drawn = sample_labels(model.config, chunk, size, k * CHUNK)
        if drawn is not None:
            labels.append(drawn.numpy())
    return np.concatenate(images), (np.concatenate(labels) if labels else None)


# pictures a person keeps: a grid, and the animation of the reverse process


def grid_image(images: np.ndarray, columns: int | None = None, scale: int = 2) -> np.ndarray:
    """(n, 28, 28) in [0, 1] -> one uint8 grid, enlarged `scale` times with crisp pixels."""
    return upscale(tile_images(images, columns=columns, scale="unit", padding=2), scale)


def grid_png(images: np.ndarray, columns: int | None = None, scale: int = 2) -> bytes:
    return png_bytes(grid_image(images, columns, scale))


def frames_to_keep(steps: int, count: int = 60) -> list[int]:
    """About `count` frame indices (1 .. steps), closer together near the end, where the digits take shape."""
    if steps <= count:
        return list(range(1, steps + 1))
    picked = {1 + round((steps - 1) * (1 - (1 - u) ** 2)) for u in np.linspace(0.0, 1.0, count)}
    return sorted(picked)


def denoising_gif(kept: list[Frame], columns: int | None = None, scale: int = 2, ms_per_frame: int = 80, hold_ms: int = 1500) -> bytes:
    """An animated GIF of the reverse process: x_t on the left, the predicted x_0 on the right; the last frame held."""
    from PIL import Image

    if not kept:
        raise ConfigError("An animation needs at least one frame.")
    pictures = []
    for frame in kept:
        left = grid_image(to_unit(frame.x), columns, scale)
        right = grid_image(to_unit(frame.x0), columns, scale)
        gap = np.full((left.shape[0], 8 * scale), 255, dtype=np.uint8)
        pictures.append(Image.fromarray(np.concatenate([left, gap, right], axis=1)))
    buffer = io.BytesIO()
    durations = [ms_per_frame] * (len(pictures) - 1) + [hold_ms]
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=durations, loop=0)
    return buffer.getvalue()
