"""A small MNIST classifier that scores generated digits: how many it recognises with confidence, and which.

It is trained by the project on MNIST's training set alone, and never sees a generated digit, so it
judges the diffusion model's samples from outside (an independent reader, as the quality bar asks).
Two 3x3 conv layers with max-pooling and two linear layers, in the shape of PyTorch's MNIST example;
about 99% on the 10,000 test digits after two epochs, which its card records.

    python -m engine.ddpm classifier train --out runs/ddpm/classifier
    python -m engine.ddpm classifier score --checkpoint runs/ddpm/classifier --samples samples.npy

`score` takes images in [0, 1] (what `sample.generate` returns) and says, for each, the digit the
classifier reads and its confidence (the softmax probability of that digit).
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from numpy.lib import format as npy_format
from torch.nn import functional as F

from engine.core.checkpoints import SHIPPED_DIR, card_path, load_checkpoint, save_checkpoint, weights_path
from engine.core.config import check_fields, from_dict, seed_spec, spec
from engine.core.device import pick_device, seed_everything
from engine.core.errors import CheckpointError, DataError
from engine.core.files import check_readable, read_bounded
from engine.core.jobs import Reporter
from engine.ddpm.data import CLASSES, IMAGE_SIZE, DigitData

KIND = "mnist_classifier"
SHIPPED_CLASSIFIER = SHIPPED_DIR / "mnist_classifier"
MAX_SAMPLES_BYTES = 128 * 2**20  # 10,000 samples in float64 take 63 MB
CONFIDENT = 0.9  # a digit counts as recognised when the classifier gives it at least this probability


@dataclass(frozen=True)
class ClassifierConfig:
    epochs: int = field(default=2, metadata=spec(1, 100))
    batch_size: int = field(default=128, metadata=spec(1, 4096))
    learning_rate: float = field(default=1e-3, metadata=spec(0, 1, above=True))  # Adam
    dropout: float = field(default=0.25, metadata=spec(0, 1, below=True))
    log_interval: int = field(default=50, metadata=spec(1, 1_000_000, unit="steps"))
    seed: int = field(default=0, metadata=seed_spec())
    device: str = "auto"

    def validate(self) -> "ClassifierConfig":
        check_fields(self)
        return self

    @classmethod
    def from_dict(cls, values: dict) -> "ClassifierConfig":
        return from_dict(cls, values, "classifier settings")


class DigitClassifier(nn.Module):
    """(B, 1, 28, 28) in [0, 1] -> (B, 10) logits."""

    def __init__(self, dropout: float = 0.25):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.features(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 128): the last hidden layer, where digits of one kind sit together; what the diversity figure compares."""
        x = (x - 0.1307) / 0.3081  # MNIST's mean and standard deviation, as in PyTorch's example
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 32, 14, 14)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, 64, 7, 7)
        x = self.dropout(x.flatten(1))  # (B, 3136)
        return F.relu(self.fc1(x))


