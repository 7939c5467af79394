"""The noise schedule: DDPM's constants, the forward process, and one step of each sampler against the paper's formulas."""

import math

import pytest
import torch

from engine.core.errors import ConfigError
from engine.ddpm.schedule import NoiseSchedule, ScheduleConfig


@pytest.fixture(scope="module")
def schedule():
    return NoiseSchedule()


def test_linear_schedule_is_the_papers(schedule):
    assert schedule.timesteps == 1000
    assert schedule.betas[0].item() == pytest.approx(1e-4)
    assert schedule.betas[-1].item() == pytest.approx(0.02)
    assert torch.all(schedule.betas[1:] > schedule.betas[:-1])
    assert torch.allclose(schedule.alphas_cumprod, torch.cumprod(1 - schedule.betas, 0))
    # at t = T almost no signal is left: alpha_bar_T is about 4e-5 for this schedule
    assert schedule.alphas_cumprod[-1].item() == pytest.approx(4.0358e-5, rel=1e-3)
    assert torch.all(schedule.signal_to_noise[1:] < schedule.signal_to_noise[:-1])


def test_posterior_variance_is_beta_tilde(schedule):
    t = 500
    expected = schedule.betas[t] * (1 - schedule.alphas_cumprod[t - 1]) / (1 - schedule.alphas_cumprod[t])
    assert schedule.posterior_variance[t].item() == pytest.approx(expected.item())
    assert schedule.posterior_variance[0].item() == 0.0  # x_0 given x_1 and x_0 is certain
    assert torch.all(schedule.posterior_variance[1:] <= schedule.betas[1:])


def test_cosine_schedule_follows_improved_ddpm():
    cosine = NoiseSchedule(ScheduleConfig(schedule="cosine"))
    s = 0.008
    f = lambda t: math.cos((t / 1000 + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    assert cosine.alphas_cumprod[499].item() == pytest.approx(f(500) / f(0), rel=1e-6)
    assert cosine.betas.max().item() <= 0.999
    assert cosine.alphas_cumprod[499] > NoiseSchedule().alphas_cumprod[499]  # destroys information more slowly


def test_add_noise_has_the_marginal_of_eq_4(schedule):
    generator = torch.Generator().manual_seed(0)
    x0 = torch.full((20_000, 1, 1, 1), 0.5)
    t = torch.full((20_000,), 300)
    x_t = schedule.add_noise(x0, torch.randn(x0.shape, generator=generator), t)
    alpha_bar = schedule.alphas_cumprod[300].item()
    assert x_t.mean().item() == pytest.approx(0.5 * math.sqrt(alpha_bar), abs=0.02)
    assert x_t.var().item() == pytest.approx(1 - alpha_bar, rel=0.05)


def test_predict_x0_inverts_add_noise(schedule):
    generator = torch.Generator().manual_seed(1)
    x0 = torch.rand(4, 1, 28, 28, generator=generator) * 2 - 1
    noise = torch.randn(x0.shape, generator=generator)
    t = torch.tensor([0, 10, 500, 999])
    x_t = schedule.add_noise(x0, noise, t)
    assert torch.allclose(schedule.predict_x0(x_t, noise, t), x0, atol=2e-3)
    assert torch.allclose(schedule.eps_from_x0(x_t, x0, t), noise, atol=1e-4)


def test_ddpm_step_is_algorithm_2_when_nothing_is_clipped(schedule):
    generator = torch.Generator().manual_seed(2)
    x_t = torch.randn(3, 1, 4, 4, generator=generator) * 0.1
    eps = torch.randn(3, 1, 4, 4, generator=generator) * 0.1
    z = torch.randn(3, 1, 4, 4, generator=generator)
    t = 20
    x_prev, x0 = schedule.ddpm_step(eps, t, x_t, z, variance="beta", clip=False)
    alpha, alpha_bar, beta = schedule.alphas[t].item(), schedule.alphas_cumprod[t].item(), schedule.betas[t].item()
    expected = (x_t - beta / math.sqrt(1 - alpha_bar) * eps) / math.sqrt(alpha) + math.sqrt(beta) * z  # Algorithm 2, line 4
    assert torch.allclose(x_prev, expected, atol=1e-5)
    last, _ = schedule.ddpm_step(eps, 0, x_t, None, clip=False)  # no noise at the last step
    assert torch.allclose(last, schedule.predict_x0(x_t, eps, torch.zeros(3, dtype=torch.long)), atol=1e-5)


def test_ddim_step_with_the_true_noise_lands_on_the_forward_marginal(schedule):
    generator = torch.Generator().manual_seed(3)
    x0 = torch.rand(2, 1, 6, 6, generator=generator) * 1.6 - 0.8
    eps = torch.randn(x0.shape, generator=generator)
    x_t = schedule.add_noise(x0, eps, torch.tensor([700, 700]))
    x_prev, predicted = schedule.ddim_step(eps, 700, 400, x_t, eta=0.0)
    assert torch.allclose(predicted, x0, atol=1e-4)
    # deterministic DDIM keeps the same noise: x_400 = sqrt(ab_400) x0 + sqrt(1 - ab_400) eps
    assert torch.allclose(x_prev, schedule.add_noise(x0, eps, torch.tensor([400, 400])), atol=1e-4)
    clean, _ = schedule.ddim_step(eps, 700, -1, x_t)
    assert torch.allclose(clean, x0, atol=1e-4)


def test_ddim_with_eta_1_adds_ddpm_sized_noise(schedule):
    x_t = torch.zeros(1, 1, 2, 2)
    eps = torch.zeros(1, 1, 2, 2)
    z = torch.ones(1, 1, 2, 2)
    deterministic, _ = schedule.ddim_step(eps, 600, 599, x_t, eta=0.0)
    noisy, _ = schedule.ddim_step(eps, 600, 599, x_t, eta=1.0, noise=z)
    # one step apart, DDIM's sigma(eta=1) is sqrt(beta_tilde_t)
    assert (noisy - deterministic).mean().item() == pytest.approx(math.sqrt(schedule.posterior_variance[600].item()), rel=1e-4)


def test_ddim_timesteps_trail_from_the_last_one(schedule):
    assert schedule.ddim_timesteps(1) == [999]
    assert schedule.ddim_timesteps(4) == [999, 749, 499, 249]
    fifty = schedule.ddim_timesteps(50)
    assert len(fifty) == 50 and fifty[0] == 999 and fifty[-1] == 19
    assert schedule.ddim_timesteps(1000) == list(range(999, -1, -1))
    with pytest.raises(ConfigError, match="between 1 and 1000 steps.*got 1001"):
        schedule.ddim_timesteps(1001)


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"timesteps": 1}, "timesteps \\(T\\) must be between 2"),
        ({"schedule": "sigmoid"}, "schedule must be one of linear, cosine"),
        ({"beta_start": 0.03}, "0 < beta_start < beta_end < 1"),
    ],
)
def test_bad_schedules_are_config_errors(changes, words):
    with pytest.raises(ConfigError, match=words):
        ScheduleConfig(**changes).validate()
