"""How good and how varied a diffusion model's digits are, measured by the shipped MNIST classifier.

Two figures per way of sampling, because one can hide a failure:

- recognised: the share of samples the classifier reads with confidence above 0.9 (and, when a digit was
  asked for, the share read as that digit). Guidance raises it.
- distance from real digits: the Fréchet distance (FID's formula) between the samples' and MNIST's test
  digits' features in the classifier's last hidden layer. A model that draws one perfect 1 over and over is
  recognised every time and far from real digits here. Guidance raises it too: that is its cost.

The same figure for as many real training digits as samples is the yardstick: a finite sample is never at
distance 0, so "close to real" reads as a ratio to it. `sweep` measures a list of guidance values; the page,
the CLI (`python -m engine.ddpm sweep`) and bench/ddpm_quality.py all call it.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from engine.ddpm.classifier import DigitClassifier, Score, score_samples
from engine.ddpm.data import CLASSES, DigitData
from engine.ddpm.sample import CHUNK, MAX_GUIDANCE, SampleSettings, generate
from engine.ddpm.schedule import NoiseSchedule
from engine.ddpm.unet import UNet

UNCONDITIONAL = None  # a sweep's "guidance" for drawing with the null label: the paper's unconditional DDPM
FEATURE_BATCH = 500
CLOSE_TO_REAL = 2.0  # a distance up to twice real digits' own (at the same n) reads as "close to real"


@torch.no_grad()
def features(classifier: DigitClassifier, images: np.ndarray | torch.Tensor) -> np.ndarray:
    """(n, 128) float64 features of images (n, 28, 28): floats in [0, 1], or MNIST's uint8."""
    images = torch.as_tensor(images)
    images = images.float().div(255.0) if images.dtype == torch.uint8 else images.float()
    device = next(classifier.parameters()).device
    classifier.eval()
    parts = [classifier.features(images[i : i + FEATURE_BATCH].unsqueeze(1).to(device)).cpu() for i in range(0, len(images), FEATURE_BATCH)]
    return torch.cat(parts).double().numpy() if parts else np.zeros((0, 128))


@dataclass(frozen=True)
class FeatureStats:
    mean: np.ndarray
    covariance: np.ndarray

    @classmethod
    def of(cls, feats: np.ndarray) -> "FeatureStats":
        return cls(feats.mean(axis=0), np.cov(feats, rowvar=False))


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """|mu_a - mu_b|^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)), the trace of the root from a symmetric product's eigenvalues."""
    values, vectors = np.linalg.eigh(a.covariance)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = np.linalg.eigvalsh(root_a @ b.covariance @ root_a)
    cross = np.sqrt(np.clip(middle, 0, None)).sum()
    return float(((a.mean - b.mean) ** 2).sum() + np.trace(a.covariance) + np.trace(b.covariance) - 2 * cross)


@dataclass(frozen=True)
class Reference:
    """MNIST's test digits' feature statistics, and the distance of `n` real training digits from them."""

    test: FeatureStats
    real_distance: float
    real_recognised: float
    n: int


def reference(classifier: DigitClassifier, data: DigitData, n: int, seed: int = 0) -> Reference:
    test = FeatureStats.of(features(classifier, data.test_images))
    pick = torch.randperm(len(data.train_images), generator=torch.Generator().manual_seed(seed))[:n]
    real = data.train_images[pick]
    score = score_samples(classifier, real.float().div(255.0).numpy())
    return Reference(test, frechet_distance(FeatureStats.of(features(classifier, real)), test), score.recognised_share, len(real))


@dataclass(frozen=True)
class QualityRow:
    """One way of sampling, measured."""

    guidance: float | None  # None: unconditional (null label)
    n: int
    recognised: float  # share read with confidence > 0.9
    as_asked: float | None  # share read as the digit asked for; None when none was
    rarest_digit: float  # the least common digit's share of all samples (0.1 when all ten are equally common)
    distance: float  # Fréchet distance from MNIST's test digits in the classifier's features
    distance_ratio: float  # distance / real digits' distance at the same n: 1 is as varied as real digits
    seconds: float

    @property
    def label(self) -> str:
        return "unconditional" if self.guidance is None else f"guidance {self.guidance:g}"

    def as_dict(self) -> dict:
        return asdict(self)