def unit_batch(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 28, 28) -> float (B, 1, 28, 28) in [0, 1]."""
    return images.float().div(255.0).unsqueeze(1)


@torch.no_grad()
def accuracy(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor, device, batch_size: int = 500) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(unit_batch(images[start : start + batch_size]).to(device))
        correct += (logits.argmax(1).cpu() == labels[start : start + batch_size]).sum().item()
    return correct / max(len(images), 1)


@dataclass(frozen=True)
class ClassifierResult:
    config: ClassifierConfig
    model: DigitClassifier  # in eval mode
    test_accuracy: float
    steps: int
    stopped: bool
    seconds: float
    checkpoint: Path | None


def train_classifier(config: ClassifierConfig, data: DigitData, report: Reporter, out: str | Path | None = None, command: str = "") -> ClassifierResult:
    """Adam on cross-entropy over the training digits; the test accuracy at each epoch's end. Saves to `out` (a path without suffix)."""
    config.validate()
    if len(data.train_images) == 0 or len(data.test_images) == 0:
        raise DataError(f"{data.name} needs training and test images to train and test a classifier.")
    device = pick_device(None if config.device == "auto" else config.device)
    seed_everything(config.seed)
    model = DigitClassifier(config.dropout).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    batch_size = min(config.batch_size, len(data.train_images))
    per_epoch = len(data.train_images) // batch_size
    total = config.epochs * per_epoch
    started = time.perf_counter()
    step, test_accuracy = 0, math.nan
    report.progress(0, total)
    for epoch in range(config.epochs):
        order = torch.randperm(len(data.train_images), generator=torch.Generator().manual_seed(config.seed + epoch))
        model.train()
        for position in range(per_epoch):
            if report.stop_requested:
                break
            index = order[position * batch_size : (position + 1) * batch_size]
            logits = model(unit_batch(data.train_images[index]).to(device))
            loss = F.cross_entropy(logits, data.train_labels[index].to(device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step % config.log_interval == 0:
                report.metric(step, loss=loss.item())
            step += 1
            report.progress(step, total)
        test_accuracy = accuracy(model, data.test_images, data.test_labels, device)
        report.metric(step, test_accuracy=test_accuracy, epoch=step / per_epoch)
        if report.stop_requested:
            break
    model.eval()
    seconds = time.perf_counter() - started
    saved = None
    if out is not None:
        card = {
            "config": asdict(config),
            "metrics": {"test_accuracy": test_accuracy, "steps": step, "seconds": round(seconds, 2)},
            "command": command,
            "data": {"name": data.name, "train_images": len(data.train_images), "test_images": len(data.test_images)},
            "data_fingerprint": data.fingerprint,
        }
        saved = save_checkpoint(out, KIND, {name: p for name, p in model.state_dict().items()}, card)
    return ClassifierResult(config, model.cpu(), test_accuracy, step, report.stop_requested, seconds, saved)


def load_classifier(path: str | Path | None = None, device="cpu") -> tuple[DigitClassifier, dict]:
    """A trained classifier in eval mode, and its card; without a path, the shipped one."""
    path = Path(path if path is not None else SHIPPED_CLASSIFIER)
    if path.is_dir():
        path = path / "classifier"
    path = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    check_readable(card_path(path))  # a pipe or a device in a checkpoint's place would be read for ever
    check_readable(weights_path(path))
    if not card_path(path).exists() and path == SHIPPED_CLASSIFIER:
        raise CheckpointError(
            f"The shipped MNIST classifier ({weights_path(path)}) is not there: train one with "
            f"`python -m engine.ddpm classifier train` and pass it with --classifier."
        )
    arrays, card = load_checkpoint(path, KIND)
    model = DigitClassifier()
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in arrays or tuple(arrays[name].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{weights_path(path)} has no {name} of shape {list(tensor.shape)}: it is not this classifier.")
    model.load_state_dict({name: torch.from_numpy(arrays[name]) for name in expected})
    return model.to(device).eval(), card


@dataclass(frozen=True)
class Score:
    """What the classifier makes of a set of generated digits."""

    predictions: np.ndarray  # (n,) the digit read in each image
    confidences: np.ndarray  # (n,) its probability
    asked: np.ndarray | None  # (n,) the digit each image was drawn as, for a conditional model

    @property
    def count(self) -> int:
        return len(self.predictions)

    @property
    def recognised(self) -> np.ndarray:
        return self.confidences > CONFIDENT

    @property
    def recognised_share(self) -> float:
        """The share read with confidence above 0.9: the quality bar asks for at least 0.9 of 1,000 samples."""
        return float(self.recognised.mean()) if self.count else 0.0

    @property
    def histogram(self) -> np.ndarray:
        """(10,) how many of the confidently recognised samples were read as each digit."""
        return np.bincount(self.predictions[self.recognised], minlength=CLASSES)

    @property
    def matching_share(self) -> float | None:
        """The share read as the digit it was drawn as (any confidence); None without labels."""
        if self.asked is None or not self.count:
            return None
        return float((self.predictions == self.asked).mean())

    def summary(self) -> str:
        line = f"{self.recognised_share:.1%} of {self.count} samples recognised with confidence > {CONFIDENT}; by digit: " + " ".join(
            f"{digit}:{count}" for digit, count in enumerate(self.histogram)
        )
        if self.matching_share is not None:
            line += f"; {self.matching_share:.1%} read as the digit asked for"
        return line


def read_samples(path: str | Path) -> np.ndarray:
    """Images from a .npy file (what `sample --out samples.npy` writes), read with a bound and never unpickled."""
    path = Path(path)
    data = read_bounded(path, MAX_SAMPLES_BYTES)
    buffer = io.BytesIO(data)
    try:
        version = npy_format.read_magic(buffer)
        header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, _, dtype = header(buffer)
    except ValueError:
        raise DataError(f"{path.name} is not a NumPy array file (.npy): write one with `sample --out samples.npy`.") from None
    if dtype.hasobject or dtype.kind not in "biuf":
        raise DataError(f"{path.name} holds {dtype} values, not numbers: the classifier reads images of numbers in [0, 1].")
    if math.prod(shape) * dtype.itemsize != len(data) - buffer.tell():
        raise DataError(f"{path.name} is truncated or corrupt: its header declares {list(shape)} {dtype} values, which its size does not match.")
    return np.load(io.BytesIO(data), allow_pickle=False)


@torch.no_grad()
def score_samples(model: DigitClassifier, images: np.ndarray, asked: np.ndarray | None = None, batch_size: int = 500) -> Score:
    """Classify images (n, 28, 28) in [0, 1]; `asked` is the digit each was drawn as, when known."""
    images = np.asarray(images)
    if images.dtype.kind not in "biuf":
        raise DataError(f"The classifier reads images of numbers in [0, 1]; these hold {images.dtype} values.")
    images = images.astype(np.float32)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"The classifier reads images of shape (n, {IMAGE_SIZE}, {IMAGE_SIZE}); got {images.shape}.")
    if not np.isfinite(images).all():
        raise DataError(f"{np.count_nonzero(~np.isfinite(images)):,} pixel values are not numbers (NaN or infinity): these are not images to score.")
    if images.size and (images.min() < -1e-3 or images.max() > 1 + 1e-3):
        raise DataError(f"The classifier reads images in [0, 1]; these range from {images.min():.3g} to {images.max():.3g}.")
    device = next(model.parameters()).device
    model.eval()
    probabilities = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(images[start : start + batch_size]).unsqueeze(1).to(device)
        probabilities.append(torch.softmax(model(batch), dim=1).cpu())
    probs = torch.cat(probabilities) if probabilities else torch.zeros(0, CLASSES)
    confidences, predictions = probs.max(dim=1)
    return Score(predictions.numpy(), confidences.numpy(), None if asked is None else np.asarray(asked))
