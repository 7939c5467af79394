import json

import numpy as np
import pytest

from engine.core.checkpoints import card_path, weights_path
from engine.core.errors import CheckpointError, ConfigError
from engine.core.jobs import SilentReporter
from engine.sae.images import load_builtin
from engine.sae.patches import training_patches, whiten
from engine.sae.checkpoint import SHIPPED_CHECKPOINT, load_result, result_bytes, save_result
from engine.sae.train import PRESETS, TINY, UFLDL, SAETrainConfig, gradient_check, prepare_data, train

SMALL = TINY


@pytest.fixture(scope="module")
def small_patches():
    images = [whiten(image) for image in load_builtin()[:3]]
    return training_patches(images, SMALL.patch_size, SMALL.num_patches, np.random.default_rng(0))


def test_training_lowers_the_cost_and_reports_every_iteration(small_patches):
    report = SilentReporter()
    result = train(SMALL, small_patches, report)
    assert result.final.total < result.initial.total / 10
    assert result.iterations == len(report.metrics) - 1 == len(result.history) - 1
    assert report.metrics[0]["step"] == 0 and set(report.metrics[-1]) >= {"cost", "reconstruction", "weight_decay", "sparsity"}
    assert report.snapshots["filters"].shape == (9, 6, 6)
    assert report.done_total == (result.iterations, SMALL.max_iters)
    assert abs(result.mean_activation.mean() - SMALL.rho) < 0.05


def test_stop_ends_cleanly_with_the_best_so_far(small_patches):
    report = SilentReporter(stop_after=6)  # the start plus five iterations
    result = train(SMALL, small_patches, report)
    assert result.stopped and result.iterations == 5
    assert result.final.total == min(row["cost"] for row in report.metrics)


def test_same_seed_same_result(small_patches):
    first = train(SMALL, small_patches, SilentReporter())
    second = train(SMALL, small_patches, SilentReporter())
    np.testing.assert_array_equal(first.theta, second.theta)


def test_gradient_check_passes_on_the_configured_sizes(small_patches):
    check = gradient_check(SMALL, small_patches, examples=20)
    assert check.passed and check.parameters == 2 * 9 * 36 + 9 + 36


def test_checkpoint_round_trip(small_patches, tmp_path):
    result = train(SMALL, small_patches, SilentReporter())
    save_result(tmp_path / "run", result, "python -m engine.sae train ...", "abc")
    loaded, card = load_result(tmp_path / "run")
    np.testing.assert_allclose(loaded.theta, result.theta)
    assert loaded.config == SMALL and loaded.final == result.final and card["command"].startswith("python -m engine.sae")
    originals, rebuilt = loaded.reconstructions()
    assert originals.shape == rebuilt.shape == (20, 6, 6)
    weights, card_json = result_bytes(result, "cmd", "abc")
    assert json.loads(card_json)["kind"] == "sae" and len(weights) > 2 * 9 * 36 * 8


def test_a_corrupt_checkpoint_is_refused(small_patches, tmp_path):
    result = train(SMALL, small_patches, SilentReporter())
    save_result(tmp_path / "run", result, "cmd", "abc")
    weights_path(tmp_path / "run").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError):
        load_result(tmp_path / "run")
    save_result(tmp_path / "run", result, "cmd", "abc")
    card = json.loads(card_path(tmp_path / "run").read_text())
    card["config"]["hidden_size"] = 10  # the card no longer describes the weights
    card_path(tmp_path / "run").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="W1 has shape"):
        load_result(tmp_path / "run")


def test_the_shipped_checkpoint_loads_and_meets_the_reference():
    result, card = load_result(SHIPPED_CHECKPOINT)
    assert result.config == UFLDL
    assert result.final.total <= 0.48 and result.iterations == 400
    assert card["command"].startswith("python -m engine.sae train")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"hidden_size": 0}, "hidden_size must be between 1 and 400, got 0"),
        ({"rho": 1.5}, "rho .* strictly between 0 and 1, got 1.5"),
        ({"rho": 0.0}, "strictly between 0 and 1, got 0.0"),
        ({"lam": -1e-4}, "lambda .* must be between 0 and 100, got -0.0001"),
        ({"beta": -1.0}, "beta .* must be between 0 and 1000, got -1.0"),
        ({"max_iters": 5000}, "max_iters must be between 1 and 2000, got 5000"),
        ({"patch_size": 64}, "patch_size must be between 2 and 32"),
        ({"num_patches": 5}, "num_patches must be between 10 and 100,000"),
        ({"source": "somewhere"}, "source must be one of"),
    ],
)
def test_invalid_settings_get_a_clear_message(change, message):
    config = SAETrainConfig(**{**UFLDL.__dict__, **change})
    with pytest.raises(ConfigError, match=message):
        config.validate()


def test_a_patch_larger_than_an_uploaded_image_is_refused():
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.arange(36, dtype=np.uint8).reshape(6, 6)).save(buffer, format="PNG")
    with pytest.raises(ConfigError, match="smaller than the 8x8 patch"):
        prepare_data(SAETrainConfig(source="upload"), [("tiny.png", buffer.getvalue())])


def test_unknown_settings_in_a_card_are_refused():
    with pytest.raises(ConfigError, match="Unknown SAE settings: width"):
        SAETrainConfig.from_dict({"width": 3})


@pytest.mark.data
def test_ufldl_defaults_reach_the_published_cost_on_olshausens_images():
    data = prepare_data(UFLDL)
    assert gradient_check(UFLDL, data.patches).relative_difference < 1e-9
    result = train(UFLDL, data.patches, SilentReporter())
    assert result.iterations == 400 and result.final.total <= 0.48


def test_the_presets_are_valid_and_ufldls_comes_first():
    assert list(PRESETS)[0] == "ufldl" and PRESETS["ufldl"] == UFLDL
    for preset in PRESETS.values():
        preset.validate()


def test_the_tiny_preset_reaches_its_figure():
    data = prepare_data(TINY)  # the built-in images: nothing to download
    result = train(TINY, data.patches, SilentReporter())
    assert result.iterations == 60 and result.final.total == pytest.approx(0.244, abs=0.01)
