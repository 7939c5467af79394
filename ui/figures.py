"""Plotly figures with titled axes: loss curves and histograms."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

COLORS = ["#1f4e99", "#e07b00", "#2a9d5c", "#c0392b", "#7b4fa3", "#7f7f7f"]  # distinct in print and for colour-blind eyes


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
    """One line per entry of `series` (label -> key in the rows), dashed horizontal `references`."""
    figure = go.Figure()
    steps = [row["step"] for row in rows]
    for label, key in series.items():
        figure.add_trace(go.Scatter(x=steps, y=[row.get(key) for row in rows], mode="lines", name=label))
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
