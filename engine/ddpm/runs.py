"""A person's DDPM runs: one folder each under DLLAB_RUNS_DIR/ddpm (engine.core.runs), holding `last` and `best`.

What differs from the core: a DDPM run's settings and progress are read from its `last` checkpoint's
card (train.py writes it at each epoch's end and when the run stops), and a run can be resumed when
that checkpoint kept Adam's moments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.core import runs as core_runs
from engine.core.checkpoints import card_path, read_card
from engine.core.errors import LabError
from engine.core.runs import RunList, mapping, number, text as text_or, whole
from engine.ddpm.checkpoint import last_in
from engine.ddpm.train import DDPMTrainConfig


@dataclass(frozen=True)
class DDPMRun:
    """One run folder, as its `last` card describes it."""

    name: str
    folder: Path
    config: DDPMTrainConfig | None
    epoch: float  # how far it got, in epochs
    steps: int | None
    resumable: bool  # its last checkpoint kept Adam's moments
    seconds: float | None = None  # training time so far, evaluations and saves included
    command: str = ""  # the commands that made it, as its card keeps them


def ddpm_runs_dir() -> Path:
    return core_runs.lab_runs_dir("ddpm")


def new_run_folder(label: str, owner: str = "") -> Path:
    return core_runs.new_run_folder("ddpm", label, owner)


def read_run(folder: Path) -> DDPMRun | None:
    """A run folder -> DDPMRun, or None while it has no `last` checkpoint yet."""
    folder = Path(folder)
    if not card_path(last_in(folder)).exists():
        return None
    card = read_card(last_in(folder))  # a CheckpointError here skips the folder with a note
    metrics = mapping(card.get("metrics"))
    try:
        config = DDPMTrainConfig.from_dict(mapping(card.get("config"))).validate()
    except (TypeError, ValueError, LabError):
        config = None
    return DDPMRun(
        name=folder.name,
        folder=folder,
        config=config,
        epoch=number(metrics.get("epoch")) or 0.0,
        steps=whole(metrics.get("step")),
        resumable=config is not None and whole(card.get("optimizer_step")) is not None,
        seconds=number(metrics.get("seconds")),
        command=text_or(card.get("command")),
    )


def list_runs(visitor: str | None = None, folder: Path | None = None) -> RunList:
    """The DDPM runs `visitor` may see, newest first; unreadable folders are noted in `skipped`."""
    return core_runs.list_runs_of(Path(folder) if folder is not None else ddpm_runs_dir(), read_run, visitor)
