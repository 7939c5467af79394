"""The learning-rate schedule every trainer uses: linear warmup, then cosine decay to a floor (nanoGPT's get_lr).

A trainer's config says what its schedule is (`config.lr_schedule(...)`); the loop and the page's drawing of the
schedule both ask `get_lr(it, schedule)`, so what is drawn is what is run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LRSchedule:
    learning_rate: float  # the peak, reached at the end of the warmup
    min_lr: float  # the floor the cosine ends on, and stays at after decay_iters
    warmup_iters: int
    decay_iters: int  # the iteration where the cosine reaches min_lr
    decay: bool = True  # False: learning_rate throughout, no warmup either (nanoGPT's decay_lr)


def get_lr(it: int, schedule: LRSchedule) -> float:
    """The learning rate at iteration `it` (counted from 0)."""
    if not schedule.decay:
        return schedule.learning_rate
    if it < schedule.warmup_iters:
        return schedule.learning_rate * (it + 1) / (schedule.warmup_iters + 1)
    if it >= schedule.decay_iters:
        return schedule.min_lr
    decay_ratio = (it - schedule.warmup_iters) / max(schedule.decay_iters - schedule.warmup_iters, 1)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))  # from 1 down to 0
    return schedule.min_lr + coeff * (schedule.learning_rate - schedule.min_lr)
