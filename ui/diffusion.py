"""Figures for the diffusion lab: the schedule's alpha_bar and signal-to-noise curves, the reverse-diffusion
player (a small HTML page holding its frames, so it plays in the browser without reruns), the loss curve,
the classifier's spread over the ten digits, the guidance sweep's trade-off."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.core.grids import png_bytes
from engine.ddpm.data import to_unit
from engine.ddpm.quality import CLOSE_TO_REAL
from engine.ddpm.recording import Recording
from engine.ddpm.sample import Frame, grid_image
from engine.ddpm.schedule import NoiseSchedule
from ui.figures import COLORS

def _margins(figure: go.Figure, title: str, height: int) -> go.Figure:
    figure.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=60, b=40), showlegend=False, colorway=COLORS)
    return figure


def schedule_curves(schedule: NoiseSchedule, t: int, height: int = 300) -> go.Figure:
    """alpha_bar_t and SNR(t) = alpha_bar_t / (1 - alpha_bar_t) over t = 1 .. T, with the slider's t marked (t = 0: the clean digit)."""
    steps = np.arange(1, schedule.timesteps + 1)
    alpha_bar = schedule.alphas_cumprod.numpy()
    snr = schedule.signal_to_noise.numpy()
    figure = make_subplots(rows=1, cols=2, subplot_titles=("ᾱ_t: the share of the signal's variance left", "SNR(t) = ᾱ_t / (1 − ᾱ_t), log scale"),
                           horizontal_spacing=0.1)
    figure.add_trace(go.Scatter(x=steps, y=alpha_bar, mode="lines", line=dict(color=COLORS[0]), name="ᾱ_t"), row=1, col=1)
    figure.add_trace(go.Scatter(x=steps, y=snr, mode="lines", line=dict(color=COLORS[1]), name="SNR"), row=1, col=2)
    if t >= 1:
        figure.add_trace(go.Scatter(x=[t], y=[alpha_bar[t - 1]], mode="markers+text", marker=dict(size=11, color=COLORS[3]),
                                    text=[f"t = {t}: ᾱ = {alpha_bar[t - 1]:.3g}"], textposition="top right", name="now"), row=1, col=1)
        figure.add_trace(go.Scatter(x=[t], y=[snr[t - 1]], mode="markers+text", marker=dict(size=11, color=COLORS[3]),
                                    text=[f"SNR = {snr[t - 1]:.3g}"], textposition="top right", name="now"), row=1, col=2)
    for col in (1, 2):
        figure.add_vline(x=max(t, 1), line_dash="dot", line_color="gray", row=1, col=col)
        figure.update_xaxes(title_text="timestep t", range=[0, schedule.timesteps + 1], row=1, col=col)
    figure.update_yaxes(title_text="ᾱ_t", range=[-0.02, 1.05], row=1, col=1)
    figure.update_yaxes(title_text="SNR", type="log", exponentformat="power", row=1, col=2)
    return _margins(figure, f"The {schedule.config.schedule} schedule, T = {schedule.timesteps:,}", height)


def _png_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def _frame_title(frame: Frame) -> str:
    """t is the noise level the network was handed at this step; the last step goes from it to the clean digit."""
    t = f"t = {frame.t + 1:,} → 0, the clean digit" if frame.final else f"t = {frame.t + 1:,}"
    return f"step {frame.index:,} of {frame.steps:,} · {t} · noise level √(1 − ᾱ) = {frame.noise_std:.3f}"


