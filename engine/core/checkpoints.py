"""Checkpoints: tensors in `<name>.safetensors`, everything else in a JSON card `<name>.json`.

Nothing is pickled, so a checkpoint from anyone is safe to load. The card records the weights'
sha256, so a card is paired with its own weights and no other.

A save is atomic as a pair. While an older checkpoint exists, the new pair is first written beside
it as `<name>.next.safetensors` and `<name>.next.json` (each through a temporary file and
`os.replace`), then renamed over the old one, weights first. At every instant one complete pair
exists: the old one until the staged card lands, then the staged card with the staged (later the
main) weights, then the new main pair. The loader takes the newest card whose checksum matches a
weights file; the next save finishes what a killed save started and removes its leftovers.

Loading believes nothing before it is checked, and allocates nothing large before then: files are
read only if they are regular and within a size budget; the card's fields are checked for their
types; the safetensors header is parsed here with bounded reads and compared with the card; a lab
can check that the card's model has the header's shapes before the tensors are read. Every failure
is a `CheckpointError` with a message a person can act on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import stat
import typing
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

from engine.core import settings
from engine.core.errors import CheckpointError, LabError

FORMAT_VERSION = 1
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "checkpoints"  # the checkpoints that come with the project
MAX_WEIGHTS_BYTES = 2 * 1024**3  # the largest model a lab trains is ~1 GB with Adam's moments; more is a lie or a mistake
MAX_CARD_BYTES = 4 * 1024**2  # a card is a few KB; a long history or a big vocabulary stays far below this
MAX_HEADER_BYTES = 16 * 1024**2  # a safetensors header lists names and shapes: kilobytes even for thousands of tensors
STAGED = "next"  # <name>.next.safetensors / <name>.next.json: a pair being committed

# A card names numpy's dtypes; a safetensors header names its own codes, each with its item size.
SAFETENSORS_DTYPES = {
    "float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64", "int32": "I32", "int16": "I16",
    "int8": "I8", "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8", "bool": "BOOL",
}
ITEM_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2,
              "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}

ShapeCheck = Callable[[dict[str, Any], dict[str, tuple[int, ...]]], None]


def runs_dir() -> Path:
    """Where a person's own runs go: `DLLAB_RUNS_DIR`, default runs/ (ignored by git); see engine.core.settings."""
    return settings.runs_dir()


def card_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def weights_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".safetensors")


def staged_card_path(path: str | Path) -> Path:
    card = card_path(path)
    return card.with_name(f"{card.stem}.{STAGED}{card.suffix}")


def staged_weights_path(path: str | Path) -> Path:
    weights = weights_path(path)
    return weights.with_name(f"{weights.stem}.{STAGED}{weights.suffix}")


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    import tempfile

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
    """Write `tensors` (numpy arrays or torch tensors) and `card` as one pair; returns the weights path.

    The checkpoint already at `path` stays loadable until the new pair is complete (see the module's docstring).
    """
    blob, card_json = checkpoint_bytes(kind, tensors, card)
    settle(path)
    weights, card_file = weights_path(path), card_path(path)
    if not card_file.exists():  # nothing to keep: the card, written last, completes the pair
        write_atomically(weights, blob)
        write_atomically(card_file, card_json)
    else:
        staged_weights, staged_card = staged_weights_path(path), staged_card_path(path)
        write_atomically(staged_weights, blob)
        write_atomically(staged_card, card_json)  # from here the staged pair is the newest complete one
        os.replace(staged_weights, weights)  # the staged card now pairs with the main weights
        os.replace(staged_card, card_file)
    _sync_folder(weights.parent)
    return weights


def changed_at(path: str | Path) -> float:
    """When a checkpoint last changed (for cache keys): its card's time, or a staged card's, which a save
    killed between its last two renames leaves newer; 0 when there is neither."""
    times = [card.stat().st_mtime for card in (card_path(path), staged_card_path(path)) if card.exists()]
    return max(times, default=0.0)