def measure(
    model: UNet,
    schedule: NoiseSchedule,
    classifier: DigitClassifier,
    ref: Reference,
    guidance: float | None,
    n: int,
    steps: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> QualityRow | None:
    """Draw n digits (0-9 in turn, or with the null label) and measure them; None when stopped."""
    started = time.perf_counter()
    unconditional = guidance is UNCONDITIONAL or not model.config.conditional
    settings = SampleSettings(n=n, steps=steps, unconditional=unconditional and model.config.conditional,
                              guidance=None if unconditional else guidance, seed=seed)
    images, labels = generate(model, schedule, settings, progress=progress, should_stop=should_stop)
    if images is None:
        return None
    score = score_samples(classifier, images, None if unconditional else labels)
    counts = np.bincount(score.predictions, minlength=CLASSES)
    distance = frechet_distance(FeatureStats.of(features(classifier, images)), ref.test)
    return QualityRow(
        guidance=None if unconditional else float(settings.resolved(model.config, schedule.timesteps).guidance),
        n=n,
        recognised=score.recognised_share,
        as_asked=score.matching_share,
        rarest_digit=float(counts.min() / max(n, 1)),
        distance=distance,
        distance_ratio=distance / ref.real_distance if ref.real_distance > 0 else math.inf,
        seconds=round(time.perf_counter() - started, 2),
    )


def sweep(
    model: UNet,
    schedule: NoiseSchedule,
    classifier: DigitClassifier,
    ref: Reference,
    guidances: Sequence[float | None],
    n: int,
    steps: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[QualityRow]:
    """`measure` for each guidance value in turn, the same seed for each; progress counts sampling steps over the whole sweep.

    A stop returns the rows finished so far."""
    rows: list[QualityRow] = []
    per_row = SampleSettings(n=n, steps=steps).resolved(model.config, schedule.timesteps).steps * math.ceil(n / CHUNK)
    for done, guidance in enumerate(guidances):
        def step(k: int, _total: int, done=done) -> None:
            if progress:
                progress(done * per_row + k, per_row * len(guidances))

        row = measure(model, schedule, classifier, ref, guidance, n, steps, seed, step, should_stop)
        if row is None:
            break
        rows.append(row)
    return rows


def score_fresh(
    model: UNet,
    schedule: NoiseSchedule,
    classifier: DigitClassifier,
    settings: SampleSettings,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Score, float]:
    """Draw `settings.n` new digits and score them: (the score, seconds to draw and score them)."""
    started = time.perf_counter()
    images, labels = generate(model, schedule, settings, progress=progress)
    return score_samples(classifier, images, labels), time.perf_counter() - started


def parse_guidances(text: str) -> list[float | None]:
    """'unconditional,1,1.5,3' -> [None, 1.0, 1.5, 3.0]; ValueError says which part is not a guidance."""
    values: list[float | None] = []
    for part in (piece.strip() for piece in text.split(",")):
        if part.lower() in ("unconditional", "u", "none"):
            values.append(UNCONDITIONAL)
            continue
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"expected 'unconditional' or a number, got {part!r}") from None
        if not 0 <= value <= MAX_GUIDANCE:
            raise ValueError(f"guidance must be between 0 and {MAX_GUIDANCE:g}, got {part}")
        values.append(value)
    return values


def sweep_record(rows: Sequence[QualityRow], ref: Reference, command: str, steps: int, seed: int) -> dict:
    """What a checkpoint's card keeps of a sweep, so the page shows it without drawing a digit."""
    return {
        "command": command,
        "sampler": f"ddim, {steps} steps",
        "seed": seed,
        "real_digits": {"n": ref.n, "recognised": ref.real_recognised, "distance": ref.real_distance},
        "rows": [row.as_dict() for row in rows],
    }


def read_sweep(card: dict) -> tuple[list[QualityRow], dict] | None:
    """A card's recorded sweep as rows and its other fields; None when it has none or it is not in this shape."""
    record = card.get("guidance_sweep") if isinstance(card, dict) else None
    if not isinstance(record, dict) or not isinstance(record.get("rows"), list):
        return None
    rows = []
    for item in record["rows"]:
        try:
            rows.append(QualityRow(**item))
        except TypeError:
            return None
    if not all(_plausible(row) for row in rows):
        return None
    return rows, {key: value for key, value in record.items() if key != "rows"}


def _plausible(row: QualityRow) -> bool:
    numbers = (row.n, row.recognised, row.rarest_digit, row.distance, row.distance_ratio, row.seconds)
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in numbers):
        return False
    shares = [row.recognised, row.rarest_digit] + ([row.as_asked] if row.as_asked is not None else [])
    guidance_ok = row.guidance is None or (isinstance(row.guidance, (int, float)) and 0 <= row.guidance <= MAX_GUIDANCE)
    return guidance_ok and all(isinstance(x, (int, float)) and 0 <= x <= 1 for x in shares) and row.n > 0


def suggested_guidance(rows: Sequence[QualityRow], recognised: float = 0.95) -> float | None:
    """The guidance a page should start at: of the values whose digits stay close to real, the lowest at which at least
    `recognised` of the digits are read, and read as the digit asked for (or, when none is, the most recognised);
    None when no guided value stays close to real."""
    close = [row for row in rows if row.guidance is not None and row.distance_ratio <= CLOSE_TO_REAL]
    if not close:
        return None
    good = [row for row in close if row.recognised >= recognised and (row.as_asked is None or row.as_asked >= recognised)]
    return min(good, key=lambda row: row.guidance).guidance if good else max(close, key=lambda row: row.recognised).guidance
