"""Figures for the diffusion lab: the schedule's alpha_bar and signal-to-noise curves, the reverse-diffusion
player (one plotly figure with animation frames, so it plays in the browser without reruns), the loss curve,
the classifier's spread over the ten digits; and the recording of a sampler's frames that the player shows."""

from __future__ import annotations

import base64
import math
import time
from dataclasses import dataclass, replace

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.core.grids import png_bytes
from engine.core.jobs import SilentReporter
from engine.ddpm.data import to_unit, toy_shapes
from engine.ddpm.sample import Frame, SampleSettings, frames, frames_to_keep, grid_image, sample_labels
from engine.ddpm.schedule import NoiseSchedule
from engine.ddpm.train import DDPMConfig, steps_per_epoch, train
from engine.ddpm.unet import UNet
from ui.figures import COLORS

MAX_FRAMES = 60  # frames the player holds: each is two small PNGs


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


@dataclass(frozen=True)
class Recording:
    """A sampler run kept for the player: about MAX_FRAMES of its frames, the final digits and what it cost."""

    frames: list[Frame]  # the kept frames, in order; the last is the final one
    images: np.ndarray  # (n, 28, 28) in [0, 1]: the samples
    labels: np.ndarray | None  # the digit each was drawn as (a conditional model), else None
    settings: SampleSettings  # resolved: steps and guidance filled in
    seconds: float
    calls: int  # network calls: one per step (a guided step is one call on a batch of twice the size)


def record(model: UNet, schedule: NoiseSchedule, settings: SampleSettings, keep: int = MAX_FRAMES) -> Recording:
    """Run the sampler to the end, keeping about `keep` frames (closer together near the end, where digits take shape)."""
    settings = settings.resolved(model.config, schedule.timesteps)
    kept_indices = set(frames_to_keep(settings.steps, keep))
    kept, started = [], time.perf_counter()
    for frame in frames(model, schedule, settings):
        if frame.index in kept_indices:
            kept.append(frame)
    seconds = time.perf_counter() - started
    labels = sample_labels(model.config, settings, settings.n)
    return Recording(kept, to_unit(kept[-1].x), None if labels is None else labels.numpy(), settings, seconds, settings.steps)


def _png_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def _frame_title(frame: Frame) -> str:
    """t is the noise level the network was handed at this step; the last step goes from it to the clean digit."""
    t = f"t = {frame.t + 1:,} → 0, the clean digit" if frame.final else f"t = {frame.t + 1:,}"
    return f"step {frame.index:,} of {frame.steps:,} · {t} · noise level √(1 − ᾱ) = {frame.noise_std:.3f}"


def reverse_player(recording: Recording, columns: int | None = None, height: int = 520, ms_per_frame: int = 120) -> go.Figure:
    """x_t (left) and the predicted x_0 (right) at each kept step, as uint8 PNG images; Play / Pause and a step slider.

    Everything is in the figure, so playing and scrubbing run in the browser without a rerun of the page.
    """
    kept = recording.frames
    pictures = [(_png_uri(grid_image(to_unit(f.x), columns, scale=1)), _png_uri(grid_image(to_unit(f.x0), columns, scale=1))) for f in kept]
    figure = make_subplots(rows=1, cols=2, subplot_titles=("x_t: the sample being denoised", "x̂_0: the network's guess of the clean digits"),
                           horizontal_spacing=0.04)
    first = pictures[0]
    figure.add_trace(go.Image(source=first[0], hoverinfo="skip", name="x_t"), row=1, col=1)
    figure.add_trace(go.Image(source=first[1], hoverinfo="skip", name="x̂_0"), row=1, col=2)
    figure.frames = [
        go.Frame(name=str(f.index), data=[go.Image(source=a), go.Image(source=b)], traces=[0, 1], layout=go.Layout(title_text=_frame_title(f)))
        for f, (a, b) in zip(kept, pictures)
    ]
    play = dict(frame=dict(duration=ms_per_frame, redraw=True), transition=dict(duration=0), fromcurrent=True, mode="immediate")
    pause = dict(frame=dict(duration=0, redraw=False), transition=dict(duration=0), mode="immediate")
    figure.update_layout(
        updatemenus=[dict(type="buttons", direction="left", x=0.0, y=-0.04, xanchor="left", yanchor="top", pad=dict(t=0, r=10), showactive=False,
                          buttons=[dict(label="▶ Play", method="animate", args=[None, play]),
                                   dict(label="❚❚ Pause", method="animate", args=[[None], pause])])],
        sliders=[dict(active=0, x=0.16, len=0.84, y=-0.02, yanchor="top", pad=dict(t=0), ticklen=0, font=dict(color="rgba(0,0,0,0)"),
                      currentvalue=dict(prefix="step ", visible=True, font=dict(color="#31333f", size=13)),
                      steps=[dict(label=f"{f.index:,} of {f.steps:,}", value=str(f.index), method="animate",
                                  args=[[str(f.index)], dict(frame=dict(duration=0, redraw=True), transition=dict(duration=0), mode="immediate")])
                             for f in kept])],
    )
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    figure.update_layout(title=_frame_title(kept[0]), height=height, margin=dict(l=10, r=10, t=70, b=90), showlegend=False)
    return figure


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
