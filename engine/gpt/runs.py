"""A person's GPT runs: one folder each under DLLAB_RUNS_DIR/gpt, kept so they can be resumed and compared.

A run folder holds

    model.safetensors, model.json   the best checkpoint so far (train.py writes it; checkpoint.py reads it)
    run.json                        what the run is: its settings, its data, its state, where it ended
    history.jsonl                   every metric row as it arrived, one JSON object per line
    text.txt                        the text it trained on, when that is not tiny Shakespeare (so it can resume)

A folder the CLI made has only the checkpoint; it is listed too, with what its card says.
`export_checkpoint` writes a run's best weights without AdamW's moments: a third of the size, for
sampling only (the shipped checkpoint is made this way).
"""

from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from engine.core import runs as core_runs
from engine.core.checkpoints import card_path, load_checkpoint, read_card, resumed_command, save_checkpoint, weights_path, write_atomically
from engine.core.device import pick_device
from engine.core.errors import CheckpointError, ConfigError, DataError, LabError
from engine.core.jobs import Reporter
from engine.core.runs import HISTORY_FILE, RUN_FILE, RunList, RunRecorder, mapping, number, read_history, read_json, text as text_or, whole, write_json
from engine.gpt import checkpoint as gpt_checkpoint
from engine.gpt.checkpoint import KIND, checkpoint_in, find_checkpoint
from engine.gpt.data import CharData, load_shakespeare, prepare_text, read_text_file
from engine.gpt.estimate import ParamCount, StepTime
from engine.gpt.train import CPU, GPTResult, GPTTrainConfig, train

SHAKESPEARE = "tiny Shakespeare"  # the data name train.py's card records for it
TEXT_FILE = "text.txt"
NOT_COMPARED = ("device", "compile")  # settings that change where a run goes, not what it learns
SHAPE = ("n_layer", "n_head", "n_embd", "block_size", "bias", "batch_size", "gradient_accumulation_steps")  # what an iteration's time depends on


def gpt_runs_dir() -> Path:
    return core_runs.lab_runs_dir("gpt")


def new_run_folder(label: str, owner: str = "") -> Path:
    """An empty folder runs/gpt/<date-time>-<label>, made now, owned by the visitor `owner`."""
    return core_runs.new_run_folder("gpt", label, owner)


def train_run(
    config: GPTTrainConfig, data: CharData, report: Reporter, folder: Path, text: str | None = None, resume: bool = False, command: str = ""
) -> GPTResult:
    """train() into a run folder, recording its history and state; `resume` continues the folder's checkpoint.

    `text` is the training text; it is kept in the folder unless it is tiny Shakespeare, so the run can resume.
    """
    folder = Path(folder)
    info = read_json(folder / RUN_FILE)
    command = command or info.get("command", "")
    if resume:
        began = read_run(folder)
        before = began.config if began is not None else None
        command = resumed_command(command, resume_command(folder, config, before) if before is not None else f"python -m engine.gpt train --resume {folder}")
        start = resume_point(folder)
        if config.max_iters <= start:
            raise ConfigError(f"max_iters ({config.max_iters}) must be beyond the checkpoint's iteration ({start}) to continue the run.")
        history = [row for row in read_history(folder) if row["step"] < start]  # what came after the checkpoint is redone
        write_atomically(folder / HISTORY_FILE, "".join(json.dumps(row) + "\n" for row in history).encode())
    else:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / HISTORY_FILE).unlink(missing_ok=True)
        if text is not None and data.name != SHAKESPEARE:
            write_atomically(folder / TEXT_FILE, text.encode("utf-8"))
        info = {**info, "data": {"name": data.name, "characters": data.characters, "fingerprint": data.fingerprint}}  # keeps created and owner
    device = pick_device(None if config.device == "auto" else config.device).type
    info.update(config=asdict(config), device=device, state="running", error=None, command=command, pid=os.getpid())
    write_json(folder / RUN_FILE, info)
    recorder = RunRecorder(report, folder)
    try:
        result = train(config, data, recorder, out=folder, resume=folder if resume else None, command=command)
    except BaseException as error:
        message = str(error) if isinstance(error, LabError) else f"{type(error).__name__}: {error}"
        write_json(folder / RUN_FILE, {**info, "state": "failed", "error": message})
        raise
    write_json(
        folder / RUN_FILE,
        {
            **info,
            "state": "stopped" if result.stopped else "done",
            "iterations": result.iterations,
            "best_val_loss": result.best_val_loss if math.isfinite(result.best_val_loss) else None,
            "best_iter": result.best_iter,
            "seconds": round(result.seconds, 2),
            "sample": recorder.sample,
        },
    )
    return result