PLAYER_HEIGHT = 560  # pixels: the title, two 4 x 4 grids of digits side by side, the controls
PLAYER_HTML = """<!doctype html><html><head><meta charset="utf-8"><style>
body { margin: 0; font-family: "Source Sans Pro", "Source Sans 3", sans-serif; color: #31333f; }
#title { font-size: 17px; margin: 4px 0 8px; }
.pictures { display: flex; gap: 16px; }
figure { margin: 0; flex: 1; }
img { width: 100%; height: 440px; object-fit: contain; image-rendering: pixelated; display: block; }
figcaption { font-size: 14px; text-align: center; margin-top: 4px; }
.controls { display: flex; align-items: center; gap: 12px; margin-top: 10px; font-size: 14px; }
button { font: inherit; padding: 4px 14px; border: 1px solid #d0d2d8; border-radius: 8px; background: #fff; cursor: pointer; }
input[type=range] { flex: 1; accent-color: #ff4b4b; }
</style></head><body>
<div id="title"></div>
<div class="pictures">
<figure><img id="x_t" alt="x_t"><figcaption>x_t: the sample being denoised</figcaption></figure>
<figure><img id="x_0" alt="predicted x_0"><figcaption>x&#770;_0: the network's guess of the clean digits</figcaption></figure>
</div>
<div class="controls"><button id="play" type="button">&#9654; Play</button>
<input id="step" type="range" min="0" max="0" value="0" aria-label="step"><span id="where"></span></div>
<script>
const frames = FRAMES, ms = MS_PER_FRAME;
const play = document.getElementById("play"), slider = document.getElementById("step");
let shown = 0, timer = null;
slider.max = frames.length - 1;
function show(k) {
  shown = k; slider.value = k;
  document.getElementById("x_t").src = frames[k].x_t;
  document.getElementById("x_0").src = frames[k].x_0;
  document.getElementById("title").textContent = frames[k].title;
  document.getElementById("where").textContent = frames[k].label;
}
function pause() { clearInterval(timer); timer = null; play.innerHTML = "&#9654; Play"; }
play.onclick = () => {
  if (timer) { pause(); return; }
  if (shown === frames.length - 1) show(0);
  play.innerHTML = "&#10074;&#10074; Pause";
  timer = setInterval(() => { if (shown >= frames.length - 1) pause(); else show(shown + 1); }, ms);
};
slider.oninput = () => { pause(); show(Number(slider.value)); };
show(0);
</script></body></html>"""


def player_frames(recording: Recording, columns: int | None = None) -> list[dict]:
    """Each kept step as the player shows it: x_t and the predicted x_0 as PNG data URIs, its title and slider label."""
    return [
        {"x_t": _png_uri(grid_image(to_unit(f.x), columns, scale=1)), "x_0": _png_uri(grid_image(to_unit(f.x0), columns, scale=1)),
         "index": f.index, "title": _frame_title(f), "label": f"step {f.index:,} of {f.steps:,}"}
        for f in recording.frames
    ]


def player_html(recording: Recording, columns: int | None = None, ms_per_frame: int = 120) -> str:
    """The reverse-diffusion player as one small HTML page: x_t beside the predicted x_0, Play / Pause and a step slider.

    Plain HTML and a few lines of script rather than a plotly figure, because a first visit waited seconds for
    plotly.js to load and draw before it could show the player; everything is in the page, so playing and
    scrubbing run in the browser without a rerun. The text it shows is the lab's own (no visitor's input).
    """
    frames = json.dumps(player_frames(recording, columns)).replace("</", "<\\/")  # no "</script>" can end the script early
    return PLAYER_HTML.replace("FRAMES", frames, 1).replace("MS_PER_FRAME", str(int(ms_per_frame)), 1)


def _series(rows: list[dict], key: str) -> tuple[list, list]:
    kept = [row for row in rows if row.get(key) is not None and not (isinstance(row[key], float) and math.isnan(row[key]))]
    return [row["step"] for row in kept], [row[key] for row in kept]


