"""How long a DDPM run will take on this device, before it starts: the page's "Time to train".

Two sources, the better first: a finished run of the same shape on this server (its own time, evaluations
and saves included, so it holds for a loaded machine as it was loaded then), else a few steps of the real
loop timed just now, plus a rough share for each epoch's evaluation. Once a run starts, the job panel's
ETA is measured on the run itself.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from engine.core.jobs import SilentReporter
from engine.ddpm.data import toy_shapes
from engine.ddpm.train import DDPMTrainConfig, steps_per_epoch, train


def images_per_second(config: DDPMTrainConfig, steps: int = 4) -> float:
    """Training images per second for `config`'s network and batch on this device, as the engine's loop reports it:
    a few steps of the real loop on stand-in shapes (the speed does not depend on what the digits look like)."""
    batch = min(config.batch_size, 512)
    probe = replace(config, epochs=1, train_images=0, batch_size=batch, log_interval=1, val_images=1, sample_count=0, warmup_iters=0)
    report = SilentReporter(stop_after=steps)
    train(probe, toy_shapes(max(batch * (steps + 1), 20)), report)
    speeds = [row["images_per_s"] for row in report.metrics if "images_per_s" in row][1:]  # the first step warms up
    return float(np.median(speeds)) if speeds else float("nan")


# settings that set how fast a training step goes: configs alike in these share one probe
STEP_SHAPE = ("width", "channel_mults", "depth", "attention", "heads", "groups", "conditional", "timesteps", "batch_size", "device")


def step_shape(config: DDPMTrainConfig) -> tuple:
    return tuple(getattr(config, name) for name in STEP_SHAPE)


def training_seconds(config: DDPMTrainConfig, images: int, images_per_s: float) -> float:
    """The steps of a run at the measured speed, plus each epoch's evaluation and grid, counted roughly as 3% more."""
    steps = config.epochs * steps_per_epoch(config, images)
    return 1.03 * steps * min(config.batch_size, images) / images_per_s


# settings that set how long a step and an epoch's evaluation take; a run with the same ones paces the next
SHAPE = ("width", "channel_mults", "depth", "attention", "heads", "groups", "conditional", "timesteps", "batch_size", "train_images",
         "val_images", "sample_count", "sample_steps")


def recorded_speed(config: DDPMTrainConfig, runs: Sequence) -> tuple[float, str] | None:
    """(images per second over a whole run, that run's name) for the newest run of the same shape that took steps."""
    for run in runs:
        if run.config is None or not run.steps or not run.seconds or run.seconds <= 0:
            continue
        if all(getattr(run.config, name) == getattr(config, name) for name in SHAPE):
            return run.steps * run.config.batch_size / run.seconds, run.name
    return None


def estimated_seconds(config: DDPMTrainConfig, images: int, probed_images_per_s: float, runs: Sequence = ()) -> tuple[float, str]:
    """(seconds, where the figure comes from): a recorded run's pace when there is one, else the probe's."""
    recorded = recorded_speed(config, runs)
    steps = config.epochs * steps_per_epoch(config, images)
    if recorded is not None:
        speed, name = recorded
        return steps * min(config.batch_size, images) / speed, f"at the pace of your run {name} ({speed:,.0f} images/s, evaluations included)"
    return training_seconds(config, images, probed_images_per_s), f"from {probed_images_per_s:,.0f} images/s timed just now, plus each epoch's evaluation"


MNIST_TRAIN_IMAGES = 60_000


def training_digits(config: DDPMTrainConfig) -> int:
    """How many of MNIST's training digits a run of `config` trains on (train_images 0 means all of them)."""
    return min(config.train_images or MNIST_TRAIN_IMAGES, MNIST_TRAIN_IMAGES)
