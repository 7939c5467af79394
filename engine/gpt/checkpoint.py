"""GPT checkpoints: weights and AdamW's moments in safetensors, everything else in the JSON card.

A run folder holds `model.safetensors` and `model.json` (engine.core.checkpoints writes both,
atomically). The tensors are

    model.<parameter>           every parameter once; the output layer is tied to model.transformer.wte.weight
    adam.exp_avg.<parameter>    AdamW's first moment, when the checkpoint can be resumed
    adam.exp_avg_sq.<parameter> AdamW's second moment

To what training writes in the card (config, metrics, command, data fingerprint) this module adds
the model's shape ("model"), the vocabulary ("tokenizer"), the parameter counts and AdamW's step.
Loading checks all of it against the model and the data it meets, and says plainly what differs; the
model the card describes is built on torch's "meta" device (shapes, no memory) and compared with the
file's header before any tensor is read or the real model allocated, so a card that lies about the
model's size is refused at once.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch

from engine.core.checkpoints import (
    SHIPPED_DIR, card_metric, card_path, load_adam_moments, load_checkpoint, load_parameters, parameter_shapes, require_shapes, save_checkpoint, settings_from_card,
    training_tensors, weights_path,
)
from engine.core.errors import CheckpointError, LabError
from engine.gpt.data import CharData, CharTokenizer
from engine.gpt.model import GPT, GPTConfig

KIND = "gpt"
SHIPPED_CHECKPOINT = SHIPPED_DIR / "gpt_shakespeare"  # gpt_shakespeare.safetensors and .json
LAYER_TENSOR = re.compile(r"model\.transformer\.h\.(\d+)\.")  # model.transformer.h.<layer>.<parameter>


def checkpoint_in(folder: str | Path) -> Path:
    """Where a run folder's checkpoint goes: <folder>/model(.safetensors, .json)."""
    return Path(folder) / "model"


def find_checkpoint(path: str | Path) -> Path:
    """A run folder, a .safetensors or .json file, or the path without suffix -> the checkpoint's path."""
    path = Path(path)
    if path.is_dir():
        return checkpoint_in(path)
    if path.suffix in (".safetensors", ".json"):
        return path.with_suffix("")
    return path


def save_training(path: Path, model: GPT, optimizer: torch.optim.Optimizer, tokenizer: CharTokenizer, card: dict,
                  batch_stream: torch.Tensor | None = None) -> Path:
    """Write the model, AdamW's moments, the batch generator's state (`batch_stream`, so that a resumed run
    draws the batches the run would have drawn) and the card; returns the weights file."""
    tensors, step = training_tensors(model, optimizer)
    if batch_stream is not None:
        tensors = {"batches.state": batch_stream, **tensors}  # first, where the card has always listed it
    full_card = {
        **card,
        "model": asdict(model.config),
        "tokenizer": tokenizer.to_dict(),
        "params": {"non_embedding": model.get_num_params(), "total": model.get_num_params(non_embedding=False)},
        "optimizer_step": step,
    }
    return save_checkpoint(path, KIND, tensors, full_card)


def model_parts(card: dict, path: Path) -> tuple[GPTConfig, CharTokenizer]:
    """The model's config and vocabulary from a card, consistent with each other."""
    where = card_path(path)
    config = settings_from_card(card, "model", GPTConfig, where)
    try:
        tokenizer = CharTokenizer.from_dict(card.get("tokenizer"))
    except LabError as error:
        raise CheckpointError(f"The card {where} has no usable vocabulary ({error}).") from None
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"The card {where} is inconsistent: its vocabulary has {tokenizer.vocab_size} characters, its model {config.vocab_size}."
        )
    return config, tokenizer


def check_model_fits(card: dict, shapes: dict[str, tuple[int, ...]], path: Path) -> None:
    """The model the card describes must have exactly the parameters the file holds: checked before anything is allocated."""
    config, _ = model_parts(card, path)
    layers = {int(match.group(1)) for name in shapes if (match := LAYER_TENSOR.match(name))}
    if config.n_layer != len(layers):
        raise CheckpointError(
            f"The card {card_path(path)} declares {config.n_layer} layers (n_embd {config.n_embd}, block_size {config.block_size}); "
            f"the weights file holds {len(layers)}."
        )
    expected = {f"model.{name}": shape for name, shape in parameter_shapes(lambda: GPT(config)).items()}  # no memory
    held = {name: shape for name, shape in shapes.items() if name.startswith("model.")}
    require_shapes(expected, held, card_path(path).name, weights_path(path).name)


