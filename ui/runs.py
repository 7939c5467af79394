"""Figures and tables for GPT runs: loss curves while training, the learning-rate schedule,
several runs' validation curves overlaid, the runs table, and generated text as Markdown."""

from __future__ import annotations

import re
import time
from typing import Iterable, Iterator

import plotly.graph_objects as go

from engine.gpt.runs import RunInfo, config_changes
from engine.core.lr import get_lr
from engine.gpt.train import GPTTrainConfig
from ui.figures import COLORS

LOSS_AXIS = "loss (nats per character)"
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<$&:=])")


def _layout(figure: go.Figure, title: str, y_title: str, height: int) -> go.Figure:
    figure.update_layout(
        title=title, xaxis_title="iteration", yaxis_title=y_title, height=height, colorway=COLORS,
        margin=dict(l=10, r=10, t=50, b=40), legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0),
    )
    return figure


def _series(rows: list[dict], key: str) -> tuple[list, list]:
    """The rows that have `key`: metric rows mix per-log values (loss, lr) and per-evaluation ones (val_loss)."""
    kept = [row for row in rows if row.get(key) is not None]
    return [row["step"] for row in kept], [row[key] for row in kept]


def _reference(figure: go.Figure, reference: tuple[str, int, float] | None) -> None:
    if reference is not None:
        label, step, loss = reference
        figure.add_hline(y=loss, line_dash="dash", line_color="gray", annotation_text=f"{label}: {loss} at {step:,}", annotation_position="top right")
        figure.add_trace(go.Scatter(x=[step], y=[loss], mode="markers", marker=dict(color="gray", size=9, symbol="x"), name=label))


def training_curves(rows: list[dict], title: str, reference: tuple[str, int, float] | None = None, height: int = 380) -> go.Figure:
    """The batch loss at each log, and the train and val losses at each evaluation."""
    figure = go.Figure()
    steps, values = _series(rows, "loss")
    figure.add_trace(go.Scatter(x=steps, y=values, mode="lines", name="batch loss (one batch)", line=dict(width=1, color="#9db4d6")))
    for key, label, color in (("train_loss", "train loss (evaluation)", COLORS[0]), ("val_loss", "val loss (evaluation)", COLORS[1])):
        steps, values = _series(rows, key)
        figure.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers", name=label, line=dict(color=color)))
    _reference(figure, reference)
    return _layout(figure, title, LOSS_AXIS, height)


def lr_schedule(config: GPTTrainConfig, now: int | None = None, height: int = 260) -> go.Figure:
    """get_lr over the whole run, with a marker at iteration `now`."""
    schedule = config.lr_schedule()
    count = min(config.max_iters, 400)
    steps = sorted({round(i * config.max_iters / count) for i in range(count + 1)} | {min(config.warmup_iters, config.max_iters)})
    figure = go.Figure(go.Scatter(x=steps, y=[get_lr(it, schedule) for it in steps], mode="lines", name="learning rate", line=dict(color=COLORS[2])))
    if now is not None:
        figure.add_trace(go.Scatter(x=[now], y=[get_lr(now, schedule)], mode="markers", marker=dict(size=10, color=COLORS[3]), name="now"))
    figure.update_yaxes(exponentformat="e")
    figure = _layout(figure, "Learning rate: warmup, cosine decay", "learning rate", height)
    figure.update_layout(showlegend=now is not None)
    return figure


def val_curves(runs: list[RunInfo], reference: tuple[str, int, float] | None = None, height: int = 420) -> go.Figure:
    """Each run's validation loss at its evaluations; a run without a recorded history shows its best point."""
    figure, last = go.Figure(), 0
    for run in runs:
        steps, values = _series(run.history, "val_loss")
        if not steps and run.best_val_loss is not None and run.best_iter is not None:
            steps, values = [run.best_iter], [run.best_val_loss]
        if steps:
            figure.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers", name=run.name))
            last = max(last, max(steps))
    _reference(figure, reference)
    if reference is not None and 0 < last < reference[1]:  # short runs fill the width; the dashed line still gives the reference
        figure.update_xaxes(range=[0, last * 1.05])
    return _layout(figure, "Validation loss of each run", LOSS_AXIS, height)


def changes_text(config: GPTTrainConfig | None) -> str:
    if config is None:
        return "unknown"
    return ", ".join(f"{name}={new}" for name, (_, new) in config_changes(config).items()) or "none: the CPU preset"


def runs_table(runs: list[RunInfo]) -> list[dict]:
    """One row per run, every number with its unit in the column name."""
    return [
        {
            "run": run.name,
            "best val loss (nats/char)": None if run.best_val_loss is None else round(run.best_val_loss, 4),
            "at iteration": run.best_iter,
            "iterations": run.iterations,
            "time (s)": None if run.seconds is None else round(run.seconds, 1),
            "parameters (M)": None if run.params is None else round(run.params.non_embedding / 1e6, 2),
            "data": run.data_name,
            "state": run.state,
            "settings changed from the CPU preset": changes_text(run.config),
        }
        for run in runs
    ]


def as_markdown(text: str) -> str:
    """Generated text shown as itself in Markdown: special characters escaped, every newline a line break."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("\n", "  \n")


def markdown_stream(characters: Iterable[str], prompt: str, record: dict, every: float = 0.03) -> Iterator[str]:
    """Markdown chunks for st.write_stream, one about every `every` seconds. `record` holds, as it goes, the
    plain text ("text", prompt included), the characters written ("characters") and the seconds they took
    ("seconds"), so a stream cut short by a rerun leaves what it had written."""
    record.update(text=prompt, characters=0, seconds=0.0)
    started, chunk, flushed = time.perf_counter(), as_markdown(prompt), 0.0
    for character in characters:
        record["text"] += character
        record["characters"] += 1
        chunk += as_markdown(character)
        if time.perf_counter() - flushed > every:
            record["seconds"] = time.perf_counter() - started
            yield chunk
            chunk, flushed = "", time.perf_counter()
    record["seconds"] = time.perf_counter() - started
    yield chunk


def megabytes(count: int) -> str:
    return f"{count / 2**20:,.0f} MB" if count >= 2**20 else f"{count / 2**20:.1f} MB"

