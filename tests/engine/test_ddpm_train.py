"""Training the DDPM: a tiny run that learns, the Reporter contract, stopping, checkpoints, resuming, and bad settings."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.core.lr import get_lr
from engine.core.errors import CheckpointError, ConfigError, DataError
from engine.core.jobs import SilentReporter
from engine.ddpm.checkpoint import export_checkpoint, find_checkpoint, load_model, restore_training
from engine.ddpm.data import load_mnist, toy_shapes
from engine.ddpm.train import CPU, QUICK, TINY, DDPMTrainConfig, preset_of, steps_per_epoch, train
from engine.ddpm.unet import UNet


@pytest.fixture(scope="module")
def data():
    return toy_shapes(256)


@pytest.fixture(scope="module")
def finished(data, train_tiny_ddpm):
    """One tiny run, shared by the tests that only read it: (result, reporter, run folder)."""
    return train_tiny_ddpm(data, command="python -m engine.ddpm train --preset tiny --toy")


def test_tiny_training_reduces_the_loss_and_reports_as_it_goes(finished):
    result, report, _ = finished
    steps = [row for row in report.metrics if "loss" in row]
    evaluations = [row for row in report.metrics if "val_loss" in row]
    assert steps[0]["loss"] == pytest.approx(1.0, abs=0.1)  # the zero-initialised U-Net predicts no noise: MSE of N(0, 1)
    assert [row["step"] for row in steps][:3] == [0, 2, 4]
    assert {"loss", "lr", "grad_norm", "images_per_s"} <= set(steps[0])
    assert [row["step"] for row in evaluations] == [8, 16] and [row["epoch"] for row in evaluations] == [1.0, 2.0]
    assert evaluations[-1]["val_loss"] < 0.8 and result.val_loss == evaluations[-1]["val_loss"]
    assert report.done_total == (16, 16)
    samples = report.snapshots["samples"]
    assert samples.shape == (10, 28, 28) and samples.min() >= 0 and samples.max() <= 1
    assert (result.steps, result.epochs, result.stopped) == (16, 2.0, False)
    assert not result.model.training


def test_the_run_folder_holds_last_and_best_with_a_card(finished):
    result, _, folder = finished
    assert result.last_checkpoint == folder / "last.safetensors" and result.checkpoint == folder / "best.safetensors"
    card = json.loads((folder / "last.json").read_text())
    assert card["kind"] == "ddpm" and card["preset"] == "tiny" and card["command"].endswith("--preset tiny --toy")
    assert card["metrics"]["step"] == 16 and card["optimizer_step"] == 16
    assert card["model"]["width"] == 8 and card["schedule"]["timesteps"] == 1000
    assert card["data"]["train_images"] == 256 and card["data_fingerprint"]
    names = set(card["tensors"])
    assert any(n.startswith("ema.") for n in names) and any(n.startswith("adam.exp_avg_sq.") for n in names)


def test_loaded_checkpoint_samples_with_the_ema_weights(finished):
    result, _, folder = finished
    model, schedule, card = load_model(folder)
    assert card["metrics"]["best_val_loss"] == pytest.approx(result.best_val_loss)
    x, t, y = torch.randn(2, 1, 28, 28), torch.tensor([10, 600]), torch.tensor([1, 10])
    with torch.no_grad():
        assert torch.allclose(model(x, t, y), result.model(x, t, y), atol=1e-6)
    assert schedule.timesteps == 1000


def test_stop_requested_ends_cleanly_keeping_what_it_has(data, tmp_path):
    report = SilentReporter(stop_after=3, stop_grace=math.inf)  # rows at steps 0, 2, 4: then stop; a last evaluation however long
    result = train(TINY, data, report, out=tmp_path / "run")
    assert result.stopped and result.steps == 5
    assert report.metrics[-1]["step"] == 5 and "val_loss" in report.metrics[-1]  # an evaluation where it stopped
    assert "samples" in report.snapshots
    card = json.loads((tmp_path / "run" / "last.json").read_text())
    assert card["metrics"]["step"] == 5


def test_a_stop_with_no_time_to_evaluate_still_saves_where_it_stopped(data, tmp_path):
    report = SilentReporter(stop_after=3, stop_grace=0.0)  # stops at step 5; no second to spare for validation
    result = train(replace(TINY, val_images=500), data, report, out=tmp_path / "run")
    assert result.stopped and result.steps == 5
    assert not [row for row in report.metrics if "val_loss" in row]  # the validation was abandoned
    card = json.loads((tmp_path / "run" / "last.json").read_text())
    assert card["metrics"]["step"] == 5  # but the place it stopped is kept, to resume from
    resumed = train(TINY, data, SilentReporter(), out=tmp_path / "run", resume=tmp_path / "run")
    assert resumed.steps == 16 and not resumed.stopped


def test_resume_continues_from_the_saved_step_with_weights_ema_and_adam(data, tmp_path):
    first = train(replace(TINY, epochs=1), data, SilentReporter(), out=tmp_path / "run")
    assert first.steps == 8
    config = TINY
    model = UNet(config.unet_config())
    ema = UNet(config.unet_config())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    state = restore_training(tmp_path / "run", model, ema, optimizer, config.schedule_config())
    assert state.step == 8 and state.best_val_loss == pytest.approx(first.best_val_loss)
    for restored, trained in zip(ema.parameters(), first.model.parameters()):
        assert torch.equal(restored, trained)
    moments = optimizer.state[model.conv_in.weight]
    assert moments["exp_avg"].abs().sum() > 0 and int(moments["step"]) == 8

    report = SilentReporter()
    resumed = train(TINY, data, report, out=tmp_path / "run", resume=tmp_path / "run")
    assert report.metrics[0]["step"] == 8 and resumed.steps == 16 and report.done_total == (16, 16)
    assert resumed.seconds > first.seconds


def test_resume_refuses_a_different_model(data, tmp_path):
    train(replace(TINY, epochs=1), data, SilentReporter(), out=tmp_path / "run")
    with pytest.raises(CheckpointError, match="was trained with width 8.*but this run asks for width 16"):
        train(replace(TINY, width=16), data, SilentReporter(), resume=tmp_path / "run")


def test_export_keeps_only_the_ema_and_samples_the_same(finished, tmp_path):
    result, _, folder = finished
    weights = export_checkpoint(folder, tmp_path / "shipped")
    assert weights == tmp_path / "shipped.safetensors"
    assert weights.stat().st_size < 0.3 * (folder / "last.safetensors").stat().st_size
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["optimizer_step"] is None and all(name.startswith("ema.") for name in card["tensors"])
    model, _, _ = load_model(tmp_path / "shipped")
    x, t = torch.randn(1, 1, 28, 28), torch.tensor([100])
    with torch.no_grad():
        assert torch.allclose(model(x, t), result.model(x, t), atol=1e-6)
    with pytest.raises(CheckpointError, match="can be sampled from, not resumed"):
        train(TINY, toy_shapes(256), SilentReporter(), resume=tmp_path / "shipped")


def test_corrupt_or_missing_checkpoints_are_checkpoint_errors(finished, tmp_path):
    _, _, folder = finished
    broken = tmp_path / "broken"
    broken.mkdir()
    blob = (folder / "best.safetensors").read_bytes()
    (broken / "best.safetensors").write_bytes(blob[: len(blob) // 2])
    (broken / "best.json").write_text((folder / "best.json").read_text())
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_model(broken)
    (broken / "best.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(broken)
    with pytest.raises(CheckpointError, match="No checkpoint card"):
        load_model(tmp_path / "nowhere")
    gpt_card = json.loads((folder / "best.json").read_text()) | {"kind": "gpt"}
    (broken / "best.json").write_text(json.dumps(gpt_card))
    with pytest.raises(CheckpointError, match="holds a 'gpt' model, not a 'ddpm' one"):
        load_model(broken)


def test_find_checkpoint_picks_best_to_sample_and_last_to_resume(finished):
    _, _, folder = finished
    assert find_checkpoint(folder) == folder / "best"
    assert find_checkpoint(folder, prefer="last") == folder / "last"
    assert find_checkpoint(folder / "last.json") == folder / "last"


def test_lr_warms_up_then_decays_to_min_lr():
    total = 1000
    assert get_lr(0, CPU.lr_schedule(total)) == pytest.approx(2e-3 / 101)
    assert get_lr(100, CPU.lr_schedule(total)) == pytest.approx(2e-3)
    assert get_lr(550, CPU.lr_schedule(total)) == pytest.approx((2e-3 + 2e-4) / 2)
    assert get_lr(total, CPU.lr_schedule(total)) == pytest.approx(2e-4)
    assert get_lr(500, replace(CPU, decay_lr=False).lr_schedule(total)) == 2e-3


def test_presets():
    assert (CPU.timesteps, CPU.schedule, CPU.beta_start, CPU.beta_end) == (1000, "linear", 1e-4, 0.02)  # DDPM's schedule
    assert steps_per_epoch(CPU, 60_000) * CPU.epochs == 4685
    assert steps_per_epoch(QUICK, QUICK.train_images) * QUICK.epochs == 936
    assert preset_of(replace(CPU, device="cpu", seed=3)) == "cpu" and preset_of(replace(CPU, width=24)) is None
    assert UNet(CPU.unet_config()).parameter_count() * 4 < 10 * 2**20  # the shipped EMA weights stay under 10 MB


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"epochs": 0}, "epochs must be between 1 and 1000, got 0"),
        ({"width": 10}, r"width \(10\) times channel_mults\[0\] \(1\) is 10 channels, which is not divisible by the 4 GroupNorm groups"),
        ({"batch_size": 0}, "batch_size must be between 1"),
        ({"min_lr": 1.0}, "min_lr must be between 0 and learning_rate"),
        ({"label_dropout": 0.0, "sample_guidance": 3.0}, "needs the null label, which label_dropout 0 never trains"),
        ({"sample_steps": 2000}, "sample_steps .* must be between 1 and timesteps \\(1000\\)"),
        ({"schedule": "quadratic"}, "schedule must be one of linear, cosine"),
    ],
)
def test_bad_settings_are_config_errors_naming_value_and_limit(changes, words):
    with pytest.raises(ConfigError, match=words):
        replace(TINY, **changes).validate()


def test_unknown_settings_in_a_card_are_refused():
    with pytest.raises(ConfigError, match="Unknown DDPM training settings: colour"):
        DDPMTrainConfig.from_dict({"colour": "blue"})
    assert DDPMTrainConfig.from_dict({"channel_mults": [1, 2]}).channel_mults == (1, 2)


def test_more_training_images_than_there_are_is_a_data_error(data):
    with pytest.raises(DataError, match="train_images is 5,000, but toy shapes .* has only 256"):
        train(replace(TINY, train_images=5000), data, SilentReporter())


def test_unconditional_training_runs_without_labels(data):
    result = train(replace(TINY, conditional=False, epochs=1), data, SilentReporter())
    assert result.model.label_embedding is None and math.isfinite(result.val_loss)


@pytest.mark.data
def test_a_short_run_on_real_mnist_learns(tmp_path):
    """A few hundred real digits: the loss falls well below the zero-noise prediction's 1.0."""
    config = replace(TINY, train_images=512, epochs=2, val_images=200, sample_count=0)
    report = SilentReporter()
    result = train(config, load_mnist(), report)
    assert result.val_loss < 0.5 and np.isfinite(result.best_val_loss)
