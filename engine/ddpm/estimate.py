"""How long a DDPM run will take on this device, before it starts: the page's "Time to train"."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from engine.core.jobs import SilentReporter
from engine.ddpm.data import toy_shapes
from engine.ddpm.train import DDPMConfig, steps_per_epoch, train


def images_per_second(config: DDPMConfig, steps: int = 4) -> float:
    """Training images per second for `config`'s network and batch on this device, as the engine's loop reports it:
    a few steps of the real loop on stand-in shapes (the speed does not depend on what the digits look like)."""
    batch = min(config.batch_size, 512)
    probe = replace(config, epochs=1, train_images=0, batch_size=batch, log_interval=1, val_images=1, sample_count=0, warmup_steps=0)
    report = SilentReporter(stop_after=steps)
    train(probe, toy_shapes(max(batch * (steps + 1), 20)), report)
    speeds = [row["images_per_s"] for row in report.metrics if "images_per_s" in row][1:]  # the first step warms up
    return float(np.median(speeds)) if speeds else float("nan")


def training_seconds(config: DDPMConfig, images: int, images_per_s: float) -> float:
    """The steps of a run at the measured speed, plus each epoch's evaluation and grid, counted roughly as 3% more."""
    steps = config.epochs * steps_per_epoch(config, images)
    return 1.03 * steps * min(config.batch_size, images) / images_per_s
