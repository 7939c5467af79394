"""A sampler's run kept for the reverse-diffusion player: about 60 of its frames, the final digits, what it cost.

`record` draws one. `save_recording` / `load_recording` keep one beside a checkpoint, in the project's
checkpoint format (a .safetensors file of uint8 frames and a .json card, saved atomically, read with
bounds, never unpickled), so the page plays the shipped model's digits on a first visit without drawing
them: `python -m engine.ddpm record` makes checkpoints/ddpm_mnist_player from the shipped checkpoint,
with the settings the page starts at. The card names the weights it was drawn from (their sha256), so a
recording of other weights is never shown as theirs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from engine.core.checkpoints import SHIPPED_DIR, card_path, load_checkpoint, read_card, save_checkpoint
from engine.core.errors import CheckpointError, ConfigError
from engine.ddpm.data import to_unit
from engine.ddpm.sample import DEFAULT_GUIDANCE, Frame, SampleSettings, frames, frames_to_keep, sample_labels
from engine.ddpm.schedule import NoiseSchedule
from engine.ddpm.unet import UNet

KIND = "ddpm_recording"
MAX_FRAMES = 60  # frames the player holds: each is two small PNGs
SHIPPED_RECORDING = SHIPPED_DIR / "ddpm_mnist_player"
MAX_RECORDING_BYTES = 16 * 2**20
# what the page draws first, and what `record` keeps for it: sixteen digits, 0-9 in turn, DDIM's 50 steps
FIRST_SETTINGS = SampleSettings(sampler="ddim", n=16, steps=50, eta=1.0, seed=0, guidance=DEFAULT_GUIDANCE)


@dataclass(frozen=True)
class Recording:
    """A sampler run kept for the player."""

    frames: list[Frame]  # the kept frames, in order; the last is the final one
    images: np.ndarray  # (n, 28, 28) in [0, 1]: the samples
    labels: np.ndarray | None  # the digit each was drawn as (a conditional model), else None
    settings: SampleSettings  # resolved: steps and guidance filled in
    seconds: float
    calls: int  # network calls: one per step (a guided step is one call on a batch of twice the size)


def record(
    model: UNet,
    schedule: NoiseSchedule,
    settings: SampleSettings,
    keep: int = MAX_FRAMES,
    progress: Callable[[int, int], None] | None = None,
) -> Recording:
    """Run the sampler to the end, keeping about `keep` frames (closer together near the end, where digits take shape)."""
    settings = settings.resolved(model.config, schedule.timesteps)
    kept_indices = set(frames_to_keep(settings.steps, keep))
    kept, started = [], time.perf_counter()
    for frame in frames(model, schedule, settings):
        if progress is not None:
            progress(frame.index, settings.steps)
        if frame.index in kept_indices:
            kept.append(frame)
    seconds = time.perf_counter() - started
    labels = sample_labels(model.config, settings, settings.n)
    return Recording(kept, to_unit(kept[-1].x), None if labels is None else labels.numpy(), settings, seconds, settings.steps)


def recording_for(
    model: UNet,
    schedule: NoiseSchedule,
    settings: SampleSettings,
    weights_sha256: str | None,
    shipped: bool,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Recording, bool]:
    """(the recording of `settings`, whether it was read from a file rather than drawn now).

    For the shipped model the recording kept beside it is used when it was drawn from these weights with these
    settings, so a first visit plays digits without drawing them; anything else is drawn now."""
    settings = settings.resolved(model.config, schedule.timesteps)
    kept = load_recording(SHIPPED_RECORDING, weights_sha256) if shipped else None
    if kept is not None and kept.settings == settings:
        return kept, True
    return record(model, schedule, settings, progress=progress), False


def _as_uint8(x: torch.Tensor) -> np.ndarray:
    """Model space [-1, 1] -> uint8 pixels: what the player's PNGs show anyway (the noise beyond [-1, 1] is clipped there too)."""
    return np.round(to_unit(x) * 255).astype(np.uint8)


def _from_uint8(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)  # (n, 1, 28, 28)


def save_recording(path: str | Path, recording: Recording, weights_sha256: str, command: str = "") -> Path:
    """Keep `recording` at `path` (no suffix), naming the weights it was drawn from."""
    tensors = {
        "x": np.stack([_as_uint8(frame.x) for frame in recording.frames]),  # (frames, n, 28, 28)
        "x0": np.stack([_as_uint8(frame.x0) for frame in recording.frames]),
    }
    card = {
        "settings": asdict(recording.settings),
        "frames": [[frame.index, frame.steps, frame.t, frame.alpha_bar] for frame in recording.frames],
        "labels": None if recording.labels is None else [int(label) for label in recording.labels],
        "seconds": recording.seconds,
        "calls": recording.calls,
        "drawn_from_sha256": weights_sha256,
        "command": command,
    }
    return save_checkpoint(path, KIND, tensors, card)


def load_recording(path: str | Path, weights_sha256: str | None) -> Recording | None:
    """The recording kept at `path` when it was drawn from the weights with this sha256; None when there is none, or it
    was drawn from other weights. A recording that is there but broken raises CheckpointError."""
    path = Path(path)
    if not card_path(path).exists() or weights_sha256 is None:
        return None
    if read_card(path).get("drawn_from_sha256") != weights_sha256:
        return None
    arrays, card = load_checkpoint(path, KIND, max_bytes=MAX_RECORDING_BYTES)
    x, x0, meta = arrays.get("x"), arrays.get("x0"), card.get("frames")
    try:
        settings = SampleSettings.from_dict(card.get("settings"))
        if x is None or x0 is None or x.dtype != np.uint8 or x.shape != x0.shape or x.ndim != 4 or not isinstance(meta, list) or len(meta) != len(x):
            raise CheckpointError("frames")
        kept = [Frame(int(index), int(steps), int(t), _from_uint8(a), _from_uint8(b), float(alpha_bar))
                for (index, steps, t, alpha_bar), a, b in zip(meta, x, x0)]
        labels = card.get("labels")
        labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        if settings.n != x.shape[1] or (labels is not None and labels.shape != (settings.n,)):
            raise CheckpointError("count")
        return Recording(kept, x[-1].astype(np.float32) / 255.0, labels, settings, float(card["seconds"]), int(card["calls"]))
    except (CheckpointError, ConfigError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"The recording {card_path(path)} is not in the shape the player reads ({error}): "
                              f"make it again with `python -m engine.ddpm record`.") from None