def settle(path: str | Path) -> None:
    """Finish or undo what a killed save left at `path`: the newest complete pair becomes the main pair, the rest goes."""
    staged_card, staged_weights = staged_card_path(path), staged_weights_path(path)
    if staged_card.exists() or staged_weights.exists():
        newest = _newest_matching_pair(path)
        if newest is not None and newest[0] == staged_card:
            if newest[1] == staged_weights:
                os.replace(staged_weights, weights_path(path))
            os.replace(staged_card, card_path(path))
        staged_card.unlink(missing_ok=True)
        staged_weights.unlink(missing_ok=True)
    for file in (card_path(path), weights_path(path), staged_card, staged_weights):
        for temporary in file.parent.glob(f".{file.name}.*.tmp"):  # write_atomically's, from a process killed mid-write
            temporary.unlink(missing_ok=True)


def _candidate_pairs(path: str | Path) -> list[tuple[Path, Path]]:
    """(card, weights) pairs a checkpoint may be in, newest first; only a save in progress leaves a staged card."""
    staged_card, card = staged_card_path(path), card_path(path)
    return [(staged_card, staged_weights_path(path)), (staged_card, weights_path(path)), (card, weights_path(path))]


def _newest_matching_pair(path: str | Path) -> tuple[Path, Path] | None:
    digests: dict[Path, str | None] = {}
    for card_file, weights_file in _candidate_pairs(path):
        try:
            declared = _parse_card(_read_bounded(card_file, MAX_CARD_BYTES, "checkpoint card"), card_file.name).get("weights_sha256")
        except (OSError, CheckpointError):
            continue
        if weights_file not in digests:
            digests[weights_file] = _file_sha256(weights_file)
        if declared is not None and declared == digests[weights_file]:
            return card_file, weights_file
    return None


def _file_sha256(path: Path) -> str | None:
    try:
        file, _ = _open_regular(path, "weights file")
    except (OSError, CheckpointError):
        return None
    digest = hashlib.sha256()
    with file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _sync_folder(folder: Path) -> None:
    """Flush the folder's entries, so the renames survive a power cut too; best effort (not every system allows it)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# --- reading --------------------------------------------------------------------------------------------------


def read_card(path: str | Path) -> dict[str, Any]:
    """The card of the checkpoint at `path`: the staged card while a save is committing, else the main one.

    Which files exist decides, without checksums, so that listing many runs stays cheap; load_checkpoint verifies.
    """
    staged = staged_card_path(path)
    for card_file in (staged, card_path(path)):
        if card_file == staged and not staged.exists():
            continue
        try:
            data = _read_bounded(card_file, MAX_CARD_BYTES, "checkpoint card")
        except FileNotFoundError:
            continue  # a save renamed the staged card over the main one meanwhile
        except OSError as error:
            raise CheckpointError(f"Cannot read the checkpoint card {card_file}: {error.strerror}.") from None
        card = _parse_card(data, card_file.name)
        _check_version(card, card_file.name)
        return card
    raise CheckpointError(f"No checkpoint card at {card_path(path)}: a checkpoint is a .safetensors file with a .json card beside it.")


def load_checkpoint(path: str | Path, kind: str, max_bytes: int = MAX_WEIGHTS_BYTES,
                    check: ShapeCheck | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and check the newest complete checkpoint of the given kind at `path`; returns (numpy arrays, card).

    `check(card, shapes)` is called with the header's tensor shapes before any tensor is read: a lab raises
    CheckpointError there when the model the card describes would not have those shapes.
    """
    candidates = [(card_file, weights_file) for card_file, weights_file in _candidate_pairs(path) if card_file.exists()]
    if not candidates:
        raise CheckpointError(f"No checkpoint card at {card_path(path)}: a checkpoint is a .safetensors file with a .json card beside it.")
    failures: dict[tuple[Path, Path], CheckpointError] = {}
    for card_file, weights_file in candidates:
        try:
            return _load_pair(card_file, weights_file, kind, max_bytes, check)
        except CheckpointError as error:
            failures[(card_file, weights_file)] = error
    main_failure = failures.get((card_path(path), weights_path(path)))  # the pair a person sees, so the one to explain
    raise (main_failure or next(iter(failures.values()))).with_traceback(None)


