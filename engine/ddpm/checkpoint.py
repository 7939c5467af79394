"""DDPM checkpoints: the U-Net, its EMA and Adam's moments in safetensors, everything else in the JSON card.

A run folder holds two checkpoints, each a `.safetensors` file with a `.json` card beside it
(engine.core.checkpoints writes both, atomically):

    last    where the run is now: written at each epoch's end and when the run stops; `--resume` continues it
    best    the lowest validation loss of the EMA weights so far; what sampling uses by default

Their tensors:

    model.<parameter>           the weights being trained
    ema.<parameter>             their exponential moving average: what samples are drawn with
    adam.exp_avg.<parameter>    Adam's first moment
    adam.exp_avg_sq.<parameter> Adam's second moment

An exported checkpoint (`export`, what the project ships) keeps only `ema.*`: a quarter of the size.
The card holds the U-Net's and the schedule's settings ("model", "schedule"), what training wrote
(config, metrics, command, data fingerprint) and Adam's step. Loading builds the U-Net the card
describes on torch's "meta" device (shapes, no memory) and compares it with the file's header before
any tensor is read or the real U-Net allocated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from engine.core.checkpoints import (
    SHIPPED_DIR, card_metric, card_path, load_adam_moments, load_checkpoint, load_parameters, parameter_shapes, require_shapes, save_checkpoint,
    settings_from_card, training_tensors, weights_path,
)
from engine.core.errors import CheckpointError
from engine.ddpm.schedule import NoiseSchedule, ScheduleConfig
from engine.ddpm.unet import UNet, UNetConfig

KIND = "ddpm"
SHIPPED_CHECKPOINT = SHIPPED_DIR / "ddpm_mnist"  # EMA weights of the cpu preset, made by the command in its card


def best_in(folder: str | Path) -> Path:
    return Path(folder) / "best"


def last_in(folder: str | Path) -> Path:
    return Path(folder) / "last"


def find_checkpoint(path: str | Path, prefer: str = "best") -> Path:
    """A run folder (its `best`, or `last` when asked or when there is no best), a .safetensors/.json file, or a path without suffix."""
    path = Path(path)
    if path.is_dir():
        first, second = (best_in(path), last_in(path)) if prefer == "best" else (last_in(path), best_in(path))
        return first if card_path(first).exists() or not card_path(second).exists() else second
    if path.suffix in (".safetensors", ".json"):
        return path.with_suffix("")
    return path


def model_parts(card: dict, path: Path) -> tuple[UNetConfig, ScheduleConfig]:
    where = card_path(path)
    return settings_from_card(card, "model", UNetConfig, where), settings_from_card(card, "schedule", ScheduleConfig, where)


def check_model_fits(card: dict, shapes: dict[str, tuple[int, ...]], path: Path) -> None:
    """The U-Net the card describes must have exactly the parameters the file holds (its EMA, and its weights when
    they are there): checked before anything is allocated."""
    unet_config, _ = model_parts(card, path)
    ema = {name: shape for name, shape in shapes.items() if name.startswith("ema.")}
    if len(unet_config.channel_mults) > len(ema):  # each level has parameters: more levels than tensors cannot fit
        raise CheckpointError(
            f"The card {card_path(path)} declares {len(unet_config.channel_mults)} levels; the weights file holds {len(ema)} EMA tensors in all."
        )
    parameters = parameter_shapes(lambda: UNet(unet_config))  # no memory, however wide the card says the U-Net is
    for prefix in ("ema", "model"):
        held = {name: shape for name, shape in shapes.items() if name.startswith(f"{prefix}.")}
        if prefix == "ema" or held:
            expected = {f"{prefix}.{name}": shape for name, shape in parameters.items()}
            require_shapes(expected, held, card_path(path).name, weights_path(path).name)


def save_training(path: Path, model: UNet, ema: UNet, optimizer: torch.optim.Optimizer | None, schedule: ScheduleConfig, card: dict) -> Path:
    """Write the weights, the EMA, Adam's moments (when `optimizer` is given) and the card; returns the weights file."""
    tensors, step = training_tensors(model, optimizer, ema=ema)
    full_card = {
        **card,
        "model": asdict(model.config),
        "schedule": asdict(schedule),
        "params": model.parameter_count(),
        "optimizer_step": step,
    }
    return save_checkpoint(path, KIND, tensors, full_card)


def load_model(path: str | Path | None = None, device="cpu") -> tuple[UNet, NoiseSchedule, dict]:
    """The EMA weights of a checkpoint for sampling: (U-Net in eval mode on `device`, its schedule, the card).

    Without a path, the shipped checkpoint.
    """
    path = find_checkpoint(path if path is not None else SHIPPED_CHECKPOINT, prefer="best")
    if not card_path(path).exists() and path == SHIPPED_CHECKPOINT:
        raise CheckpointError(
            f"The shipped DDPM checkpoint ({weights_path(path)}) is not there: train one with "
            f"`python -m engine.ddpm train` and pass its run folder with --checkpoint."
        )
    arrays, card = load_checkpoint(path, KIND, check=lambda card, shapes: check_model_fits(card, shapes, path))
    unet_config, schedule_config = model_parts(card, path)
    model = UNet(unet_config)
    load_parameters(model, arrays, "ema", weights_path(path))
    return model.to(device).eval(), NoiseSchedule(schedule_config), card


