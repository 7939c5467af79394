"""Training the sparse autoencoder with L-BFGS, as UFLDL's exercise does with minFunc.

    python -m engine.sae train                       # UFLDL's defaults on Olshausen's images
    python -m engine.sae train --hidden 49 --beta 5  # any field can be overridden
    python -m engine.sae gradcheck                   # central differences vs backprop

The loop is scipy's L-BFGS-B. After every iteration its callback reports the three cost terms
and the current filters, and raises StopIteration when a stop is requested; scipy then returns
the iterate it had, which is kept like a finished run's.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace

import numpy as np

from engine.core.config import Config, Range, check_fields, check_value, seed_spec, spec
from engine.core.device import seed_everything
from engine.core.errors import ConfigError
from engine.core.jobs import Reporter
from engine.sae.images import SOURCES, load_source
from engine.sae.model import (
    CostTerms,
    FastCost,
    GradientCheck,
    check_gradient,
    hidden_activations,
    initialize_parameters,
    reconstruct,
    unpack,
)
from engine.sae.patches import as_images, training_patches, whiten

# UFLDL's published figures for its defaults: the cost at the random start and after 400 iterations
UFLDL_COST_UNTRAINED = 48.85
UFLDL_COST_TRAINED = 0.481

MAX_ITERATIONS = 2000
MAX_PATCHES = 100_000
MAX_HIDDEN = 400
MAX_PATCH_SIZE = 32
# beyond these one term of the cost swamps the others (UFLDL: beta 3, lambda 1e-4), and large enough ones overflow it
MAX_BETA = 1000.0
MAX_LAMBDA = 100.0
GRADCHECK_EPSILON = Range(0, 0.1, above=True)
SAMPLE_PATCHES = 20  # kept with a result to show reconstructions without the training data


@dataclass(frozen=True)
class SAETrainConfig(Config, what="SAE settings", renamed={"max_iter": "max_iters"}):
    patch_size: int = field(default=8, metadata=spec(2, MAX_PATCH_SIZE, unit="pixels"))  # 8x8 patches: 64 visible units
    hidden_size: int = field(default=25, metadata=spec(1, MAX_HIDDEN))  # 25 hidden units, shown as a 5x5 grid of filters
    num_patches: int = field(default=10_000, metadata=spec(10, MAX_PATCHES))
    rho: float = field(default=0.01, metadata=spec(0, 1, above=True, below=True, label="rho (a target mean activation)"))  # target mean activation of each hidden unit
    beta: float = field(default=3.0, metadata=spec(0, MAX_BETA, label="beta (sparsity weight)"))  # weight of the sparsity penalty
    lam: float = field(default=1e-4, metadata=spec(0, MAX_LAMBDA, label="lambda (weight decay)"))  # weight decay (UFLDL's lambda)
    max_iters: int = field(default=400, metadata=spec(1, MAX_ITERATIONS))  # L-BFGS iterations
    seed: int = field(default=0, metadata=seed_spec())
    source: str = field(default="olshausen", metadata=spec(choices=tuple(SOURCES)))

    @property
    def visible_size(self) -> int:
        return self.patch_size**2

    def validate(self) -> "SAETrainConfig":
        check_fields(self)
        return self


# UFLDL's exercise: its defaults, on Olshausen's ten whitened natural images. UFLDL reports the cost going from
# 48.85 to about 0.481 after 400 iterations of minFunc's L-BFGS; ours reaches 0.458 (the shipped checkpoint's card).
UFLDL = SAETrainConfig()

# For tests and trying things: a fifth of a second on one thread; cost 27.1 -> about 0.244 after 60 iterations (measured).
TINY = replace(
    UFLDL,
    patch_size=6,  # 36 visible units ...
    hidden_size=9,  # ... into 9 filters, a 3x3 grid
    num_patches=800,  # enough patches for 9 filters to settle
    max_iters=60,  # the cost falls a hundredfold in the first tens of iterations
    source="builtin",  # the images that come with the lab: nothing to download
)

PRESETS = {"ufldl": UFLDL, "tiny": TINY}


def cli_command(config: SAETrainConfig) -> str:
    """The command line that trains `config`, so a run from the page can be repeated from a shell."""
    return (
        f"python -m engine.sae train --patch-size {config.patch_size} --hidden {config.hidden_size} "
        f"--patches {config.num_patches} --rho {config.rho:g} --beta {config.beta:g} --lam {config.lam:g} "
        f"--iterations {config.max_iters} --seed {config.seed} --source {config.source}"
    )


@dataclass(frozen=True)
class SAEData:
    images: list[np.ndarray]  # whitened, float64 (H, W)
    patches: np.ndarray  # (visible, num_patches) in [0.1, 0.9]

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.patches).tobytes()).hexdigest()[:16]


def prepare_data(config: SAETrainConfig, uploads: list[tuple[str, bytes]] | None = None, progress=None, folder=None) -> SAEData:
    """Load the source's images, whiten them, sample and normalise the patches (seeded by config.seed)."""
    config.validate()
    images = [whiten(image) for image in load_source(config.source, uploads, progress, folder)]
    rng = np.random.default_rng(config.seed)
    return SAEData(images, training_patches(images, config.patch_size, config.num_patches, rng))