def _load_pair(card_file: Path, weights_file: Path, kind: str, max_bytes: int, check: ShapeCheck | None):
    try:
        card = _parse_card(_read_bounded(card_file, MAX_CARD_BYTES, "checkpoint card"), card_file.name)
    except OSError as error:
        raise CheckpointError(f"Cannot read the checkpoint card {card_file}: {error.strerror}.") from None
    check_card(card, kind, card_file.name)
    try:
        file, size = _open_regular(weights_file, "weights file")
    except FileNotFoundError:
        raise CheckpointError(f"The weights file {weights_file} is missing (its card is there).") from None
    except OSError as error:
        raise CheckpointError(f"Cannot read the weights file {weights_file}: {error.strerror}.") from None
    with file:
        try:
            header = read_header(file, size, weights_file.name, max_bytes)
        except CheckpointError:
            if size <= max_bytes and card.get("weights_sha256") not in (None, _file_sha256(weights_file)):
                # the root cause, streamed through a hash without reading the file into memory
                raise CheckpointError(f"{weights_file.name} does not match its card (checksum differs): it is corrupt, truncated, "
                                      f"or from another run.") from None
            raise
        compare_tensors(card["tensors"], header, weights_file.name)
        if check is not None:
            check(card, {name: shape for name, (_, shape) in header.items()})
        file.seek(0)
        blob = file.read(size + 1)
    if len(blob) != size:
        raise CheckpointError(f"{weights_file.name} changed while it was read ({size:,} bytes, then {len(blob):,}): try again.")
    return _decode(blob, card, weights_file.name), card


def load_checkpoint_bytes(blob: bytes, card: dict[str, Any], name: str = "weights", max_bytes: int = MAX_WEIGHTS_BYTES) -> dict[str, np.ndarray]:
    """Decode safetensors bytes (from disk or an upload) and check them against the card."""
    if not isinstance(card, dict):
        raise CheckpointError(f"A checkpoint card is a JSON object; this one is {describe(card)}.")
    _check_tensor_list(card.get("tensors", {}), name)
    _check_checksum_field(card, name)
    header = read_header(io.BytesIO(blob), len(blob), name, max_bytes)
    compare_tensors(card.get("tensors", {}), header, name)
    return _decode(blob, card, name)


