"""The sparse autoencoder of UFLDL's exercise: cost, gradient, gradient check.

Convention (UFLDL's): one example per column. X is (visible, m); W1 is (hidden, visible),
W2 is (visible, hidden); all parameters are packed into one vector theta = [W1, W2, b1, b2],
each matrix flattened column-major as MATLAB's `(:)` does.

The cost (UFLDL, "Sparse autoencoder" notes):

    J = 1/(2m) * sum ||x_hat - x||^2                       (1) reconstruction
      + lambda/2 * (sum W1^2 + sum W2^2)                    (2) weight decay
      + beta * sum_j KL(rho || rho_hat_j)                   (3) sparsity
    rho_hat_j = 1/m * sum_i a2_j(x_i)                       (4) mean activation of hidden unit j
    KL(rho || rho_hat) = rho log(rho/rho_hat) + (1-rho) log((1-rho)/(1-rho_hat))

`sparse_autoencoder_cost` is the float64 reference. `FastCost` computes the same in float32 on
cache-sized chunks in parallel threads, which is what L-BFGS calls 400+ times.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CostTerms:
    reconstruction: float
    weight_decay: float
    sparsity: float

    @property
    def total(self) -> float:
        return self.reconstruction + self.weight_decay + self.sparsity


def initialize_parameters(hidden: int, visible: int, rng: np.random.Generator) -> np.ndarray:
    """UFLDL's init: weights uniform in +-sqrt(6)/sqrt(hidden + visible + 1), biases zero."""
    r = np.sqrt(6) / np.sqrt(hidden + visible + 1)
    W1 = rng.uniform(-r, r, size=(hidden, visible))
    W2 = rng.uniform(-r, r, size=(visible, hidden))
    return np.concatenate([W1.ravel(order="F"), W2.ravel(order="F"), np.zeros(hidden), np.zeros(visible)])


def unpack(theta: np.ndarray, visible: int, hidden: int):
    """theta -> W1 (hidden, visible), W2 (visible, hidden), b1 (hidden,), b2 (visible,)."""
    n = hidden * visible
    W1 = theta[:n].reshape(hidden, visible, order="F")
    W2 = theta[n : 2 * n].reshape(visible, hidden, order="F")
    b1 = theta[2 * n : 2 * n + hidden]
    b2 = theta[2 * n + hidden :]
    return W1, W2, b1, b2


def parameter_count(visible: int, hidden: int) -> int:
    return 2 * hidden * visible + hidden + visible


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def kl_sparsity(rho: float, rho_hat: np.ndarray) -> float:
    """sum_j KL(rho || rho_hat_j), eq. (3) without beta."""
    return float(np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))))


def sparse_autoencoder_cost(theta, X, hidden: int, lam: float, beta: float, rho: float):
    """Float64 reference: returns (J, grad, CostTerms) for parameters theta on data X (visible, m)."""
    visible, m = X.shape
    W1, W2, b1, b2 = unpack(theta, visible, hidden)
    a2 = sigmoid(W1 @ X + b1[:, None])  # (hidden, m)
    a3 = sigmoid(W2 @ a2 + b2[:, None])  # (visible, m)
    rho_hat = a2.mean(axis=1)  # eq. (4)
    terms = CostTerms(
        reconstruction=float(0.5 / m * np.sum((a3 - X) ** 2)),
        weight_decay=float(lam / 2 * (np.sum(W1**2) + np.sum(W2**2))),
        sparsity=float(beta * kl_sparsity(rho, rho_hat)),
    )
    # backpropagation; the sparsity term adds beta * d KL / d rho_hat to every hidden delta
    delta3 = (a3 - X) * a3 * (1 - a3)  # (visible, m)
    sparsity_delta = beta * (-rho / rho_hat + (1 - rho) / (1 - rho_hat))  # (hidden,)
    delta2 = (W2.T @ delta3 + sparsity_delta[:, None]) * a2 * (1 - a2)  # (hidden, m)
    W1_grad = delta2 @ X.T / m + lam * W1
    W2_grad = delta3 @ a2.T / m + lam * W2
    b1_grad = delta2.sum(axis=1) / m
    b2_grad = delta3.sum(axis=1) / m
    grad = np.concatenate([W1_grad.ravel(order="F"), W2_grad.ravel(order="F"), b1_grad, b2_grad])
    return terms.total, grad, terms


def hidden_activations(theta, X, hidden: int) -> np.ndarray:
    """a2 for every example: (hidden, m)."""
    W1, _, b1, _ = unpack(theta, X.shape[0], hidden)
    return sigmoid(W1 @ X + b1[:, None])


def reconstruct(theta, X, hidden: int) -> np.ndarray:
    """x_hat for every example: (visible, m)."""
    _, W2, _, b2 = unpack(theta, X.shape[0], hidden)
    return sigmoid(W2 @ hidden_activations(theta, X, hidden) + b2[:, None])


def numerical_gradient(cost, theta: np.ndarray, epsilon: float = 1e-4) -> np.ndarray:
    """Central differences (J(theta + e_i eps) - J(theta - e_i eps)) / (2 eps), one parameter at a time."""
    grad = np.empty_like(theta)
    bumped = theta.copy()
    for i in range(theta.size):
        bumped[i] = theta[i] + epsilon
        plus = cost(bumped)
        bumped[i] = theta[i] - epsilon
        minus = cost(bumped)
        bumped[i] = theta[i]
        grad[i] = (plus - minus) / (2 * epsilon)
    return grad


