"""Figures with titled axes: plotly loss curves and histograms, and a light SVG curve for live views."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import plotly.graph_objects as go

COLORS = ["#1f4e99", "#e07b00", "#2a9d5c", "#c0392b", "#7b4fa3", "#7f7f7f"]  # distinct in print and for colour-blind eyes
_SVG_TEXT = 'font-family="sans-serif" fill="#31333f"'


def _drawing_order(items: list) -> list[tuple[int, object, str, float]]:
    """(rank, item, colour, line width) for each item, the first (the headline, say a total of the others)
    last, so it is drawn on top, and thicker: a term that nearly equals it cannot hide it."""
    return [(rank, item, COLORS[rank % len(COLORS)], 3 if rank == 0 else 1.5) for rank, item in reversed(list(enumerate(items)))]


def loss_curve(
    rows: list[dict[str, float]],
    series: dict[str, str],
    title: str,
    y_title: str,
    x_title: str = "iteration",
    log_y: bool = False,
    references: dict[str, float] | None = None,
    height: int = 380,
) -> go.Figure:
    """One line per entry of `series` (label -> key in the rows), dashed horizontal `references`.

    The first series is the headline (the total of the others, say): it is drawn last and thicker, so a
    term that nearly equals it cannot hide it; the legend keeps the given order."""
    figure = go.Figure()
    steps = [row["step"] for row in rows]
    for rank, (label, key), color, width in _drawing_order(list(series.items())):
        figure.add_trace(go.Scatter(x=steps, y=[row.get(key) for row in rows], mode="lines", name=label, legendrank=rank + 1,
                                    line=dict(color=color, width=width)))
    for label, value in (references or {}).items():
        figure.add_hline(y=value, line_dash="dash", line_color="gray", annotation_text=label, annotation_position="top right")
    figure.update_layout(
        title=title,
        xaxis_title=x_title,
        yaxis_title=y_title,
        height=height,
        margin=dict(l=10, r=10, t=50, b=40),
        legend=dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0),
        colorway=COLORS,
    )
    if log_y:
        figure.update_yaxes(type="log", exponentformat="power")
    return figure


def histogram(values: np.ndarray, title: str, x_title: str, marker: float | None = None, marker_label: str = "", bins: int = 20) -> go.Figure:
    figure = go.Figure(go.Histogram(x=np.asarray(values), nbinsx=bins, name=x_title))
    if marker is not None:
        figure.add_vline(x=marker, line_dash="dash", line_color="crimson", annotation_text=marker_label)
    figure.update_layout(title=title, xaxis_title=x_title, yaxis_title="count", height=300, margin=dict(l=10, r=10, t=50, b=10), showlegend=False)
    return figure


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round numbers (1, 2 or 5 times a power of ten apart) that span [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _power_of_ten(exponent: int) -> str:
    """0.01 to 1000 written out, anything further as 10 with a superscript exponent."""
    if -2 <= exponent <= 3:
        return f"{10.0 ** exponent:g}"
    return "10" + str(exponent).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


@dataclass(frozen=True)
class _Frame:
    """Where an SVG picture's plotting area sits, and the data it spans: steps 0 to x_high across, y_low to
    y_high up (in decades on a log axis), with room around it for the title, tick labels and legend."""

    width: int
    height: int
    x_high: float
    y_low: float
    y_high: float
    left: ClassVar[int] = 62
    right: ClassVar[int] = 16
    top: ClassVar[int] = 34
    bottom: ClassVar[int] = 78

    @property
    def plot_w(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> int:
        return self.height - self.top - self.bottom

    def x(self, step: float) -> float:
        return self.left + self.plot_w * step / self.x_high

    def y(self, value: float) -> float:
        """`value` already on the axis's scale (log10 of the data on a log axis)."""
        return self.top + self.plot_h * (self.y_high - value) / (self.y_high - self.y_low)


def _y_range(values: list[float], log_y: bool) -> tuple[float, float, list[float]]:
    """(low, high, ticks) on the axis's scale: whole decades on a log axis, round numbers on a linear one."""
    scale = math.log10 if log_y else (lambda v: v)
    y_low, y_high = (scale(min(values)), scale(max(values))) if values else (0.0, 1.0)
    if log_y:
        y_low, y_high = math.floor(y_low), max(math.ceil(y_high), math.floor(y_low) + 1)
        every = math.ceil((y_high - y_low) / 6)  # at most about six labelled decades
        return y_low, y_high, [float(p) for p in range(int(y_low), int(y_high) + 1, every)]
    y_ticks = _nice_ticks(y_low, y_high) if y_high > y_low else [y_low]
    y_low, y_high = min(y_ticks + [y_low]), max(y_ticks + [y_high])
    return y_low, (y_low + 1 if y_high <= y_low else y_high), y_ticks