def _decode(blob: bytes, card: dict[str, Any], name: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    if card.get("weights_sha256") is not None and hashlib.sha256(blob).hexdigest() != card["weights_sha256"]:
        raise CheckpointError(f"{name} does not match its card (checksum differs): it is corrupt, truncated, or from another run.")
    try:
        return load(blob)
    except Exception as error:  # safetensors raises its own error types, all meaning "not a valid file"
        raise CheckpointError(f"{name} is not a valid safetensors file ({error}).") from None


def _open_regular(path: Path, what: str) -> tuple[BinaryIO, int]:
    """An open file and its size, refusing anything but a regular file: a FIFO or a device reports size 0
    and then blocks or never ends. Opened without blocking, so that a FIFO cannot hang the open itself."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode):
        os.close(descriptor)
        raise CheckpointError(
            f"The {what} {path} is not a regular file (it is {_file_type(status.st_mode)}): a checkpoint is read only from ordinary files."
        )
    return os.fdopen(descriptor, "rb"), status.st_size


def _file_type(mode: int) -> str:
    kinds = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]
    return next((name for test, name in kinds if test(mode)), "not a plain file")


def _read_bounded(path: Path, limit: int, what: str) -> bytes:
    file, size = _open_regular(path, what)
    with file:
        data = file.read(limit + 1) if size <= limit else b""
    if size > limit or len(data) > limit:
        raise CheckpointError(f"The {what} {path} is {max(size, len(data)):,} bytes; a {what} is at most {limit:,} bytes.")
    return data


def _parse_card(data: bytes, name: str) -> dict[str, Any]:
    try:
        card = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:  # RecursionError: nesting deeper than Python's stack
        raise CheckpointError(f"The checkpoint card {name} is not valid JSON ({str(error)[:120]}); the file is corrupt.") from None
    if not isinstance(card, dict) or "format_version" not in card:
        raise CheckpointError(f"{name} is not a Deep Learning Lab checkpoint card (it has no format_version).")
    return card


def describe(value: Any) -> str:
    """A card's value as a person should read it: its JSON text, shortened, and its JSON type, e.g. '"1" (a string)'."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, bool) or value is None:
        kind = "a boolean" if value is not None else "null"
    elif isinstance(value, int):
        kind = "a whole number"
    else:
        kinds = {float: "a decimal number", str: "a string", list: "a list", dict: "an object"}
        kind = kinds.get(type(value), type(value).__name__)
    return f"{text} ({kind})"


def _check_version(card: dict[str, Any], name: str) -> None:
    version = card.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise CheckpointError(
            f"{name} has format version {describe(version)}; this version of the lab reads version {FORMAT_VERSION} (a whole number)."
        )


def check_card(card: dict[str, Any], kind: str, name: str) -> None:
    """The fields every card has, with their types: format_version, kind, tensors, weights_sha256."""
    _check_version(card, name)
    if card.get("kind") != kind:
        held = repr(card.get("kind")) if isinstance(card.get("kind"), str) else describe(card.get("kind"))
        raise CheckpointError(f"{name} holds a {held} model, not a {kind!r} one.")
    if "tensors" not in card:
        raise CheckpointError(f"{name} lists no tensors: it is not a complete checkpoint card.")
    _check_tensor_list(card["tensors"], name)
    _check_checksum_field(card, name)


def _check_tensor_list(tensors: Any, name: str) -> None:
    if not isinstance(tensors, dict):
        raise CheckpointError(f"{name}'s tensors are {describe(tensors)}; a card lists them as an object of name: shape and dtype.")
    for tensor_name, spec in tensors.items():
        shape = spec.get("shape") if isinstance(spec, dict) else None
        dtype = spec.get("dtype") if isinstance(spec, dict) else None
        if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
            raise CheckpointError(f"{name} gives tensor {tensor_name!r} the shape {describe(shape)}; a shape is a list of whole numbers, 0 or more.")
        if dtype not in SAFETENSORS_DTYPES:
            raise CheckpointError(f"{name} gives tensor {tensor_name!r} the dtype {describe(dtype)}; it should be one of {', '.join(SAFETENSORS_DTYPES)}.")


def _check_checksum_field(card: dict[str, Any], name: str) -> None:
    checksum = card.get("weights_sha256")
    if "weights_sha256" in card and not (isinstance(checksum, str) and len(checksum) == 64 and set(checksum) <= set("0123456789abcdef")):
        raise CheckpointError(f"{name} has weights_sha256 {describe(checksum)}; it should be 64 hexadecimal digits.")


def read_header(file: BinaryIO, size: int, name: str, max_bytes: int = MAX_WEIGHTS_BYTES) -> dict[str, tuple[str, tuple[int, ...]]]:
    """A safetensors file's tensors, {name: (dtype code, shape)}, from its header alone, read with bounds.

    The format: 8 bytes (little-endian header length), the JSON header, then the tensors' bytes at the header's offsets.
    """
    if size > max_bytes:
        raise CheckpointError(f"{name} is {size / 2**20:,.1f} MiB; the lab loads weights files up to {max_bytes / 2**20:,.1f} MiB.")
    if size < 8:
        raise CheckpointError(f"{name} is not a valid safetensors file: it is {size} bytes, shorter than the 8-byte header length.")
    length = int.from_bytes(file.read(8), "little")
    if length > min(MAX_HEADER_BYTES, size - 8):
        raise CheckpointError(
            f"{name} is not a valid safetensors file: its header claims {length:,} bytes, and the file holds {size - 8:,} after "
            f"the length (headers are at most {MAX_HEADER_BYTES:,}); it is corrupt, truncated, or not a checkpoint."
        )
    try:
        header = json.loads(file.read(length).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CheckpointError(f"{name} is not a valid safetensors file: its header is not JSON.") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{name} is not a valid safetensors file: its header is {describe(header)}, not an object.")
    return _tensors_in_header(header, size - 8 - length, name)


def _tensors_in_header(header: dict[str, Any], data_bytes: int, name: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    tensors, spans = {}, []
    for tensor_name, entry in header.items():
        if tensor_name == "__metadata__":
            continue
        dtype, shape, offsets = (entry.get(key) if isinstance(entry, dict) else None for key in ("dtype", "shape", "data_offsets"))
        valid = (dtype in ITEM_BYTES and isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)
                 and isinstance(offsets, list) and len(offsets) == 2 and all(type(n) is int for n in offsets))
        if not valid:
            raise CheckpointError(f"{name} is not a valid safetensors file: its header's entry for {tensor_name!r} is {describe(entry)}.")
        begin, end = offsets
        if not 0 <= begin <= end <= data_bytes:
            raise CheckpointError(
                f"{name} does not hold what its header says: it places {tensor_name!r} at bytes {begin:,}..{end:,} of "
                f"{data_bytes:,}; it is corrupt, truncated, or from another run."
            )
        if end - begin != math.prod(shape) * ITEM_BYTES[dtype]:
            raise CheckpointError(f"{name} is not a valid safetensors file: {tensor_name!r} of shape {shape} {dtype} cannot fill {end - begin:,} bytes.")
        tensors[tensor_name] = (dtype, tuple(shape))
        spans.append((begin, end))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise CheckpointError(f"{name} is not a valid safetensors file: its tensors overlap or leave gaps (at byte {position:,}).")
        position = end
    if position != data_bytes:
        raise CheckpointError(f"{name} holds {data_bytes:,} bytes of tensors, its header accounts for {position:,}: it is corrupt.")
    return tensors


def compare_tensors(declared: dict[str, Any], header: dict[str, tuple[str, tuple[int, ...]]], name: str) -> None:
    """The card's tensor list (already type-checked) against the file's header: names, shapes and dtypes must agree."""
    missing = [tensor for tensor in declared if tensor not in header]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{name} has no tensor {missing[0]!r}{more}, which its card lists.")
    unlisted = [tensor for tensor in header if tensor not in declared]
    if unlisted:
        raise CheckpointError(f"{name} holds {len(unlisted)} tensor(s) its card does not list, e.g. {unlisted[0]!r}: the card is not this file's.")
    for tensor, spec in declared.items():
        dtype, shape = header[tensor]
        if list(shape) != spec["shape"]:
            raise CheckpointError(f"Tensor {tensor!r} in {name} has shape {list(shape)}, its card says {spec['shape']}.")
        if SAFETENSORS_DTYPES[spec["dtype"]] != dtype:
            raise CheckpointError(f"Tensor {tensor!r} in {name} is {dtype}, its card says {spec['dtype']}.")


def require_shapes(expected: dict[str, tuple[int, ...]], held: dict[str, tuple[int, ...]], card_name: str, weights_name: str) -> None:
    """The parameter shapes the card's model would have against those the file holds, before the model is built."""
    for tensor, shape in expected.items():
        if tensor not in held:
            raise CheckpointError(f"The model {card_name} describes has {tensor} of shape {list(shape)}; {weights_name} has no such tensor.")
        if tuple(held[tensor]) != tuple(shape):
            raise CheckpointError(
                f"The model {card_name} describes has {tensor} of shape {list(shape)}; {weights_name} holds {list(held[tensor])}."
            )
    extra = [tensor for tensor in held if tensor not in expected]
    if extra:
        raise CheckpointError(f"{weights_name} holds {extra[0]} (and {len(extra) - 1} more), which the model {card_name} describes lacks.")


def parameter_shapes(build: Callable[[], Any]) -> dict[str, tuple[int, ...]]:
    """{name: shape} of the parameters of the torch module `build()` makes, without memory: it is built on torch's
    "meta" device with the in-place initialisers skipped. They would compute nothing on meta, yet the first one
    imports sympy and torch's decompositions: seconds, where building the shapes takes milliseconds."""
    import torch
    from torch.overrides import TorchFunctionMode

    class SkipInitialisers(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", "")
            if name.endswith("_") and not name.endswith("__"):  # normal_, uniform_, kaiming_uniform_, zero_, fill_, ...
                return args[0] if args else (kwargs or {}).get("tensor")
            return func(*args, **(kwargs or {}))

    with torch.device("meta"), SkipInitialisers():
        module = build()
    return {name: tuple(parameter.shape) for name, parameter in module.named_parameters()}


# --- a card's settings and metrics ----------------------------------------------------------------------------


def settings_from_card(card: dict[str, Any], key: str, config_class: type, where: str | Path) -> Any:
    """card[key] as a validated `config_class`: each field's JSON type checked against the dataclass's annotation."""
    values = card.get(key)
    if not isinstance(values, dict):
        raise CheckpointError(f"The card {where} has {key} {describe(values)}; it should be an object of settings.")
    hints = typing.get_type_hints(config_class)
    known = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise CheckpointError(f"The card {where} has {key} settings this version does not know: {', '.join(map(repr, unknown[:5]))}.")
    typed = {name: _typed_setting(value, hints.get(name), f"{key}.{name}", where) for name, value in values.items()}
    try:
        config = config_class(**typed)
        return config.validate() if hasattr(config, "validate") else config
    except LabError as error:
        raise CheckpointError(f"The card {where} has unusable {key} settings: {error}") from None
    except (TypeError, ValueError, OverflowError) as error:  # a config type this check does not know, refused by the class
        raise CheckpointError(f"The card {where} has unusable {key} settings ({error}).") from None


def _typed_setting(value: Any, hint: Any, field: str, where: str | Path) -> Any:
    whole = type(value) is int
    number = whole or (type(value) is float and math.isfinite(value))
    if hint is int and not whole:
        raise CheckpointError(f"The card {where} has {field} {describe(value)}; it should be a whole number.")
    if hint is float and not number:
        raise CheckpointError(f"The card {where} has {field} {describe(value)}; it should be a finite number.")
    if hint is bool and type(value) is not bool:
        raise CheckpointError(f"The card {where} has {field} {describe(value)}; it should be true or false.")
    if hint is str and not isinstance(value, str):
        raise CheckpointError(f"The card {where} has {field} {describe(value)}; it should be a string.")
    if typing.get_origin(hint) is tuple and typing.get_args(hint) == (int, Ellipsis):
        if not isinstance(value, list) or not all(type(item) is int for item in value):
            raise CheckpointError(f"The card {where} has {field} {describe(value)}; it should be a list of whole numbers.")
        return tuple(value)
    return value


_REQUIRED = object()


def card_metric(card: dict[str, Any], name: str, kind: type, where: str | Path, default: Any = _REQUIRED) -> Any:
    """card["metrics"][name] as a whole number (kind int), a number (float, infinity allowed) or a bool."""
    metrics = card.get("metrics")
    if not isinstance(metrics, dict):
        raise CheckpointError(f"The card {where} has metrics {describe(metrics)}; it should be an object of training metrics.")
    if name not in metrics and default is not _REQUIRED:
        return default
    value = metrics.get(name)
    fits = {int: type(value) is int, float: type(value) in (int, float), bool: type(value) is bool}[kind]
    if not fits:
        wanted = {int: "a whole number", float: "a number", bool: "true or false"}[kind]
        raise CheckpointError(f"The card {where} has metrics.{name} {describe(value)}; it should be {wanted}.")
    return float(value) if kind is float else value


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


def training_tensors(model, optimizer, **copies) -> tuple[dict[str, Any], int | None]:
    """What a resumable checkpoint holds, parameter by parameter: `model.<name>`, `<copy>.<name>` for each of `copies`
    (models with the same parameter names, such as an EMA), and Adam's or AdamW's moments `adam.exp_avg.<name>` and
    `adam.exp_avg_sq.<name>`, which load_adam_moments reads back. Returns them with the optimizer's step, None before
    its first step or without an optimizer."""
    tensors: dict[str, Any] = {}
    step = None
    copied = {prefix: dict(copy.named_parameters()) for prefix, copy in copies.items()}
    for name, parameter in model.named_parameters():  # named_parameters() lists a tied weight once
        tensors[f"model.{name}"] = parameter
        for prefix, parameters in copied.items():
            tensors[f"{prefix}.{name}"] = parameters[name]
        state = optimizer.state.get(parameter) if optimizer is not None else None
        if state:
            tensors[f"adam.exp_avg.{name}"] = state["exp_avg"]
            tensors[f"adam.exp_avg_sq.{name}"] = state["exp_avg_sq"]
            step = int(state["step"])
    return tensors, step


def load_adam_moments(optimizer, model, arrays: dict, step, where: Path) -> None:
    """Adam's or AdamW's state from `adam.exp_avg.<name>` / `adam.exp_avg_sq.<name>` arrays, for resuming.

    Through load_state_dict, so the moments land on the parameters' device and dtype; `step` is the
    optimizer's step count from the card (None: the file holds weights only).
    """
    import torch

    if step is None:
        raise CheckpointError(f"{where} holds weights without the optimizer's state: it can be sampled from, not resumed.")
    if type(step) is not int or step < 0:
        raise CheckpointError(f"The card of {where} has optimizer_step {describe(step)}; it should be a whole number, 0 or more.")
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


def resumed_command(before: str | None, command: str) -> str:
    """The command for a resumed run's card: the commands that made the run so far, then the one resuming it
    (`A && B`), so the card says how to make the whole run again rather than only how it was last continued."""
    return f"{before} && {command}" if isinstance(before, str) and before.strip() else command
