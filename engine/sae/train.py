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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from engine.core.checkpoints import (
    SHIPPED_DIR, card_metric, card_path, checkpoint_bytes, describe, load_checkpoint, save_checkpoint, settings_from_card, weights_path,
)
from engine.core.config import Config, Range, check_fields, check_value, seed_spec, spec
from engine.core.device import seed_everything
from engine.core.errors import CheckpointError, ConfigError
from engine.core.jobs import Reporter
from engine.sae.images import SOURCES, load_source
from engine.sae.model import (
    CostTerms,
    FastCost,
    GradientCheck,
    check_gradient,
    hidden_activations,
    initialize_parameters,
    parameter_count,
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
SHIPPED_CHECKPOINT = SHIPPED_DIR / "sae_ufldl"  # UFLDL's defaults on Olshausen's images, made by the command in its card
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


UFLDL = SAETrainConfig()  # the exercise's settings; reaches cost ~0.46 on Olshausen's images


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
    cost = FastCost(patches, config.hidden_size, config.lam, config.beta, config.rho)
    evaluated: dict[str, object] = {}

    def fun(theta):
        value, grad = cost(theta)
        evaluated["theta"], evaluated["terms"] = theta.copy(), cost.last_terms
        return value, grad

    def terms_at(theta) -> CostTerms:
        if not np.array_equal(evaluated.get("theta"), theta):  # L-BFGS-B usually evaluates the accepted point last
            fun(theta)
        return evaluated["terms"]

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
        terms = terms_at(intermediate_result.x)
        if terms.total <= best["terms"].total:
            best["theta"], best["terms"] = intermediate_result.x.copy(), terms
        report_step(best["iterations"], intermediate_result.x, terms)
        if report.stop_requested:
            raise StopIteration

    # L-BFGS-B's own vector work calls BLAS; OpenBLAS's threads then spin beside torch's and
    # 400 iterations took 15 s instead of 1.1 s (measured); one BLAS thread is plenty for 3,289 numbers
    with cost, threadpool_limits(limits=1, user_api="blas"):
        initial = terms_at(theta)
        best["theta"], best["terms"] = theta, initial
        report_step(0, theta, initial)
        scipy.optimize.minimize(fun, theta, jac=True, method="L-BFGS-B", callback=callback, options={"maxiter": config.max_iters})
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


def result_card(result: SAEResult, command: str, data_fingerprint: str) -> tuple[dict, dict]:
    """The tensors and the card that describe a trained result."""
    W1, W2, b1, b2 = result.parameters()
    card = {
        "config": asdict(result.config),
        "metrics": {
            "cost_before": result.initial.total,
            "cost_after": result.final.total,
            "terms_before": asdict(result.initial),
            "terms_after": asdict(result.final),
            "iterations": result.iterations,
            "stopped": result.stopped,
            "seconds": round(result.seconds, 2),
            "parameters": parameter_count(result.config.visible_size, result.config.hidden_size),
        },
        "reference": {"ufldl_cost_untrained": UFLDL_COST_UNTRAINED, "ufldl_cost_trained": UFLDL_COST_TRAINED},
        "command": command,
        "data_fingerprint": data_fingerprint,
        "history": result.history,
    }
    tensors = {"W1": W1, "W2": W2, "b1": b1, "b2": b2, "mean_activation": result.mean_activation, "sample_patches": result.sample_patches}
    return tensors, card


def save_result(path: str | Path, result: SAEResult, command: str, data_fingerprint: str) -> Path:
    tensors, card = result_card(result, command, data_fingerprint)
    return save_checkpoint(path, "sae", tensors, card)


def result_bytes(result: SAEResult, command: str, data_fingerprint: str) -> tuple[bytes, bytes]:
    """(weights .safetensors, card .json) for a download."""
    tensors, card = result_card(result, command, data_fingerprint)
    return checkpoint_bytes("sae", tensors, card)


def check_result_fits(card: dict, shapes: dict[str, tuple[int, ...]], path: str | Path) -> None:
    """The arrays the card's config needs, against the file's header: checked before any array is read."""
    config = settings_from_card(card, "config", SAETrainConfig, card_path(path))
    hidden, visible = config.hidden_size, config.visible_size
    needed = {"W1": (hidden, visible), "W2": (visible, hidden), "b1": (hidden,), "b2": (visible,), "mean_activation": (hidden,)}
    for name, shape in needed.items():
        if name not in shapes:
            raise CheckpointError(f"{weights_path(path).name} has no {name}, which an autoencoder needs.")
        if tuple(shapes[name]) != shape:
            raise CheckpointError(
                f"{name} has shape {list(shapes[name])}, but the card's config (hidden_size {hidden}, patch_size "
                f"{config.patch_size}) needs {list(shape)}."
            )
    patches = shapes.get("sample_patches")
    if patches is None or len(patches) != 2 or patches[0] != visible:
        shown = list(patches) if patches is not None else "missing"
        raise CheckpointError(f"sample_patches is {shown}; the card's config needs [{visible}, k]: one {visible}-pixel patch per column.")


def cost_terms_from(card: dict, key: str, where: Path) -> CostTerms:
    terms = card["metrics"].get(key)
    names = [field.name for field in fields(CostTerms)]
    if not isinstance(terms, dict) or sorted(terms) != sorted(names) or not all(type(terms[n]) in (int, float) for n in names):
        raise CheckpointError(f"The card {where} has metrics.{key} {describe(terms)}; it should give {', '.join(names)} as numbers.")
    return CostTerms(**{name: float(terms[name]) for name in names})


def history_from(card: dict, where: Path) -> list[dict[str, float]]:
    history = card.get("history", [])
    rows_ok = isinstance(history, list) and all(
        isinstance(row, dict) and all(type(value) in (int, float) for value in row.values()) for row in history
    )
    if not rows_ok:
        raise CheckpointError(f"The card {where} has history {describe(history)}; it should be a list of rows of numbers.")
    return history


def load_result(path: str | Path) -> tuple[SAEResult, dict]:
    arrays, card = load_checkpoint(path, kind="sae", check=lambda card, shapes: check_result_fits(card, shapes, path))
    where = card_path(path)
    config = settings_from_card(card, "config", SAETrainConfig, where)
    W1, W2, b1, b2 = (arrays[name] for name in ("W1", "W2", "b1", "b2"))
    theta = np.concatenate([W1.ravel(order="F"), W2.ravel(order="F"), b1, b2]).astype(np.float64)
    iterations = card_metric(card, "iterations", int, where)  # first: it checks that metrics is an object
    result = SAEResult(
        config=config,
        theta=theta,
        initial=cost_terms_from(card, "terms_before", where),
        final=cost_terms_from(card, "terms_after", where),
        iterations=iterations,
        stopped=card_metric(card, "stopped", bool, where),
        seconds=card_metric(card, "seconds", float, where),
        mean_activation=arrays["mean_activation"].astype(np.float64),
        sample_patches=arrays["sample_patches"].astype(np.float64),
        history=history_from(card, where),
    )
    return result, card
