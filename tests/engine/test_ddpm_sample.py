"""The samplers: every frame of the reverse process, seeded, guided, and the mistakes a person can make."""

import io
from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.core.errors import ConfigError
from engine.ddpm.sample import (
    DEFAULT_GUIDANCE,
    SampleSettings,
    ddim_frames,
    ddpm_frames,
    denoising_gif,
    frames,
    frames_to_keep,
    generate,
    grid_png,
    predict_noise,
    sample_labels,
)
from engine.ddpm.schedule import NoiseSchedule, ScheduleConfig
from engine.ddpm.unet import UNet, UNetConfig

TINY_UNET = UNetConfig(width=8, channel_mults=(1, 2, 2), heads=2, groups=4)


def random_model(config: UNetConfig = TINY_UNET, seed: int = 0) -> UNet:
    """An untrained U-Net moved off its zero start, so that its predictions depend on everything they should."""
    torch.manual_seed(seed)
    model = UNet(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return random_model()


@pytest.fixture(scope="module")
def short_schedule():
    return NoiseSchedule(ScheduleConfig(timesteps=50))


def test_ddpm_yields_every_one_of_the_T_steps(model, short_schedule):
    all_frames = list(ddpm_frames(model, short_schedule, SampleSettings(sampler="ddpm", n=3, digit=4)))
    assert [f.index for f in all_frames] == list(range(1, 51))
    assert [f.t for f in all_frames] == list(range(49, -1, -1))
    assert all(f.x.shape == (3, 1, 28, 28) and f.x0.shape == (3, 1, 28, 28) for f in all_frames)
    levels = [f.noise_std for f in all_frames]
    assert all(a > b for a, b in zip(levels, levels[1:])) and levels[-1] == 0.0 and all_frames[-1].final
    assert all(f.x0.abs().max() <= 1 for f in all_frames)  # the predicted x_0 is clipped to the data's range


def test_ddpm_runs_the_full_1000_steps_of_the_paper(model):
    schedule = NoiseSchedule()
    count = sum(1 for _ in ddpm_frames(model, schedule, SampleSettings(sampler="ddpm", n=1)))
    assert count == 1000


def test_ddim_takes_any_number_of_steps_and_is_deterministic_at_eta_0(model, short_schedule):
    settings = SampleSettings(sampler="ddim", n=2, steps=7, seed=3, eta=0.0)
    first = list(ddim_frames(model, short_schedule, settings))
    again = list(ddim_frames(model, short_schedule, settings))
    assert len(first) == 7 and first[0].t == 49 and first[-1].alpha_bar == 1.0
    assert torch.equal(first[-1].x, again[-1].x)
    assert torch.equal(first[-1].x, first[-1].x0)  # the last step lands on its own prediction
    other_seed = list(ddim_frames(model, short_schedule, replace(settings, seed=4)))
    assert not torch.equal(first[-1].x, other_seed[-1].x)
    noisy = list(ddim_frames(model, short_schedule, replace(settings, eta=1.0)))
    assert not torch.equal(first[-1].x, noisy[-1].x)


def test_the_same_seed_draws_the_same_ddpm_digits(model, short_schedule):
    settings = SampleSettings(sampler="ddpm", n=2, seed=11)
    a = list(frames(model, short_schedule, settings))[-1].x
    b = list(frames(model, short_schedule, settings))[-1].x
    assert torch.equal(a, b)


def test_labels_cycle_through_the_digits_or_follow_the_request():
    assert sample_labels(TINY_UNET, SampleSettings(), 12).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert sample_labels(TINY_UNET, SampleSettings(digit=7), 3).tolist() == [7, 7, 7]
    assert sample_labels(TINY_UNET, SampleSettings(unconditional=True), 2).tolist() == [10, 10]
    assert sample_labels(replace(TINY_UNET, num_classes=0), SampleSettings(), 2) is None


def test_guidance_mixes_the_labelled_and_the_null_prediction(model):
    x = torch.randn(2, 1, 28, 28)
    labels = torch.tensor([3, 8])
    steps = torch.full((2,), 400)
    with torch.no_grad():
        conditional = model(x, steps, labels)
        unconditional = model(x, steps, torch.full((2,), 10))
        guided = predict_noise(model, x, 400, labels, 3.0)
        assert torch.allclose(guided, unconditional + 3.0 * (conditional - unconditional), atol=1e-5)
        assert torch.allclose(predict_noise(model, x, 400, labels, 1.0), conditional)
        assert torch.allclose(predict_noise(model, x, 400, labels, 0.0), unconditional)


def test_generate_draws_in_chunks_and_returns_images_in_0_1(model, short_schedule, monkeypatch):
    monkeypatch.setattr("engine.ddpm.sample.CHUNK", 4)
    calls = []
    images, labels = generate(model, short_schedule, SampleSettings(n=10, steps=3), progress=lambda d, t: calls.append((d, t)))
    assert images.shape == (10, 28, 28) and images.min() >= 0 and images.max() <= 1
    assert labels.tolist() == list(range(10))
    assert calls[-1] == (9, 9)  # three chunks of three steps


def test_defaults_resolve_against_the_model():
    settings = SampleSettings().resolved(TINY_UNET, 1000)
    assert (settings.steps, settings.guidance) == (50, DEFAULT_GUIDANCE)
    assert SampleSettings(sampler="ddpm").resolved(TINY_UNET, 1000).steps == 1000
    unconditional = replace(TINY_UNET, num_classes=0)
    assert SampleSettings().resolved(unconditional, 1000).guidance == 1.0


@pytest.mark.parametrize(
    "settings, config, words",
    [
        (SampleSettings(digit=12), TINY_UNET, "digit must be between 0 and 9, got 12"),
        (SampleSettings(digit=-1), TINY_UNET, "digit must be between 0 and 9, got -1"),
        (SampleSettings(guidance=3.0), replace(TINY_UNET, num_classes=0), r"Guidance \(3\) needs a class-conditional model.*trained without labels"),
        (SampleSettings(digit=3), replace(TINY_UNET, num_classes=0), r"trained without labels, so it cannot be asked for a digit \(3\)"),
        (SampleSettings(unconditional=True, guidance=2.0), TINY_UNET, "unconditional samples have none"),
        (SampleSettings(sampler="ddpm", steps=50), TINY_UNET, "runs all T = 1000 steps.*use the DDIM sampler"),
        (SampleSettings(steps=0), TINY_UNET, "DDIM needs between 1 and 1000 steps"),
        (SampleSettings(n=0), TINY_UNET, "n \\(the number of samples\\) must be between 1"),
        (SampleSettings(sampler="euler"), TINY_UNET, "sampler must be one of ddpm, ddim"),
        (SampleSettings(eta=2.0), TINY_UNET, "eta must be between 0"),
        (SampleSettings(guidance=-1.0), TINY_UNET, "guidance must be between 0 and 20"),
    ],
)
def test_mistakes_are_config_errors_that_say_what_to_do(settings, config, words):
    with pytest.raises(ConfigError, match=words):
        settings.resolved(config, 1000)


def test_the_generators_check_before_drawing(model, short_schedule):
    with pytest.raises(ConfigError, match="digit must be between 0 and 9"):
        next(ddim_frames(model, short_schedule, SampleSettings(digit=10)))


def test_frames_to_keep_favours_the_end():
    kept = frames_to_keep(1000, 60)
    assert kept[0] == 1 and kept[-1] == 1000 and len(kept) <= 60
    assert kept[-1] - kept[-2] < kept[1] - kept[0]
    assert frames_to_keep(10, 60) == list(range(1, 11))


def test_grid_png_and_gif_are_pictures(model, short_schedule):
    from PIL import Image

    all_frames = list(ddim_frames(model, short_schedule, SampleSettings(n=4, steps=5)))
    gif = denoising_gif(all_frames, columns=2)
    picture = Image.open(io.BytesIO(gif))
    assert picture.format == "GIF" and picture.n_frames == 5
    assert picture.size[0] > 2 * picture.size[1]  # x_t and the predicted x_0 side by side
    png = grid_png(np.zeros((4, 28, 28)), columns=2)
    assert Image.open(io.BytesIO(png)).size == (2 * (2 * 28 + 6), 2 * (2 * 28 + 6))
