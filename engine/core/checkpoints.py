"""Checkpoints: tensors in `<name>.safetensors`, everything else in a JSON card `<name>.json`.

Nothing is pickled, so a checkpoint from anyone is safe to load. Both files are written
atomically (a temporary file in the same folder, flushed, then `os.replace`), weights first; the
card records the weights' sha256, so a card paired with the wrong or a half-written weights file
is caught on load. Loading checks the format version, the kind of model and every tensor's shape
against the card, and raises `CheckpointError` with a message a person can act on.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from engine.core import settings
from engine.core.errors import CheckpointError

FORMAT_VERSION = 1
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "checkpoints"  # the checkpoints that come with the project


def runs_dir() -> Path:
    """Where a person's own runs go: `DLLAB_RUNS_DIR`, default runs/ (ignored by git); see engine.core.settings."""
    return settings.runs_dir()


def card_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def weights_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".safetensors")


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; a checkpoint is an ordinary file
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def checkpoint_bytes(kind: str, tensors: dict[str, Any], card: dict[str, Any]) -> tuple[bytes, bytes]:
    """The two files of a checkpoint as bytes: (safetensors weights, JSON card).

    `kind` names the model ("sae", "gpt", ...); the loader refuses a checkpoint of another kind.
    """
    from safetensors.numpy import save

    arrays = {name: _to_numpy(value) for name, value in tensors.items()}
    blob = save(arrays)
    full_card = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        **card,
        "tensors": {name: {"shape": list(a.shape), "dtype": str(a.dtype)} for name, a in arrays.items()},
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
    }
    return blob, json.dumps(full_card, indent=2, default=_json_default).encode()


def save_checkpoint(path: str | Path, kind: str, tensors: dict[str, Any], card: dict[str, Any]) -> Path:
    """Write `tensors` (numpy arrays or torch tensors) and `card` beside each other; returns the weights path."""
    blob, card_json = checkpoint_bytes(kind, tensors, card)
    write_atomically(weights_path(path), blob)
    write_atomically(card_path(path), card_json)
    return weights_path(path)


def read_card(path: str | Path) -> dict[str, Any]:
    card_file = card_path(path)
    if not card_file.exists():
        raise CheckpointError(f"No checkpoint card at {card_file}: a checkpoint is a .safetensors file with a .json card beside it.")
    try:
        card = json.loads(card_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"The checkpoint card {card_file.name} is not valid JSON ({error}); the file is corrupt.") from None
    if not isinstance(card, dict) or "format_version" not in card:
        raise CheckpointError(f"{card_file.name} is not a Deep Learning Lab checkpoint card (it has no format_version).")
    return card


def load_checkpoint(path: str | Path, kind: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and check a checkpoint of the given kind; returns (numpy arrays, card)."""
    card = read_card(path)
    if card["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{card_path(path).name} has format version {card['format_version']}; this version of the lab reads version {FORMAT_VERSION}."
        )
    if card.get("kind") != kind:
        raise CheckpointError(f"{card_path(path).name} holds a {card.get('kind')!r} model, not a {kind!r} one.")
    weights_file = weights_path(path)
    if not weights_file.exists():
        raise CheckpointError(f"The weights file {weights_file} is missing (its card is there).")
    blob = weights_file.read_bytes()
    return load_checkpoint_bytes(blob, card, weights_file.name), card


def load_checkpoint_bytes(blob: bytes, card: dict[str, Any], name: str = "weights") -> dict[str, np.ndarray]:
    """Decode safetensors bytes (from disk or an upload) and check them against the card."""
    from safetensors.numpy import load

    if card.get("weights_sha256") and hashlib.sha256(blob).hexdigest() != card["weights_sha256"]:
        raise CheckpointError(f"{name} does not match its card (checksum differs): it is corrupt, truncated, or from another run.")
    try:
        arrays = load(blob)
    except Exception as error:  # safetensors raises its own error types, all meaning "not a valid file"
        raise CheckpointError(f"{name} is not a valid safetensors file ({error}).") from None
    expected = card.get("tensors", {})
    for tensor_name, spec in expected.items():
        if tensor_name not in arrays:
            raise CheckpointError(f"{name} has no tensor {tensor_name!r}, which its card lists.")
        if list(arrays[tensor_name].shape) != list(spec["shape"]):
            raise CheckpointError(
                f"Tensor {tensor_name!r} in {name} has shape {list(arrays[tensor_name].shape)}, its card says {spec['shape']}."
            )
    return arrays


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return np.ascontiguousarray(value)
    return value.detach().cpu().contiguous().numpy()  # a torch tensor


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def load_parameters(model, arrays: dict, prefix: str, where: Path) -> None:
    """Copy the arrays named `<prefix>.<parameter name>` into `model`, each checked for presence and shape."""
    import torch

    with torch.no_grad():
        for name, parameter in model.named_parameters():
            array = arrays.get(f"{prefix}.{name}")
            if array is None:
                raise CheckpointError(f"{where} has no weights for {prefix}.{name}.")
            if tuple(array.shape) != tuple(parameter.shape):
                raise CheckpointError(f"{where} has {prefix}.{name} of shape {list(array.shape)}; the model needs {list(parameter.shape)}.")
            parameter.copy_(torch.tensor(array))


def load_adam_moments(optimizer, model, arrays: dict, step, where: Path) -> None:
    """Adam's or AdamW's state from `adam.exp_avg.<name>` / `adam.exp_avg_sq.<name>` arrays, for resuming.

    Through load_state_dict, so the moments land on the parameters' device and dtype; `step` is the
    optimizer's step count from the card (None: the file holds weights only).
    """
    import torch

    if step is None:
        raise CheckpointError(f"{where} holds weights without the optimizer's state: it can be sampled from, not resumed.")
    names = {id(p): name for name, p in model.named_parameters()}
    ordered = [p for group in optimizer.param_groups for p in group["params"]]  # the numbering state_dict() uses
    state = {}
    for index, parameter in enumerate(ordered):
        name = names[id(parameter)]
        moments = [arrays.get(f"adam.{moment}.{name}") for moment in ("exp_avg", "exp_avg_sq")]
        if any(m is None or tuple(m.shape) != tuple(parameter.shape) for m in moments):
            raise CheckpointError(f"{where} lacks the optimizer's moments for {name}, or they have the wrong shape.")
        state[index] = {"step": torch.tensor(float(step)), "exp_avg": torch.tensor(moments[0]), "exp_avg_sq": torch.tensor(moments[1])}
    saved = optimizer.state_dict()
    saved["state"] = state
    optimizer.load_state_dict(saved)
