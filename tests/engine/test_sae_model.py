import numpy as np
import pytest

from engine.sae.model import (
    FastCost,
    check_gradient,
    initialize_parameters,
    numerical_gradient,
    parameter_count,
    sparse_autoencoder_cost,
    unpack,
)
from tests.torch_threads import torch_threads


@pytest.fixture
def patches():
    return np.random.default_rng(0).uniform(0.1, 0.9, size=(16, 60))  # 4x4 patches, one per column


def test_initialisation_follows_ufldl(patches):
    theta = initialize_parameters(5, 16, np.random.default_rng(1))
    W1, W2, b1, b2 = unpack(theta, 16, 5)
    r = np.sqrt(6) / np.sqrt(5 + 16 + 1)
    assert theta.size == parameter_count(16, 5) == 2 * 5 * 16 + 5 + 16
    assert W1.shape == (5, 16) and W2.shape == (16, 5)
    assert np.abs(W1).max() <= r and np.abs(W1).max() > 0.8 * r and not b1.any() and not b2.any()


def test_cost_terms_by_hand_at_zero_weights(patches):
    # with all parameters zero every activation is 0.5: reconstruction = sum (0.5 - x)^2 / 2m, KL(rho||0.5) per unit
    theta = np.zeros(parameter_count(16, 5))
    cost, _, terms = sparse_autoencoder_cost(theta, patches, 5, lam=1e-4, beta=3, rho=0.01)
    expected_reconstruction = np.sum((0.5 - patches) ** 2) / (2 * patches.shape[1])
    expected_kl = 0.01 * np.log(0.01 / 0.5) + 0.99 * np.log(0.99 / 0.5)
    assert terms.reconstruction == pytest.approx(expected_reconstruction)
    assert terms.weight_decay == 0
    assert terms.sparsity == pytest.approx(3 * 5 * expected_kl)
    assert cost == pytest.approx(terms.total)


def test_gradient_matches_central_differences(patches):
    check = check_gradient(patches, hidden=5, lam=1e-4, beta=3, rho=0.01, rng=np.random.default_rng(2))
    assert check.passed and check.relative_difference < 1e-9
    assert check.parameters == parameter_count(16, 5) and check.examples == 60


def test_the_check_catches_a_wrong_gradient(patches):
    theta = initialize_parameters(5, 16, np.random.default_rng(3))
    cost = lambda t: sparse_autoencoder_cost(t, patches, 5, 1e-4, 3, 0.01)[0]
    _, analytic, _ = sparse_autoencoder_cost(theta, patches, 5, 1e-4, 3, 0.01)
    wrong = analytic.copy()
    wrong[: 5 * 16] *= 1.01  # W1's gradient off by 1%
    numeric = numerical_gradient(cost, theta)
    assert np.linalg.norm(numeric - wrong) / np.linalg.norm(numeric + wrong) > 1e-4


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("examples", [60, 5000])  # 5,000 rows are enough for torch to split each operation over its threads
def test_fast_cost_equals_the_float64_reference(threads, examples):
    patches = np.random.default_rng(0).uniform(0.1, 0.9, size=(16, examples))
    theta = initialize_parameters(5, 16, np.random.default_rng(4))
    reference_cost, reference_grad, reference_terms = sparse_autoencoder_cost(theta, patches, 5, 1e-4, 3, 0.01)
    with torch_threads(threads), FastCost(patches, 5, 1e-4, 3, 0.01) as fast:
        cost, grad = fast(theta)
    assert cost == pytest.approx(reference_cost, rel=1e-5)
    assert fast.last_terms.sparsity == pytest.approx(reference_terms.sparsity, rel=1e-5)
    assert np.linalg.norm(grad - reference_grad) / np.linalg.norm(reference_grad) < 1e-5