def loss_curves(rows: list[dict], title: str, height: int = 360) -> go.Figure:
    """The batch loss at each log, and the EMA's validation loss at each epoch's end (both the MSE of the predicted noise)."""
    figure = go.Figure()
    steps, values = _series(rows, "loss")
    figure.add_trace(go.Scatter(x=steps, y=values, mode="lines", name="batch loss (one batch)", line=dict(width=1, color="#9db4d6")))
    steps, values = _series(rows, "val_loss")
    figure.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers", name="validation loss (EMA weights)", line=dict(color=COLORS[1])))
    figure.update_layout(
        title=title, xaxis_title="optimizer step", yaxis_title="loss (MSE of the noise)", height=height, colorway=COLORS,
        margin=dict(l=10, r=10, t=50, b=40), legend=dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0),
    )
    figure.update_yaxes(type="log", exponentformat="power")
    return figure


def digit_bars(histogram: np.ndarray, total: int, height: int = 300) -> go.Figure:
    """How many samples the classifier read as each digit with confidence above 0.9."""
    figure = go.Figure(go.Bar(x=[str(d) for d in range(len(histogram))], y=histogram, marker_color=COLORS[0],
                              text=[str(int(c)) for c in histogram], textposition="outside"))
    figure.update_layout(title=f"Digits read with confidence > 0.9, of {total:,} samples", xaxis_title="digit the classifier reads",
                         yaxis_title="samples", yaxis_rangemode="tozero", yaxis_dtick=max(1, math.ceil(max(histogram.max(initial=0), 1) / 5)), xaxis_type="category", height=height, margin=dict(l=10, r=10, t=50, b=40), showlegend=False)
    return figure


def guidance_tradeoff(rows: list, real_recognised: float | None = None, height: int = 360) -> go.Figure:
    """Each way of sampling as a point: how varied (distance from real digits, as a multiple of real digits' own) against
    how recognised. Up and left is good; guidance climbs up and moves right."""
    figure = go.Figure()
    figure.add_vrect(x0=0, x1=CLOSE_TO_REAL, fillcolor="rgba(42,157,92,0.08)", line_width=0,
                     annotation_text="as varied as real digits (≤ 2×)", annotation_position="bottom right")
    guided = sorted((row for row in rows if row.guidance is not None), key=lambda row: row.guidance)
    figure.add_trace(go.Scatter(x=[row.distance_ratio for row in guided], y=[100 * row.recognised for row in guided], mode="lines+markers+text",
                                text=[f"w = {row.guidance:g}" for row in guided], textposition="top center", name="guidance w",
                                line=dict(color=COLORS[0]), marker=dict(size=9)))
    free = [row for row in rows if row.guidance is None]
    if free:
        figure.add_trace(go.Scatter(x=[free[0].distance_ratio], y=[100 * free[0].recognised], mode="markers+text", text=["unconditional"],
                                    textposition="bottom center", name="unconditional", marker=dict(size=11, symbol="diamond", color=COLORS[1])))
    if real_recognised is not None:
        figure.add_trace(go.Scatter(x=[1.0], y=[100 * real_recognised], mode="markers+text", text=["real digits"], textposition="bottom right",
                                    name="real digits", marker=dict(size=11, symbol="star", color=COLORS[2])))
    top = max([row.distance_ratio for row in rows] + [CLOSE_TO_REAL]) * 1.15
    figure.update_layout(title="Guidance: more digits recognised, less variety", xaxis_title="distance from real digits (× real digits' own)",
                         yaxis_title="recognised (%)", height=height, margin=dict(l=10, r=10, t=50, b=40), showlegend=False)
    figure.update_xaxes(range=[0, top], rangemode="tozero")
    figure.update_yaxes(range=[min([100 * row.recognised for row in rows] + [80]) - 5, 102])
    return figure


def sweep_table(rows: list) -> list[dict]:
    """The sweep's rows as a table a page shows: one row per way of sampling."""
    return [{
        "sampling": row.label,
        "recognised": f"{row.recognised:.1%}",
        "as asked": "-" if row.as_asked is None else f"{row.as_asked:.1%}",
        "rarest digit": f"{row.rarest_digit:.1%}",
        "distance (× real)": f"{row.distance:.1f} ({row.distance_ratio:.2f}×)",
    } for row in rows]
