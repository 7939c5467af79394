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

`sparse_autoencoder_cost` is the float64 reference. `FastCost` computes the same in float32 with
torch's fused CPU kernels, which is what L-BFGS calls 400+ times.
"""

from __future__ import annotations

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


class FastCost:
    """The same cost and gradient in float32 with torch's CPU kernels, for the optimiser's hot loop.

    Each evaluation is 14 torch operations on the whole (m, visible) batch, split over torch's
    threads. Fusion does most of the work: `addmm` adds the bias inside the product and
    `sigmoid_backward` forms delta * a * (1 - a) in one pass, so the data crosses memory about
    half as often as the same arithmetic in numpy. Measured on 10,000 8x8 patches, 25 hidden
    units, two cores of an Intel machine: 1.8 ms an evaluation (3.1 ms on one thread), against
    4.4 ms for numpy float32 on two threads. Two cores of an AMD EPYC (Zen 3, KVM) take 6-7 ms
    (10-12 on one thread): MKL, which torch calls for the products, runs these shapes there at
    43 GFLOP/s where OpenBLAS reaches 69, and mixing the two libraries' threads is slower still.
    The sums over examples are products with a vector of ones, in float32 like the rest;
    parameters arrive and the gradient leaves as float64, which is what scipy's L-BFGS-B keeps.
    It holds no threads of its own; `close()` (or leaving it as a context manager) drops the batch.
    """

    def __init__(self, X: np.ndarray, hidden: int, lam: float, beta: float, rho: float):
        import torch

        self.visible, self.m = X.shape
        self.hidden, self.lam, self.beta, self.rho = hidden, lam, beta, rho
        self.X = torch.from_numpy(np.ascontiguousarray(X.T, dtype=np.float32))  # (m, visible): one example per row
        self.ones = torch.ones(self.m)  # sums over the examples as products: 22 us where .sum(0, dtype=float64) took 370
        self.last_terms: CostTerms | None = None

    def __enter__(self) -> "FastCost":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.X = self.ones = None

    def __call__(self, theta: np.ndarray):
        import torch

        visible, hidden, m, rho, X, ones = self.visible, self.hidden, self.m, self.rho, self.X, self.ones
        W1_64, W2_64, b1_64, b2_64 = unpack(theta, visible, hidden)
        W1, W2, b1, b2 = (torch.from_numpy(np.ascontiguousarray(p, dtype=np.float32)) for p in (W1_64, W2_64, b1_64, b2_64))
        a2 = torch.addmm(b1, X, W1.T).sigmoid_()  # (m, hidden)
        a3 = torch.addmm(b2, a2, W2.T).sigmoid_()  # (m, visible)
        error = a3 - X
        squared = float(torch.dot(error.view(-1), error.view(-1)))
        rho_hat = (ones @ a2).numpy().astype(np.float64) / m  # eq. (4)
        sparsity_delta = torch.from_numpy((self.beta * (-rho / rho_hat + (1 - rho) / (1 - rho_hat))).astype(np.float32))
        delta3 = torch.ops.aten.sigmoid_backward(error, a3)  # error * a3 * (1 - a3)
        delta2 = torch.ops.aten.sigmoid_backward(torch.addmm(sparsity_delta, delta3, W2), a2)  # (m, hidden)
        W1_grad = (delta2.T @ X).numpy().astype(np.float64) / m + self.lam * W1_64
        W2_grad = (a2.T @ delta3).numpy().T.astype(np.float64) / m + self.lam * W2_64
        b1_grad = (ones @ delta2).numpy().astype(np.float64) / m
        b2_grad = (ones @ delta3).numpy().astype(np.float64) / m
        self.last_terms = CostTerms(
            reconstruction=0.5 / m * squared,
            weight_decay=float(self.lam / 2 * (np.sum(W1_64**2) + np.sum(W2_64**2))),
            sparsity=float(self.beta * kl_sparsity(rho, rho_hat)),
        )
        grad = np.concatenate([W1_grad.ravel(order="F"), W2_grad.ravel(order="F"), b1_grad, b2_grad])
        return self.last_terms.total, grad
