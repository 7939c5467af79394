"""Sparse autoencoder checkpoints: the weights in safetensors, everything else in the JSON card.

A checkpoint is `<name>.safetensors` with `<name>.json` beside it (engine.core.checkpoints writes both,
atomically). The tensors are UFLDL's W1 (hidden, visible), W2 (visible, hidden), b1 and b2, the mean
activation of each hidden unit over the training patches, and a few training patches (one per column) for
showing reconstructions without the training data. The card holds the config, the cost before and after
with its three terms, every iteration's row, the command, the data's fingerprint and UFLDL's published
figures. Loading checks the arrays the card's config needs against the file's header before any is read.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from engine.core.checkpoints import (
    SHIPPED_DIR, card_metric, card_path, checkpoint_bytes, describe, load_checkpoint, save_checkpoint, settings_from_card, weights_path,
)
from engine.core.errors import CheckpointError
from engine.sae.model import CostTerms, parameter_count
from engine.sae.train import UFLDL_COST_TRAINED, UFLDL_COST_UNTRAINED, SAEResult, SAETrainConfig

KIND = "sae"
SHIPPED_CHECKPOINT = SHIPPED_DIR / "sae_ufldl"  # UFLDL's defaults on Olshausen's images, made by the command in its card


def result_card(result: SAEResult, command: str, data_fingerprint: str) -> tuple[dict, dict]:
    """The tensors and the card that describe a trained result."""
    W1, W2, b1, b2 = result.parameters()
    card = {
        "config": asdict(result.config),
        "metrics": {
            "cost_before": result.initial.total,
            "cost_after": result.final.total,
            "terms_before": asdict(result.initial),
            "terms_after": asdict(result.final),
            "iterations": result.iterations,
            "stopped": result.stopped,
            "seconds": round(result.seconds, 2),
            "parameters": parameter_count(result.config.visible_size, result.config.hidden_size),
        },
        "reference": {"ufldl_cost_untrained": UFLDL_COST_UNTRAINED, "ufldl_cost_trained": UFLDL_COST_TRAINED},
        "command": command,
        "data_fingerprint": data_fingerprint,
        "history": result.history,
    }
    tensors = {"W1": W1, "W2": W2, "b1": b1, "b2": b2, "mean_activation": result.mean_activation, "sample_patches": result.sample_patches}
    return tensors, card


def save_result(path: str | Path, result: SAEResult, command: str, data_fingerprint: str) -> Path:
    tensors, card = result_card(result, command, data_fingerprint)
    return save_checkpoint(path, KIND, tensors, card)


def result_bytes(result: SAEResult, command: str, data_fingerprint: str) -> tuple[bytes, bytes]:
    """(weights .safetensors, card .json) for a download."""
    tensors, card = result_card(result, command, data_fingerprint)
    return checkpoint_bytes(KIND, tensors, card)


def check_result_fits(card: dict, shapes: dict[str, tuple[int, ...]], path: str | Path) -> None:
    """The arrays the card's config needs, against the file's header: checked before any array is read."""
    config = settings_from_card(card, "config", SAETrainConfig, card_path(path))
    hidden, visible = config.hidden_size, config.visible_size
    needed = {"W1": (hidden, visible), "W2": (visible, hidden), "b1": (hidden,), "b2": (visible,), "mean_activation": (hidden,)}
    for name, shape in needed.items():
        if name not in shapes:
            raise CheckpointError(f"{weights_path(path).name} has no {name}, which an autoencoder needs.")
        if tuple(shapes[name]) != shape:
            raise CheckpointError(
                f"{name} has shape {list(shapes[name])}, but the card's config (hidden_size {hidden}, patch_size "
                f"{config.patch_size}) needs {list(shape)}."
            )
    patches = shapes.get("sample_patches")
    if patches is None or len(patches) != 2 or patches[0] != visible:
        shown = list(patches) if patches is not None else "missing"
        raise CheckpointError(f"sample_patches is {shown}; the card's config needs [{visible}, k]: one {visible}-pixel patch per column.")


def cost_terms_from(card: dict, key: str, where: Path) -> CostTerms:
    terms = card["metrics"].get(key)
    names = [field.name for field in fields(CostTerms)]
    if not isinstance(terms, dict) or sorted(terms) != sorted(names) or not all(type(terms[n]) in (int, float) for n in names):
        raise CheckpointError(f"The card {where} has metrics.{key} {describe(terms)}; it should give {', '.join(names)} as numbers.")
    return CostTerms(**{name: float(terms[name]) for name in names})


def history_from(card: dict, where: Path) -> list[dict[str, float]]:
    history = card.get("history", [])
    rows_ok = isinstance(history, list) and all(
        isinstance(row, dict) and all(type(value) in (int, float) for value in row.values()) for row in history
    )
    if not rows_ok:
        raise CheckpointError(f"The card {where} has history {describe(history)}; it should be a list of rows of numbers.")
    return history


def load_result(path: str | Path) -> tuple[SAEResult, dict]:
    arrays, card = load_checkpoint(path, kind=KIND, check=lambda card, shapes: check_result_fits(card, shapes, path))
    where = card_path(path)
    config = settings_from_card(card, "config", SAETrainConfig, where)
    W1, W2, b1, b2 = (arrays[name] for name in ("W1", "W2", "b1", "b2"))
    theta = np.concatenate([W1.ravel(order="F"), W2.ravel(order="F"), b1, b2]).astype(np.float64)
    iterations = card_metric(card, "iterations", int, where)  # first: it checks that metrics is an object
    result = SAEResult(
        config=config,
        theta=theta,
        initial=cost_terms_from(card, "terms_before", where),
        final=cost_terms_from(card, "terms_after", where),
        iterations=iterations,
        stopped=card_metric(card, "stopped", bool, where),
        seconds=card_metric(card, "seconds", float, where),
        mean_activation=arrays["mean_activation"].astype(np.float64),
        sample_patches=arrays["sample_patches"].astype(np.float64),
        history=history_from(card, where),
    )
    return result, card