@dataclass(frozen=True)
class TrainingState:
    step: int
    best_val_loss: float
    seconds: float
    started_from: dict | None = None  # the weights a fine-tuned run started from, so its resumed card still says so


def load_for(path: Path, model: UNet, schedule: ScheduleConfig, rule: str) -> tuple[dict, dict]:
    """(arrays, card) of a checkpoint made for exactly this U-Net and schedule; otherwise a CheckpointError that names
    the settings that differ, then `rule` (why they must match)."""
    arrays, card = load_checkpoint(path, KIND, check=lambda card, shapes: check_model_fits(card, shapes, path))
    unet_config, schedule_config = model_parts(card, path)
    if unet_config != model.config or schedule_config != schedule:
        raise CheckpointError(
            f"{weights_path(path)} was trained with {settings_difference(unet_config, schedule_config, model.config, schedule)}: {rule}"
        )
    return arrays, card


def restore_training(path: str | Path, model: UNet, ema: UNet, optimizer: torch.optim.Optimizer, schedule: ScheduleConfig) -> TrainingState:
    """Load a checkpoint into a freshly built model, EMA and optimizer, after checking that it was made for the same ones."""
    path = find_checkpoint(path, prefer="last")
    arrays, card = load_for(path, model, schedule,
                            "a run resumes with the model and schedule it started with. Drop those settings, or start a new run.")
    if card.get("optimizer_step") is None:
        raise CheckpointError(f"{weights_path(path)} holds weights without the optimizer's state: it can be sampled from, not resumed.")
    load_parameters(model, arrays, "model", weights_path(path))
    load_parameters(ema, arrays, "ema", weights_path(path))
    load_adam_moments(optimizer, model, arrays, card.get("optimizer_step"), weights_path(path))
    where = card_path(path)
    lineage = card.get("started_from")
    return TrainingState(
        card_metric(card, "step", int, where),
        card_metric(card, "best_val_loss", float, where),
        card_metric(card, "seconds", float, where, default=0.0),
        lineage if isinstance(lineage, dict) else None,
    )


def start_from_weights(path: str | Path, model: UNet, ema: UNet, schedule: ScheduleConfig) -> dict:
    """Fine-tuning: a checkpoint's EMA weights (what it samples with) become both the weights to train and their EMA.

    Adam starts afresh and the step count at 0, so any checkpoint will do, an exported one too. Returns
    what the new run's card says it started from.
    """
    path = find_checkpoint(path, prefer="best")
    arrays, card = load_for(path, model, schedule, "fine-tuning keeps the model and schedule of the weights it starts from. Drop those settings.")
    load_parameters(model, arrays, "ema", weights_path(path))
    load_parameters(ema, arrays, "ema", weights_path(path))
    source = {"checkpoint": str(weights_path(path)), "command": card.get("command")}
    metrics = card.get("metrics")
    if isinstance(metrics, dict):
        source["metrics"] = {key: value for key, value in metrics.items() if isinstance(value, (int, float)) and not isinstance(value, bool)}
    return source


def settings_difference(saved_unet: UNetConfig, saved_schedule: ScheduleConfig, unet: UNetConfig, schedule: ScheduleConfig) -> str:
    pairs = [(f.name, getattr(saved_unet, f.name), getattr(unet, f.name)) for f in fields(UNetConfig)]
    pairs += [(f.name, getattr(saved_schedule, f.name), getattr(schedule, f.name)) for f in fields(ScheduleConfig)]
    differing = [(name, was, now) for name, was, now in pairs if was != now]
    was = ", ".join(f"{name} {value}" for name, value, _ in differing)
    now = ", ".join(f"{name} {value}" for name, _, value in differing)
    return f"{was}, but this run asks for {now}"


def record_in_card(path: str | Path, key: str, value: dict) -> Path:
    """Rewrite a checkpoint with `value` under `key` in its card (such as a measured guidance sweep); the weights stay as
    they are, and the pair is replaced atomically like any save."""
    path = find_checkpoint(path, prefer="best")
    arrays, card = load_checkpoint(path, KIND, check=lambda card, shapes: check_model_fits(card, shapes, path))
    kept = {name: item for name, item in card.items() if name not in ("format_version", "kind", "tensors", "weights_sha256")}
    return save_checkpoint(path, KIND, arrays, {**kept, key: value})


def export_checkpoint(source: str | Path, out: str | Path) -> Path:
    """Write `source`'s EMA weights and card without the training weights and Adam's moments; returns the weights file.

    `out` is a folder (the checkpoint goes to <out>/best) or a path without suffix, like checkpoints/ddpm_mnist.
    """
    source = find_checkpoint(source, prefer="best")
    arrays, card = load_checkpoint(source, KIND, check=lambda card, shapes: check_model_fits(card, shapes, source))
    tensors = {name: array for name, array in arrays.items() if name.startswith("ema.")}
    if not tensors:
        raise CheckpointError(f"{weights_path(source)} has no EMA weights to export.")
    kept = {key: value for key, value in card.items() if key not in ("format_version", "kind", "tensors", "weights_sha256")}
    target = best_in(out) if Path(out).is_dir() else find_checkpoint(out)
    return save_checkpoint(target, KIND, tensors, {**kept, "optimizer_step": None, "exported_from": str(weights_path(source))})