def resume_point(folder: Path) -> int:
    """The iteration a run's checkpoint holds, which a resumed run continues from."""
    checkpoint = checkpoint_in(folder)
    if not weights_path(checkpoint).exists():
        raise CheckpointError(f"{Path(folder).name} has no checkpoint yet (one is written at the first evaluation that improves on the start), so there is nothing to resume.")
    try:
        return int(read_card(checkpoint)["metrics"]["iter"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"The card {card_path(checkpoint)} has no usable training metrics ({error}).") from None


@dataclass(frozen=True)
class RunInfo:
    """One run folder, as its files describe it."""

    name: str
    folder: Path
    config: GPTTrainConfig | None
    data_name: str
    state: str  # running, done, stopped, failed; "saved" for a folder that has only a checkpoint (the CLI's)
    best_val_loss: float | None  # nats per character
    best_iter: int | None
    iterations: int | None  # the iteration it ended at
    seconds: float | None
    params: ParamCount | None
    has_checkpoint: bool  # a model that can be sampled
    resumable: bool  # ... that also has AdamW's state
    history: list[dict[str, float]] = field(default_factory=list, repr=False)
    error: str | None = None
    device: str | None = None
    command: str = ""

    @property
    def checkpoint(self) -> Path:
        return checkpoint_in(self.folder)


def read_run(folder: Path) -> RunInfo | None:
    """A run folder -> RunInfo, or None when the folder holds neither run.json nor a checkpoint card.

    Every value is taken only if it has the type it should: a hand-edited or torn file gives a run with
    less to show, never an exception in a page.
    """
    folder = Path(folder)
    info = read_json(folder / RUN_FILE)
    card: dict = {}
    error = text_or(info.get("error")) or None
    if card_path(checkpoint_in(folder)).exists():
        try:
            card = read_card(checkpoint_in(folder))
        except CheckpointError as problem:
            error = str(problem)
    if not info.keys() - {"created", "owner"} and not card:
        return None
    metrics, params = mapping(card.get("metrics")), mapping(card.get("params"))
    try:
        config = GPTTrainConfig.from_dict(mapping(info.get("config")) or mapping(card.get("config"))).validate()
    except (TypeError, ValueError, LabError):
        config = None
    has_checkpoint = bool(card) and error is None and weights_path(checkpoint_in(folder)).exists()
    pick = lambda key, fallback, kind=number: kind(info.get(key)) if kind(info.get(key)) is not None else kind(metrics.get(fallback))  # noqa: E731
    totals = (whole(params.get("non_embedding")), whole(params.get("total")))
    return RunInfo(
        name=folder.name,
        folder=folder,
        config=config,
        data_name=text_or(mapping(info.get("data") or card.get("data")).get("name"), "unknown text"),
        state=run_state(info),
        best_val_loss=pick("best_val_loss", "best_val_loss"),
        best_iter=pick("best_iter", "iter", whole),
        iterations=pick("iterations", "iter", whole),
        seconds=pick("seconds", "seconds"),
        params=ParamCount(*totals) if None not in totals else None,
        has_checkpoint=has_checkpoint,
        resumable=has_checkpoint and whole(card.get("optimizer_step")) is not None,
        history=read_history(folder),
        error=error,
        device=text_or(info.get("device")) or None,
        command=text_or(info.get("command")) or text_or(card.get("command")),
    )


def run_state(info: dict) -> str:
    """run.json's state; a run whose process has gone without finishing it was interrupted."""
    state = text_or(info.get("state"), "saved")
    if state == "running" and not process_alive(info.get("pid")):
        return "interrupted"
    return state


def process_alive(pid) -> bool:
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_runs(folder: Path | None = None, visitor: str | None = None) -> RunList:
    """Every run under runs/gpt (or `folder`) that `visitor` may see, newest first; unreadable folders are
    skipped with a note in the list's `skipped`."""
    return core_runs.list_runs_of(Path(folder) if folder is not None else gpt_runs_dir(), read_run, visitor)


def run_text(run: RunInfo) -> CharData:
    """The data a run trained on, to resume it: tiny Shakespeare (resolved, maybe downloaded) or its kept text."""
    if run.data_name == SHAKESPEARE:
        return prepare_text(load_shakespeare(), SHAKESPEARE)
    kept = run.folder / TEXT_FILE
    if not kept.exists():
        raise DataError(
            f"{run.name} trained on {run.data_name}, which is not kept in its folder, so it cannot be resumed here. "
            f"Resume it from a shell: python -m engine.gpt train --resume {run.folder} --text-file <the text>."
        )
    return prepare_text(read_text_file(kept), run.data_name)


def cli_command(config: GPTTrainConfig, folder: Path, text_file: Path | None = None) -> str:
    """The shell command that trains the same run with the CLI."""
    parts = ["python -m engine.gpt train --preset cpu", *flag_words(config_changes(config))]
    if text_file is not None:
        parts.append(f"--text-file {text_file}")
    parts.append(f"--out {folder}")
    return " ".join(parts)


def resume_command(folder: Path, config: GPTTrainConfig, before: GPTTrainConfig) -> str:
    """The shell command that resumes the run in `folder`, begun with `before`, to go on with `config`."""
    return " ".join(["python -m engine.gpt train --resume", str(folder), *flag_words(config_changes(config, before))])


def flag_words(changes: dict[str, tuple[Any, Any]]) -> list[str]:
    """The CLI's flags for settings changed to new values: `--max-iters 3000`, `--no-bias`."""
    words = []
    for name, (_, value) in changes.items():
        flag = "--" + name.replace("_", "-")
        words.append((flag if value else "--no-" + flag[2:]) if isinstance(value, bool) else f"{flag} {value}")
    return words


def config_changes(config: GPTTrainConfig, base: GPTTrainConfig = CPU) -> dict[str, tuple[Any, Any]]:
    """Settings where `config` differs from `base` (nanoGPT's CPU recipe): name -> (base's value, config's value)."""
    return {
        f.name: (getattr(base, f.name), getattr(config, f.name))
        for f in fields(GPTTrainConfig)
        if f.name not in NOT_COMPARED and getattr(base, f.name) != getattr(config, f.name)
    }


def measured_ms_per_iter(config: GPTTrainConfig, device: str, runs: list[RunInfo]) -> tuple[float, str] | None:
    """The median time per iteration recorded by runs of the same shape on the same kind of device: (ms, run name)."""
    for run in runs:
        if run.config is None or run.device != device or any(getattr(run.config, k) != getattr(config, k) for k in SHAPE):
            continue
        times = [row["ms_per_iter"] for row in run.history if "ms_per_iter" in row and row["step"] > 0]  # the first step warms up
        if times:
            return statistics.median(times), run.name
    return None


def export_checkpoint(source: str | Path, out: str | Path) -> Path:
    """Write `source`'s model weights and card without AdamW's moments; returns the new weights file.

    `out` is a folder (the checkpoint goes to <out>/model) or a path without suffix, like checkpoints/gpt_shakespeare.
    """
    source = find_checkpoint(source)
    arrays, card = load_checkpoint(source, KIND)
    tensors = {name: array for name, array in arrays.items() if name.startswith("model.")}
    kept = {key: value for key, value in card.items() if key not in ("format_version", "kind", "tensors", "weights_sha256")}
    target = find_checkpoint(out)
    return save_checkpoint(target, KIND, tensors, {**kept, "optimizer_step": None, "exported_from": str(weights_path(source))})


def shipped_available() -> bool:
    shipped = gpt_checkpoint.SHIPPED_CHECKPOINT  # looked up now, so that a test can point it elsewhere
    return weights_path(shipped).exists() and card_path(shipped).exists()


def resume_config(run: RunInfo, max_iters: int) -> GPTTrainConfig:
    """The run's own settings with a new end; a run resumes with the model it started with."""
    if run.config is None:
        raise CheckpointError(f"{run.name} has no usable training settings, so it cannot be resumed.")
    return replace(run.config, max_iters=max_iters).validate()


def iteration_ms(config: GPTTrainConfig, vocab_size: int, device: str, runs: list[RunInfo], fitted: StepTime, timed: float | None = None) -> tuple[float, str]:
    """The best time per iteration at hand for `config` on `device`, and where it comes from, in words.

    In order: timed just now for these settings; recorded by a run of the same shape on this kind of device;
    estimated from FLOPs through `fitted` (two presets timed on this device).
    """
    where = device.upper()
    if timed is not None:
        return timed, f"measured just now for these settings on this {where}"
    recorded = measured_ms_per_iter(config, device, runs)
    if recorded is not None:
        return recorded[0], f"measured: the median of run {recorded[1]}, which has this shape, on this {where}"
    return fitted.ms_per_iter(config, vocab_size), f"estimated from FLOPs per iteration and two presets timed on this {where}"