@dataclass(frozen=True)
class SAEResult:
    config: SAETrainConfig
    theta: np.ndarray
    initial: CostTerms
    final: CostTerms
    iterations: int
    stopped: bool
    seconds: float
    mean_activation: np.ndarray  # rho_hat per hidden unit over the training patches
    sample_patches: np.ndarray  # (visible, k): a few training patches, kept for showing reconstructions
    history: list[dict[str, float]]  # one row per iteration: step, cost and its three terms

    def parameters(self):
        return unpack(self.theta, self.config.visible_size, self.config.hidden_size)

    def filters(self) -> np.ndarray:
        return filters_of(self.theta, self.config)

    def reconstructions(self) -> tuple[np.ndarray, np.ndarray]:
        """The kept sample patches and the autoencoder's reconstructions of them, as (k, patch, patch) images."""
        size = self.config.patch_size
        rebuilt = reconstruct(self.theta, self.sample_patches, self.config.hidden_size)
        return as_images(self.sample_patches, size), as_images(rebuilt, size)


def filters_of(theta: np.ndarray, config: SAETrainConfig) -> np.ndarray:
    """The rows of W1 as images: (hidden, patch, patch), in the column-major order the patches use."""
    W1 = unpack(theta, config.visible_size, config.hidden_size)[0]
    return W1.reshape(config.hidden_size, config.patch_size, config.patch_size).transpose(0, 2, 1)


class RememberedCost:
    """The cost L-BFGS-B minimises, keeping the three terms of the point it last evaluated for the callback to report."""

    def __init__(self, cost: FastCost):
        self.cost = cost
        self.theta: np.ndarray | None = None
        self.terms: CostTerms | None = None

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = self.cost(theta)
        self.theta, self.terms = theta.copy(), self.cost.last_terms
        return value, grad

    def terms_at(self, theta: np.ndarray) -> CostTerms:
        if not np.array_equal(self.theta, theta):  # L-BFGS-B usually evaluates the accepted point last
            self(theta)
        return self.terms


def train(config: SAETrainConfig, patches: np.ndarray, report: Reporter) -> SAEResult:
    """Minimise the sparse autoencoder cost on `patches` (visible, m) with L-BFGS."""
    import scipy.optimize
    from threadpoolctl import threadpool_limits

    config.validate()
    if patches.shape[0] != config.visible_size:
        raise ConfigError(f"The patches have {patches.shape[0]} pixels each, the config expects {config.visible_size}.")
    rng = seed_everything(config.seed)
    started = time.perf_counter()
    theta = initialize_parameters(config.hidden_size, config.visible_size, rng)
    fast = FastCost(patches, config.hidden_size, config.lam, config.beta, config.rho)
    cost = RememberedCost(fast)
    history: list[dict[str, float]] = []

    def report_step(step: int, theta: np.ndarray, terms: CostTerms):
        row = {"cost": terms.total, "reconstruction": terms.reconstruction, "weight_decay": terms.weight_decay, "sparsity": terms.sparsity}
        history.append({"step": step, **row})
        report.metric(step, **row)
        report.snapshot("filters", filters_of(theta, config))
        report.progress(step, config.max_iters)

    best: dict = {"iterations": 0}

    def callback(intermediate_result):
        best["iterations"] += 1
        terms = cost.terms_at(intermediate_result.x)
        if terms.total <= best["terms"].total:
            best["theta"], best["terms"] = intermediate_result.x.copy(), terms
        report_step(best["iterations"], intermediate_result.x, terms)
        if report.stop_requested:
            raise StopIteration

    # L-BFGS-B's own vector work calls BLAS; OpenBLAS's threads then spin beside torch's and
    # 400 iterations took 15 s instead of 1.1 s (measured); one BLAS thread is plenty for 3,289 numbers
    with fast, threadpool_limits(limits=1, user_api="blas"):
        initial = cost.terms_at(theta)
        best["theta"], best["terms"] = theta, initial
        report_step(0, theta, initial)
        scipy.optimize.minimize(cost, theta, jac=True, method="L-BFGS-B", callback=callback, options={"maxiter": config.max_iters})
    mean_activation = hidden_activations(best["theta"], patches, config.hidden_size).mean(axis=1)
    return SAEResult(
        config=config,
        theta=best["theta"],
        initial=initial,
        final=best["terms"],
        iterations=best["iterations"],
        stopped=report.stop_requested,
        seconds=time.perf_counter() - started,
        mean_activation=mean_activation,
        sample_patches=patches[:, :SAMPLE_PATCHES].copy(),
        history=history,
    )


def gradient_check(config: SAETrainConfig, patches: np.ndarray, examples: int = 100, epsilon: float = 1e-4) -> GradientCheck:
    """UFLDL's check on the first `examples` patches: every parameter, central differences."""
    config.validate()
    if not 1 <= examples <= patches.shape[1]:
        raise ConfigError(f"The gradient check needs between 1 and {patches.shape[1]} examples, got {examples}.")
    # 0 divides by zero; steps much above UFLDL's 1e-4 measure the curvature, not the gradient
    check_value("epsilon (the finite-difference step)", epsilon, float, GRADCHECK_EPSILON)
    rng = np.random.default_rng(config.seed)
    return check_gradient(patches[:, :examples], config.hidden_size, config.lam, config.beta, config.rho, rng, epsilon)