@dataclass(frozen=True)
class GradientCheck:
    relative_difference: float  # ||num - ana|| / ||num + ana||, UFLDL's measure
    threshold: float
    parameters: int
    examples: int

    @property
    def passed(self) -> bool:
        return self.relative_difference < self.threshold


def check_gradient(X, hidden, lam, beta, rho, rng: np.random.Generator, epsilon=1e-4, threshold=1e-9) -> GradientCheck:
    """Compare the analytic gradient with central differences at a random initialisation."""
    theta = initialize_parameters(hidden, X.shape[0], rng)
    _, analytic, _ = sparse_autoencoder_cost(theta, X, hidden, lam, beta, rho)
    numeric = numerical_gradient(lambda t: sparse_autoencoder_cost(t, X, hidden, lam, beta, rho)[0], theta, epsilon)
    difference = np.linalg.norm(numeric - analytic) / np.linalg.norm(numeric + analytic)
    return GradientCheck(float(difference), threshold, theta.size, X.shape[1])


def _sigmoid_inplace(z: np.ndarray) -> np.ndarray:
    np.negative(z, out=z)
    with np.errstate(over="ignore"):  # a line search may try huge steps; exp -> inf gives sigmoid 0, as it should
        np.exp(z, out=z)
    z += 1
    return np.reciprocal(z, out=z)


class FastCost:
    """The same cost and gradient in float32, split over threads, for the optimiser's hot loop.

    The data stays resident as float32 chunks laid out one example per row, so every product is
    a small contiguous matmul that stays in cache, and numpy releases the GIL inside each, so
    `workers` threads run the chunks in parallel. There are more chunks than workers so that a
    core busy with something else (the browser, the server) slows one worker, not every step. Each evaluation has two phases because the
    sparsity term needs rho_hat over all examples before any hidden delta can be formed:
    forward (per chunk) -> reduce rho_hat -> backward (per chunk) -> sum the gradients.
    Parameters arrive and the gradient leaves as float64, which is what scipy's L-BFGS-B keeps.
    Use it as a context manager, or call close(), to end its threads.
    """

    def __init__(self, X: np.ndarray, hidden: int, lam: float, beta: float, rho: float, workers: int | None = None, chunk: int = 1000):
        from concurrent.futures import ThreadPoolExecutor

        self.visible, self.m = X.shape
        self.hidden, self.lam, self.beta, self.rho = hidden, lam, beta, rho
        self.chunks = [np.ascontiguousarray(X[:, i : i + chunk].T, dtype=np.float32) for i in range(0, self.m, chunk)]  # each (c, visible)
        self.pool = ThreadPoolExecutor(workers or min(4, os.cpu_count() or 1), thread_name_prefix="sae-cost")
        self.last_terms: CostTerms | None = None

    def __enter__(self) -> "FastCost":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.pool.shutdown(wait=False)

    @staticmethod
    def _forward(X, W1, b1, W2, b2):
        a2 = _sigmoid_inplace(X @ W1.T + b1)  # (c, hidden)
        a3 = _sigmoid_inplace(a2 @ W2.T + b2)  # (c, visible)
        error = a3 - X
        squared = float(np.vdot(error, error))
        delta3 = error * a3 * (1 - a3)  # (c, visible)
        return a2, delta3, squared, a2.sum(axis=0, dtype=np.float64)

    @staticmethod
    def _backward(X, a2, delta3, W2, sparsity_delta):
        delta2 = (delta3 @ W2 + sparsity_delta) * a2 * (1 - a2)  # (c, hidden)
        return delta2.T @ X, delta3.T @ a2, delta2.sum(axis=0, dtype=np.float64), delta3.sum(axis=0, dtype=np.float64)

    def __call__(self, theta: np.ndarray):
        visible, hidden, m, rho = self.visible, self.hidden, self.m, self.rho
        W1_64, W2_64, b1_64, b2_64 = unpack(theta, visible, hidden)
        W1, W2, b1, b2 = (np.ascontiguousarray(p, dtype=np.float32) for p in (W1_64, W2_64, b1_64, b2_64))
        forward = list(self.pool.map(lambda X: self._forward(X, W1, b1, W2, b2), self.chunks))
        rho_hat = sum(f[3] for f in forward) / m  # eq. (4)
        sparsity_delta = (self.beta * (-rho / rho_hat + (1 - rho) / (1 - rho_hat))).astype(np.float32)
        backward = list(self.pool.map(lambda X, f: self._backward(X, f[0], f[1], W2, sparsity_delta), self.chunks, forward))
        W1_grad = sum(b[0].astype(np.float64) for b in backward) / m + self.lam * W1_64
        W2_grad = sum(b[1].astype(np.float64) for b in backward) / m + self.lam * W2_64
        b1_grad = sum(b[2] for b in backward) / m
        b2_grad = sum(b[3] for b in backward) / m
        self.last_terms = CostTerms(
            reconstruction=0.5 / m * sum(f[2] for f in forward),
            weight_decay=float(self.lam / 2 * (np.sum(W1_64**2) + np.sum(W2_64**2))),
            sparsity=float(self.beta * kl_sparsity(rho, rho_hat)),
        )
        grad = np.concatenate([W1_grad.ravel(order="F"), W2_grad.ravel(order="F"), b1_grad, b2_grad])
        return self.last_terms.total, grad
