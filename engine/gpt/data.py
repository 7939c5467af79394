"""Text for the character-level GPT: tiny Shakespeare or a person's own file, a character tokenizer, splits, batches.

Like nanoGPT's data/shakespeare_char/prepare.py, the vocabulary is every distinct character of the whole
text, sorted, and the first 90% of the text trains while the last 10% validates. Unlike it, nothing is
pickled: the vocabulary goes into the checkpoint's JSON card as a string.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from engine.core.errors import ConfigError, DataError
from engine.core.fetch import Progress, RemoteFile, resolve
from engine.core.files import read_bounded

SHAKESPEARE = RemoteFile(
    path="shakespeare/input.txt",
    url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    size=1_115_394,
)

MAX_TEXT_BYTES = 20 * 1024 * 1024
TRAIN_FRACTION = 0.9


@dataclass(frozen=True)
class CharTokenizer:
    """One token per distinct character; token i is the i-th character of `chars` (sorted)."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @cached_property
    def stoi(self) -> dict[str, int]:
        return {ch: i for i, ch in enumerate(self.chars)}

    def encode(self, text: str, what: str = "The text") -> list[int]:
        """Characters -> token ids; DataError naming every character the vocabulary lacks."""
        table = self.stoi
        try:
            return [table[ch] for ch in text]
        except KeyError:
            missing = sorted(set(text) - set(self.chars))
            shown = ", ".join(repr(ch) for ch in missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise DataError(
                f"{what} has {len(missing)} character(s) outside the model's vocabulary: {shown}. "
                f"The vocabulary has {self.vocab_size} characters: {self.chars!r}."
            ) from None

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)

    def to_dict(self) -> dict:
        return {"chars": self.chars}

    @classmethod
    def from_dict(cls, values: dict) -> "CharTokenizer":
        chars = values.get("chars") if isinstance(values, dict) else None
        if not isinstance(chars, str) or len(set(chars)) != len(chars) or len(chars) < 2:
            raise DataError("A tokenizer needs 'chars': a string of at least 2 distinct characters.")
        return cls(chars)


@dataclass(frozen=True)
class CharData:
    """A text encoded and split: token ids as int64 tensors on the CPU."""

    name: str  # where the text came from, for messages and the card
    tokenizer: CharTokenizer
    train: torch.Tensor  # (N_train,)
    val: torch.Tensor  # (N_val,)
    fingerprint: str  # sha256 of the text's UTF-8 bytes, first 16 hex digits

    @property
    def characters(self) -> int:
        return len(self.train) + len(self.val)

    def largest_block_size(self) -> int:
        """A batch needs block_size + 1 consecutive characters (inputs and shifted targets) in each split."""
        return min(len(self.train), len(self.val)) - 1

    def require_block_size(self, block_size: int) -> None:
        largest = self.largest_block_size()
        if block_size > largest:
            needed = int((block_size + 1) / (1 - TRAIN_FRACTION)) + 1
            raise DataError(
                f"{self.name} is too short for block_size {block_size}: it has {self.characters:,} characters, and its "
                f"validation split (the last {1 - TRAIN_FRACTION:.0%}, {len(self.val):,} characters) must hold block_size + 1 "
                f"of them, so it needs about {needed:,}. Use a longer text or a block_size of at most {max(largest, 0)}."
            )


def decode_text(data: bytes, name: str = "The text") -> str:
    """A person's file -> text, or a DataError saying why it cannot be used."""
    if len(data) == 0:
        raise DataError(f"{name} is empty.")
    if len(data) > MAX_TEXT_BYTES:
        raise DataError(f"{name} is {len(data) / 2**20:.1f} MB; the limit is {MAX_TEXT_BYTES // 2**20} MB.")
    try:
        text = data.decode("utf-8-sig")  # -sig: a byte order mark is not a character of the text
    except UnicodeDecodeError as error:
        raise DataError(
            f"{name} is not UTF-8 text: byte {error.start} (0x{data[error.start]:02x}) cannot be decoded. "
            f"Save it as UTF-8 (plain text) and try again."
        ) from None
    if not text.strip():
        raise DataError(f"{name} holds only whitespace.")
    if len(set(text)) < 2:
        raise DataError(f"{name} uses a single character ({text[0]!r}); there is nothing to predict.")
    return text


def read_text_file(path: str | Path) -> str:
    """A text file from disk, checked like an upload; never more than the limit is read, whatever the path names."""
    path = Path(path)
    return decode_text(read_bounded(path, MAX_TEXT_BYTES), path.name)


def load_shakespeare(folder: str | Path | None = None, progress: Progress | None = None) -> str:
    """tiny Shakespeare's text, from `folder`, DLLAB_DATA_DIR, the cache, or a download."""
    return resolve(SHAKESPEARE, folder, progress).read_text(encoding="utf-8")


def prepare_text(text: str, name: str = "The text", tokenizer: CharTokenizer | None = None) -> CharData:
    """Encode `text` with its own vocabulary (or `tokenizer`'s) and split it 90/10 like nanoGPT."""
    if not text:
        raise DataError(f"{name} is empty.")
    tokenizer = tokenizer or CharTokenizer.from_text(text)
    ids = torch.tensor(tokenizer.encode(text, what=name), dtype=torch.long)
    n = int(TRAIN_FRACTION * len(ids))
    fingerprint = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return CharData(name=name, tokenizer=tokenizer, train=ids[:n], val=ids[n:], fingerprint=fingerprint)


def get_batch(split: torch.Tensor, block_size: int, batch_size: int, generator: torch.Generator, device=None):
    """Random windows of a split -> inputs x and targets y, both (batch_size, block_size); y is x shifted by one."""
    if len(split) <= block_size:
        raise ConfigError(f"block_size ({block_size}) must be smaller than the split's {len(split)} characters.")
    ix = torch.randint(len(split) - block_size, (batch_size,), generator=generator)  # (B,) window starts
    windows = split.unfold(0, block_size + 1, 1)[ix]  # (B, block_size + 1), copied out of a strided view
    x, y = windows[:, :-1], windows[:, 1:]  # (B, block_size) each
    if device is not None and torch.device(device).type == "cuda":
        # pinned memory lets the copy overlap with the GPU's work (nanoGPT does the same)
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    if device is not None:
        return x.contiguous().to(device), y.contiguous().to(device)
    return x.contiguous(), y.contiguous()
