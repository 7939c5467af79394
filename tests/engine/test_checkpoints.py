import json

import numpy as np
import pytest

from engine.core.checkpoints import card_path, load_checkpoint, save_checkpoint, weights_path
from engine.core.errors import CheckpointError


@pytest.fixture
def saved(tmp_path):
    tensors = {"W": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3)}
    save_checkpoint(tmp_path / "model", "toy", tensors, {"config": {"width": 3}})
    return tmp_path / "model", tensors


def test_round_trip_keeps_values_and_card(saved):
    path, tensors = saved
    arrays, card = load_checkpoint(path, "toy")
    np.testing.assert_array_equal(arrays["W"], tensors["W"])
    np.testing.assert_array_equal(arrays["b"], tensors["b"])
    assert card["config"] == {"width": 3} and card["tensors"]["W"]["shape"] == [2, 3]


def test_writes_leave_no_temporary_files(saved):
    path, _ = saved
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.json", "model.safetensors"]


def test_torch_tensors_are_saved_too(tmp_path):
    import torch

    save_checkpoint(tmp_path / "t", "toy", {"x": torch.arange(4.0)}, {})
    arrays, _ = load_checkpoint(tmp_path / "t", "toy")
    np.testing.assert_array_equal(arrays["x"], [0, 1, 2, 3])


def test_truncated_weights_are_refused(saved):
    path, _ = saved
    blob = weights_path(path).read_bytes()
    weights_path(path).write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_checkpoint(path, "toy")


def test_garbage_weights_without_checksum_are_refused(saved):
    path, _ = saved
    card = json.loads(card_path(path).read_text())
    del card["weights_sha256"]
    card_path(path).write_text(json.dumps(card))
    weights_path(path).write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(path, "toy")


def test_corrupt_card_is_refused(saved):
    path, _ = saved
    card_path(path).write_text("{ this is not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path, "toy")


def test_other_kind_and_version_are_refused(saved):
    path, _ = saved
    with pytest.raises(CheckpointError, match="holds a 'toy' model, not a 'gpt' one"):
        load_checkpoint(path, "gpt")
    card = json.loads(card_path(path).read_text())
    card["format_version"] = 99
    card_path(path).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(path, "toy")


def test_shape_that_disagrees_with_the_card_is_refused(saved):
    path, _ = saved
    card = json.loads(card_path(path).read_text())
    card["tensors"]["W"]["shape"] = [3, 2]
    card_path(path).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="shape \\[2, 3\\], its card says \\[3, 2\\]"):
        load_checkpoint(path, "toy")


def test_missing_files_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint card"):
        load_checkpoint(tmp_path / "nothing", "toy")
