"""MNIST for the diffusion lab: the four IDX files through the data resolver, read with numpy, scaled to [-1, 1].

The files are the official gzipped IDX files (their md5s are the ones torchvision checks), found in an
explicit folder, `DLLAB_DATA_DIR`, the cache, or downloaded from torchvision's mirror and checked by
sha256. They live at `mnist/MNIST/raw/` inside a data folder: torchvision's own layout, so a folder
made for `torchvision.datasets.MNIST(root=.../mnist)` works as it is. torchvision is not needed.

Images stay uint8 (N, 28, 28) in memory (47 MB for the training set instead of 188 MB as floats);
`batch_images` scales a batch to [-1, 1] as DDPM does (section 4: "scaled linearly to [-1, 1]").
`toy_shapes` makes a stand-in dataset of simple labelled shapes, for tests and for trying the loop
without MNIST.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.core.config import Range, check_value
from engine.core.errors import DataError
from engine.core.fetch import Progress, RemoteFile, resolve

MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's first mirror
IMAGE_SIZE = 28
CLASSES = 10
TOY_COUNT = Range(1, 10_000)  # all drawn at once: 10,000 take a few hundred MB while drawn


def mnist_file(name: str, sha256: str, size: int) -> RemoteFile:
    return RemoteFile(path=f"mnist/MNIST/raw/{name}", url=MIRROR + name, sha256=sha256, size=size)


MNIST_FILES = {
    "train_images": mnist_file("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9_912_422),
    "train_labels": mnist_file("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28_881),
    "test_images": mnist_file("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1_648_877),
    "test_labels": mnist_file("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4_542),
}


@dataclass(frozen=True)
class DigitData:
    """Labelled 28x28 images as uint8 tensors on the CPU: train and test splits."""

    name: str
    train_images: torch.Tensor  # (N, 28, 28) uint8
    train_labels: torch.Tensor  # (N,) int64, 0-9
    test_images: torch.Tensor  # (M, 28, 28) uint8
    test_labels: torch.Tensor  # (M,) int64
    fingerprint: str  # sha256 over the training images and labels, first 16 hex digits

    @property
    def num_classes(self) -> int:
        return int(self.train_labels.max().item()) + 1 if len(self.train_labels) else 0

    def subset(self, train: int | None = None, test: int | None = None) -> "DigitData":
        """The first `train` training and `test` test images: the files are already in random order."""
        train = len(self.train_images) if train is None else min(train, len(self.train_images))
        test = len(self.test_images) if test is None else min(test, len(self.test_images))
        if train == len(self.train_images) and test == len(self.test_images):
            return self
        return DigitData(
            name=f"{self.name} (first {train:,} training images)",
            train_images=self.train_images[:train],
            train_labels=self.train_labels[:train],
            test_images=self.test_images[:test],
            test_labels=self.test_labels[:test],
            fingerprint=fingerprint_of(self.train_images[:train], self.train_labels[:train]),
        )


def fingerprint_of(images: torch.Tensor, labels: torch.Tensor) -> str:
    digest = hashlib.sha256(images.numpy().tobytes())
    digest.update(labels.numpy().astype(np.int64).tobytes())
    return digest.hexdigest()[:16]


def read_idx(path: Path, offset: int) -> np.ndarray:
    """The bytes after an IDX file's header: offset 16 for images (magic, count, rows, columns), 8 for labels."""
    try:
        with gzip.open(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError) as error:
        raise DataError(f"{path} is not a readable gzip file ({error}); delete it and let the lab fetch it again.") from None
    return np.frombuffer(raw, np.uint8, offset=offset)


def load_mnist(folder: str | Path | None = None, progress: Progress | None = None) -> DigitData:
    """MNIST's 60,000 training and 10,000 test digits, from `folder`, DLLAB_DATA_DIR, the cache, or a download."""
    paths = {key: resolve(file, folder, progress) for key, file in MNIST_FILES.items()}
    splits = {}
    for split in ("train", "test"):
        images = read_idx(paths[f"{split}_images"], 16).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
        labels = read_idx(paths[f"{split}_labels"], 8).astype(np.int64)
        if len(images) != len(labels):
            raise DataError(f"MNIST's {split} split has {len(images)} images but {len(labels)} labels.")
        splits[split] = (torch.from_numpy(images.copy()), torch.from_numpy(labels))
    return DigitData(
        name="MNIST",
        train_images=splits["train"][0],
        train_labels=splits["train"][1],
        test_images=splits["test"][0],
        test_labels=splits["test"][1],
        fingerprint=fingerprint_of(*splits["train"]),
    )


def mnist_available(folder: str | Path | None = None) -> bool:
    """Whether all four files are on this machine already (nothing is downloaded)."""
    from engine.core.fetch import find_local

    return all(find_local(file, folder) is not None for file in MNIST_FILES.values())


def batch_images(images: torch.Tensor, device=None) -> torch.Tensor:
    """uint8 (B, 28, 28) in 0..255 -> float32 (B, 1, 28, 28) in [-1, 1]."""
    if device is not None:
        images = images.to(device, non_blocking=True)
    return images.float().div_(127.5).sub_(1.0).unsqueeze(1)


def to_unit(x: torch.Tensor) -> np.ndarray:
    """Model space [-1, 1], (B, 1, H, W) or (B, H, W) -> numpy (B, H, W) in [0, 1], for pictures and the classifier."""
    x = x.detach().float().cpu()
    if x.dim() == 4:
        x = x[:, 0]
    return ((x.clamp(-1, 1) + 1) / 2).numpy()


def toy_shapes(count: int = 600, seed: int = 0, classes: int = CLASSES) -> DigitData:
    """A stand-in for MNIST: label k is a bright bar at angle k * 180 / classes degrees through the middle, with jitter.

    Small enough to learn in seconds, so a test or a first try can see a diffusion model pick up the shapes.
    """
    check_value("the number of toy shapes", count, int, TOY_COUNT)
    rng = np.random.default_rng(seed)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = np.arange(n) % classes
        rng.shuffle(labels)
        ys, xs = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE] - (IMAGE_SIZE - 1) / 2  # (28, 28) each, centred
        angles = labels * np.pi / classes + rng.normal(0, 0.05, n)  # (n,)
        shift = rng.normal(0, 1.0, (n, 2))
        # distance of each pixel from the bar's line, and along it
        across = np.abs((xs[None] - shift[:, :1, None]) * np.sin(angles)[:, None, None] - (ys[None] - shift[:, 1:, None]) * np.cos(angles)[:, None, None])
        along = np.abs((xs[None] - shift[:, :1, None]) * np.cos(angles)[:, None, None] + (ys[None] - shift[:, 1:, None]) * np.sin(angles)[:, None, None])
        images = np.clip(2.0 - across, 0, 1) * (along < 9)  # (n, 28, 28) in [0, 1]
        return torch.from_numpy((images * 255).round().astype(np.uint8)), torch.from_numpy(labels.astype(np.int64))

    train_images, train_labels = draw(count)
    test_images, test_labels = draw(max(count // 5, classes))
    return DigitData(
        name=f"toy shapes ({count} images)",
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        fingerprint=fingerprint_of(train_images, train_labels),
    )
