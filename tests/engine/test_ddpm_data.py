"""MNIST through the data resolver, scaled to [-1, 1]; the toy shapes; a clear message when MNIST is missing offline."""

import gzip
import hashlib

import numpy as np
import pytest
import torch

from engine.core.errors import DataError
from engine.ddpm.data import MNIST_FILES, batch_images, load_mnist, mnist_available, to_unit, toy_shapes


def test_batches_are_scaled_to_minus_one_one():
    images = torch.tensor([[[0, 255], [128, 64]]], dtype=torch.uint8)
    x = batch_images(images)
    assert x.shape == (1, 1, 2, 2) and x.dtype == torch.float32
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    assert np.allclose(to_unit(x), images.numpy() / 255.0, atol=1e-6)
    assert to_unit(torch.full((2, 1, 3, 3), 5.0)).max() == 1.0  # out-of-range values are clipped for pictures


def test_toy_shapes_are_labelled_bars():
    data = toy_shapes(200, seed=1)
    assert data.train_images.shape == (200, 28, 28) and data.train_images.dtype == torch.uint8
    assert sorted(torch.bincount(data.train_labels).tolist()) == [20] * 10
    assert len(data.test_images) == 40 and data.num_classes == 10
    means = [data.train_images[data.train_labels == k].float().mean(0) for k in (0, 5)]
    assert (means[0] - means[1]).abs().max() > 100  # a horizontal and a vertical bar differ
    assert toy_shapes(200, seed=1).fingerprint == data.fingerprint != toy_shapes(200, seed=2).fingerprint


def test_subset_keeps_the_first_images():
    data = toy_shapes(100)
    part = data.subset(train=30, test=5)
    assert torch.equal(part.train_images, data.train_images[:30]) and len(part.test_images) == 5
    assert part.fingerprint != data.fingerprint and "first 30" in part.name


def test_missing_mnist_offline_says_which_file_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("DLLAB_OFFLINE", "1")
    monkeypatch.setenv("DLLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DLLAB_CACHE", str(tmp_path / "cache"))
    assert not mnist_available()
    with pytest.raises(DataError) as error:
        load_mnist()
    message = str(error.value)
    assert "mnist/MNIST/raw/train-images-idx3-ubyte.gz" in message
    assert "downloads are off" in message and "DLLAB_DATA_DIR" in message and str(tmp_path / "data") in message


def test_a_small_idx_folder_is_read_like_mnist(tmp_path, monkeypatch):
    """The reader on home-made IDX files, with the checksums pointed at them: no real data needed."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 12, dtype=np.uint8)
    contents = {
        "train_images": b"\x00\x00\x08\x03" + (12).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + images.tobytes(),
        "train_labels": b"\x00\x00\x08\x01" + (12).to_bytes(4, "big") + labels.tobytes(),
    }
    contents["test_images"], contents["test_labels"] = contents["train_images"], contents["train_labels"]
    files = {}
    for key, data in contents.items():
        blob = gzip.compress(data)
        original = MNIST_FILES[key]
        path = tmp_path / original.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
        files[key] = type(original)(original.path, original.url, hashlib.sha256(blob).hexdigest(), len(blob))
    monkeypatch.setattr("engine.ddpm.data.MNIST_FILES", files)
    monkeypatch.setenv("DLLAB_OFFLINE", "1")
    data = load_mnist(tmp_path)
    assert torch.equal(data.train_images, torch.from_numpy(images))
    assert data.train_labels.tolist() == labels.astype(int).tolist()


@pytest.mark.data
def test_mnist_has_its_published_counts():
    data = load_mnist()
    assert data.train_images.shape == (60_000, 28, 28) and data.test_images.shape == (10_000, 28, 28)
    assert torch.bincount(data.train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(data.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    x = batch_images(data.train_images[:64])
    assert x.min().item() == -1.0 and x.max().item() == 1.0