def _svg_axes(frame: _Frame, y_ticks: list[float], log_y: bool, title: str, x_title: str, y_title: str) -> list[str]:
    """The background, the title, both axes' grid lines, tick labels and titles, and the plotting area's border."""
    left, top, plot_w, plot_h = frame.left, frame.top, frame.plot_w, frame.plot_h
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{frame.width}" height="{frame.height}" viewBox="0 0 {frame.width} {frame.height}">',
        f'<rect width="{frame.width}" height="{frame.height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="15" {_SVG_TEXT}>{html.escape(title)}</text>',
    ]
    for tick in y_ticks:
        y = frame.y(tick)
        label = _power_of_ten(int(tick)) if log_y else f"{tick:g}"
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e9ef"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" {_SVG_TEXT}>{label}</text>')
    for tick in _nice_ticks(0, frame.x_high):
        x = frame.x(tick)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" stroke="#e6e9ef"/>')
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" font-size="11" text-anchor="middle" {_SVG_TEXT}>{tick:,g}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#9aa1ad"/>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 34}" font-size="12" text-anchor="middle" {_SVG_TEXT}>{html.escape(x_title)}</text>')
    parts.append(f'<text transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" font-size="12" text-anchor="middle" {_SVG_TEXT}>{html.escape(y_title)}</text>')
    return parts


def _svg_lines(frame: _Frame, lines: list[tuple[str, list]], scale) -> list[str]:
    """A polyline per series (a dot while it has one point), the headline drawn last and thicker (_drawing_order)."""
    parts = []
    for rank, (_, line), color, width in _drawing_order(lines):
        if len(line) > 1:
            path = " ".join(f"{frame.x(s):.1f},{frame.y(scale(v)):.1f}" for s, v in line)
            parts.append(f'<polyline data-series="{rank}" fill="none" stroke="{color}" stroke-width="{width:g}" points="{path}"/>')
        elif line:
            s, v = line[0]
            parts.append(f'<circle cx="{frame.x(s):.1f}" cy="{frame.y(scale(v)):.1f}" r="2.5" fill="{color}"/>')
    return parts


def _svg_legend(frame: _Frame, labels: list[str]) -> list[str]:
    """The series' names in one row under the x axis's title, each after a stroke of its colour."""
    parts, legend_x, legend_y = [], frame.left, frame.height - 14
    for label, color in zip(labels, COLORS):
        parts.append(f'<line x1="{legend_x}" x2="{legend_x + 22}" y1="{legend_y - 4}" y2="{legend_y - 4}" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<text x="{legend_x + 28}" y="{legend_y}" font-size="12" {_SVG_TEXT}>{html.escape(label)}</text>')
        legend_x += 40 + 7 * len(label)
    return parts


def live_curve_svg(rows: list[dict[str, float]], series: dict[str, str], title: str, y_title: str, x_title: str = "iteration",
                   log_y: bool = False, x_max: float | None = None, width: int = 600, height: int = 340) -> str:
    """The curves of `loss_curve` as one SVG picture, for a view redrawn every second while a job runs.

    A browser shows a picture without laying out or scripting anything, where a plotly chart is
    rebuilt at every update; on a machine whose cores the training needs that difference is the
    training's. `x_max` fixes the x axis (a job's planned steps), so the curves grow across it
    instead of the axis stretching under them. On a log axis, values that are not positive are left out.
    """

    def shown(value) -> bool:
        return value is not None and math.isfinite(value) and (value > 0 or not log_y)

    points = {label: [(row["step"], row[key]) for row in rows if shown(row.get(key))] for label, key in series.items()}
    lines = list(points.items())[: len(COLORS)]  # one colour each; a series past the palette's end is not drawn
    steps = [s for line in points.values() for s, _ in line]
    y_low, y_high, y_ticks = _y_range([v for line in points.values() for _, v in line], log_y)
    frame = _Frame(width, height, x_max or max(steps, default=1) or 1, y_low, y_high)
    return "".join([
        *_svg_axes(frame, y_ticks, log_y, title, x_title, y_title),
        *_svg_lines(frame, lines, math.log10 if log_y else (lambda v: v)),
        *_svg_legend(frame, [label for label, _ in lines]),
        "</svg>",
    ])