def load_model(path: str | Path, device="cpu") -> tuple[GPT, CharTokenizer, dict]:
    """A trained model for sampling: (model in eval mode on `device`, its tokenizer, the card)."""
    path = find_checkpoint(path)
    arrays, card = load_checkpoint(path, KIND, check=lambda card, shapes: check_model_fits(card, shapes, path))
    config, tokenizer = model_parts(card, path)
    model = GPT(config)
    load_parameters(model, arrays, "model", weights_path(path))
    return model.to(device).eval(), tokenizer, card


@dataclass(frozen=True)
class TrainingState:
    iter_num: int
    best_val_loss: float
    seconds: float
    batch_stream: torch.Tensor | None = None  # the batch generator's state; checkpoints from before it was saved lack it


def restore_training(path: str | Path, model: GPT, optimizer: torch.optim.Optimizer, data: CharData) -> TrainingState:
    """Load a checkpoint into a freshly built model and optimizer, after checking both match it."""
    path = find_checkpoint(path)
    arrays, card = load_checkpoint(path, KIND, check=lambda card, shapes: check_model_fits(card, shapes, path))
    config, tokenizer = model_parts(card, path)
    if tokenizer != data.tokenizer:
        raise CheckpointError(vocabulary_difference(tokenizer, data.tokenizer, data.name))
    if replace(config, dropout=model.config.dropout) != model.config:  # dropout may change between runs, as in nanoGPT
        raise CheckpointError(
            f"{weights_path(path)} was trained with {settings_difference(config, model.config)}: a run resumes with the "
            f"model it started with. Drop those settings, or start a new run."
        )
    load_parameters(model, arrays, "model", weights_path(path))
    load_adam_moments(optimizer, model, arrays, card.get("optimizer_step"), weights_path(path))
    where = card_path(path)
    iter_num, best_val_loss = card_metric(card, "iter", int, where), card_metric(card, "best_val_loss", float, where)
    seconds = card_metric(card, "seconds", float, where, default=0.0)
    stream = torch.from_numpy(arrays["batches.state"].copy()) if "batches.state" in arrays else None
    if stream is not None:
        try:
            torch.Generator().set_state(stream)  # what the resumed run will do with it; a wrong state fails here, not mid-run
        except (RuntimeError, TypeError) as error:
            raise CheckpointError(f"{weights_path(path)} holds a batch generator state torch cannot use ({error}).") from None
    return TrainingState(iter_num, best_val_loss, seconds, stream)


def vocabulary_difference(checkpoint: CharTokenizer, text: CharTokenizer, text_name: str) -> str:
    lacks = sorted(set(checkpoint.chars) - set(text.chars))
    adds = sorted(set(text.chars) - set(checkpoint.chars))
    parts = []
    if adds:
        parts.append(f"has {len(adds)} character(s) the checkpoint's vocabulary lacks ({', '.join(map(repr, adds[:10]))})")
    if lacks:
        parts.append(f"lacks {len(lacks)} of its characters ({', '.join(map(repr, lacks[:10]))})")
    return (
        f"The checkpoint's vocabulary ({checkpoint.vocab_size} characters) does not match {text_name}'s "
        f"({text.vocab_size} characters): the text {' and '.join(parts)}. Resume with the text the checkpoint was trained on."
    )


def settings_difference(saved: GPTConfig, asked: GPTConfig) -> str:
    differing = [f.name for f in fields(GPTConfig) if f.name != "dropout" and getattr(saved, f.name) != getattr(asked, f.name)]
    was = ", ".join(f"{name} {getattr(saved, name)}" for name in differing)
    now = ", ".join(f"{name} {getattr(asked, name)}" for name in differing)
    return f"{was}, but this run asks for {now}"
