"""The diffusion page's first sections: the forward process on a real digit, generating with the player, scoring the digits.

Models, the classifier, MNIST and the recordings are cached once per server, so a second visitor gets them at once.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import streamlit as st
import torch

import engine.ddpm.checkpoint as ddpm_checkpoint
from engine.core.cache import BoundedCache
from engine.core.checkpoints import card_path, changed_at, read_card
from engine.core.errors import LabError
from engine.core.fetch import find_local
from engine.ddpm.checkpoint import best_in, load_model, model_parts
from engine.ddpm.classifier import CONFIDENT, SHIPPED_CLASSIFIER, load_classifier, score_samples
from engine.ddpm.data import MNIST_FILES, DigitData, batch_images, load_mnist, mnist_available, to_unit
from engine.ddpm.quality import read_sweep, score_fresh, suggested_guidance
from engine.ddpm.recording import FIRST_SETTINGS, recording_for
from engine.ddpm.sample import SAMPLERS, SampleSettings, denoising_gif, grid_png
from engine.ddpm.schedule import SCHEDULES, NoiseSchedule, ScheduleConfig, noised_at
from ui.address import bound
from ui.diffusion import PLAYER_HEIGHT, digit_bars, player_html, schedule_curves
from ui.errors import show_error
from ui.format import duration
from ui.guidance import guidance_section
from ui.images import show_grid

SHIPPED_SETTINGS = {name: getattr(FIRST_SETTINGS, name) for name in ("sampler", "steps", "eta", "seed", "digit", "guidance", "n")}


def shipped_checkpoint() -> Path:
    return ddpm_checkpoint.SHIPPED_CHECKPOINT  # looked up on each run, not imported once, so a test can point it elsewhere


@st.cache_resource(show_spinner="Reading MNIST…")
def mnist(local: str | None, _progress=None):  # keyed by where the files are: None means a download
    return load_mnist(progress=_progress)


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def cached_model(path: str, modified: float):
    return load_model(path)


@st.cache_resource(show_spinner="Loading the MNIST classifier…")
def cached_classifier(path: str, modified: float):
    return load_classifier(path)


@st.cache_resource
def recordings() -> BoundedCache:  # one per server: a second visitor asking for the same digits gets them at once
    return BoundedCache(8)


def cached_recording(path: str, modified: float, sampler: str, steps: int, eta: float, seed: int, digit, guidance: float, n: int, _progress=None):
    """Once per server for each model and settings; the shipped model's first digits come from the recording kept beside it."""
    def draw():
        model, schedule, card = cached_model(path, modified)
        settings = SampleSettings(sampler=sampler, n=n, steps=None if sampler == "ddpm" else steps, eta=eta, digit=digit, guidance=guidance, seed=seed)
        recording, from_file = recording_for(model, schedule, settings, card.get("weights_sha256"), path == str(shipped_checkpoint()), _progress)
        return recording, player_html(recording), grid_png(recording.images, scale=3), from_file  # the player's page made once, too

    return recordings().get((path, modified, sampler, steps, eta, seed, digit, guidance, n), draw)


def mnist_or_offer() -> DigitData | None:
    """MNIST when it is here (or a download was asked for just now); else a note and a button to download it."""
    try:
        local = find_local(MNIST_FILES["test_images"])
        if mnist_available() or st.session_state.pop("ddpm_download_ok", False):  # one download try per click
            bar = st.empty()
            data = mnist(local and str(local), lambda done, total: bar.progress(min(1.0, done / total), f"Downloading MNIST: {done / 1e6:.1f} of {total / 1e6:.1f} MB"))
            bar.empty()
            return data
        st.info("MNIST is not on this machine yet (11 MB), so there are no real digits to add noise to or train on. Set DLLAB_DATA_DIR to a "
                "folder that has mnist/MNIST/raw/, or download it now. Generating from the shipped model above works without it.", icon=":material/download:")
        if st.button("Download MNIST", key="ddpm_download_data"):
            st.session_state.ddpm_download_ok = True
            st.rerun()
    except LabError as error:
        show_error(error)
    return None


def forward_section() -> DigitData | None:
    """(2): a test digit, noised to the t on the slider; returns MNIST for the sections that train and measure."""
    st.subheader("2 · The forward process: adding noise")
    data = mnist_or_offer()
    if data is None:
        return None
    row = st.columns([1, 1, 3])
    index = row[0].number_input("Test digit (index)", 0, len(data.test_images) - 1, 0, key="ddpm_index", help=f"One of MNIST's {len(data.test_images):,} test digits.")
    schedule_name = row[1].radio("Schedule", SCHEDULES, horizontal=True, key="ddpm_fwd_schedule", help="linear: DDPM's; cosine: Improved DDPM's.")
    schedule = NoiseSchedule(ScheduleConfig(schedule=schedule_name))
    t = row[2].slider("Timestep t (0: the clean digit, T: pure noise)", 0, schedule.timesteps, 250, key="ddpm_t")
    x0 = batch_images(data.test_images[index : index + 1])
    x_t, alpha_bar = noised_at(schedule, x0, t, seed=index)  # the same noise while t moves
    pair, curves = st.columns([1, 3])
    with pair:
        show_grid(to_unit(torch.cat([x0, x_t])), f"x₀ (a {int(data.test_labels[index])}) and x_t at t = {t:,}", columns=2, scale="unit", width_px=300)
        st.caption(f"x_t = {alpha_bar ** 0.5:.3f} · x₀ + {(1 - alpha_bar) ** 0.5:.3f} · noise")
    curves.plotly_chart(schedule_curves(schedule, t), key="ddpm_schedule_curves")
    return data


def model_sources(runs) -> dict[str, str]:
    """Checkpoint path -> how the page names it: the shipped checkpoint, then the best of each of the visitor's runs."""
    shipped = shipped_checkpoint()
    sources = {str(shipped): "the shipped checkpoint"} if card_path(shipped).exists() else {}
    sources.update({str(best_in(run.folder)): f"run {run.name}" for run in runs if card_path(best_in(run.folder)).exists()})
    return sources


def suit_model(path: str):
    """A model seen for the first time: guidance set to what suits it (its card's sweep suggests one), and no digit asked for."""
    suggested = None
    try:
        card = read_card(Path(path))
        conditional = model_parts(card, Path(path))[0].num_classes > 0
        swept = read_sweep(card)
        suggested = suggested_guidance(swept[0]) if swept else None
    except LabError:
        conditional = True  # a card that cannot be read is explained when sampling
    guidance = (suggested if suggested is not None else SHIPPED_SETTINGS["guidance"]) if conditional else 1.0
    suited = {"ddpm_guidance": guidance, "ddpm_digit": None}
    first = "ddpm_model_seen" not in st.session_state
    st.session_state.update({key: value for key, value in suited.items() if not (first and key in st.query_params)})  # a link's settings win at first


def pick_model(sources: dict[str, str]) -> str:
    if st.session_state.get("ddpm_model") not in sources:
        st.session_state.pop("ddpm_model", None)
    source = st.selectbox("Generate from", list(sources), format_func=sources.get, key="ddpm_model")
    if st.session_state.get("ddpm_model_seen") != source:
        suit_model(source)
        st.session_state.ddpm_model_seen = source
    return source


def sampler_controls() -> tuple[tuple, bool]:
    """The sampler's settings as plain values (sampler, steps, eta, seed, digit, guidance, n), and whether Generate was pressed."""
    row = st.columns(4)
    sampler = row[0].radio("Sampler", SAMPLERS, SAMPLERS.index("ddim"), horizontal=True, **bound("ddpm_sampler"), help="ddpm: all T = 1,000 steps (Algorithm 2); ddim: as few steps as you like.")
    steps = row[1].number_input("DDIM steps", 1, 1000, SHIPPED_SETTINGS["steps"], **bound("ddpm_steps"), disabled=sampler == "ddpm", help="Network calls; DDPM always takes all T.")
    eta = row[2].number_input("η (DDIM)", 0.0, 1.0, SHIPPED_SETTINGS["eta"], 0.1, **bound("ddpm_eta"), disabled=sampler == "ddpm", help="0: deterministic; 1: as noisy as DDPM.")
    seed = row[3].number_input("Seed", 0, 2**31 - 1, SHIPPED_SETTINGS["seed"], **bound("ddpm_seed"), help="The same seed and settings draw the same digits.")
    row = st.columns(4, vertical_alignment="bottom")
    digit = row[0].number_input("Digit", value=None, step=1, **bound("ddpm_digit"), placeholder="all digits", help="0 to 9; empty draws 0-9 in turn. Needs a conditional model.")
    guidance = row[1].number_input("Guidance", 0.0, 20.0, step=0.5, **bound("ddpm_guidance"), help="1: none; above 1 trades variety for clearer digits. Needs a conditional model.")
    n = row[2].number_input("Samples", 1, 64, SHIPPED_SETTINGS["n"], **bound("ddpm_n"), help="How many digits to draw at once, up to 64.")
    clicked = row[3].button("Generate", key="ddpm_generate", type="primary", icon=":material/auto_awesome:")
    return (sampler, int(steps), float(eta), int(seed), None if digit is None else int(digit), float(guidance), int(n)), clicked


def draw_digits(sources: dict[str, str], source: str, settings: tuple, clicked: bool) -> tuple | None:
    """(recording, the player's page, PNG, from_file) for what was asked, or for the last digits that worked when the asking fails."""
    drawn = kept = None
    try:
        asked = (source, changed_at(Path(source)), *settings)
        kept = st.session_state.get("ddpm_generated")
        if kept is not None and (kept[0] not in sources or changed_at(Path(kept[0])) != kept[1]):
            kept = None  # that model is gone or was retrained
        bar = st.empty()  # drawn on every run, so the elements below keep their places and a rerun does not draw them twice
        if clicked or (kept is None and source == str(shipped_checkpoint())):  # a first visit: the shipped model's digits, seed 0
            drawn = cached_recording(*asked, _progress=lambda done, total: bar.progress(
                done / total, f"Denoising, one step at a time: step {done:,} of {total:,}"))
            bar.empty()
            st.session_state.ddpm_generated = kept = asked
    except LabError as error:
        show_error(error)  # the last digits that worked stay below
    try:
        if kept is not None and drawn is None:
            drawn = cached_recording(*kept)
    except LabError as error:
        show_error(error)
    return drawn


def show_player(drawn: tuple, sources: dict[str, str]) -> None:
    recording, page, png, from_file = drawn
    st.iframe(page, height=PLAYER_HEIGHT)
    settings = recording.settings
    guided = settings.guidance != 1.0
    batch = f"a batch of {2 * settings.n if guided else settings.n}" + (f" ({settings.n} digits with and without their label, for guidance)" if guided else "")
    note, gif_button, png_button = st.columns([3, 1, 1], vertical_alignment="center")
    made = (f"{settings.n} samples drawn by `python -m engine.ddpm record` when this lab was built, with these settings "
            f"(press Generate to draw them here)" if from_file else f"{settings.n} samples in {recording.seconds:.2f} s")
    note.caption(f"{made}: {recording.calls:,} network calls, each on {batch}; "
                 f"{settings.sampler.upper()}{f', η = {settings.eta:g}' if settings.sampler == 'ddim' else ''}, seed {settings.seed}, from {sources[st.session_state.ddpm_generated[0]]}. "
                 f"The player holds {len(recording.frames)} of the {settings.steps:,} steps, closer together at the end.")
    # made on the click: a 3 MB GIF was encoded (0.2 s) and stored for every visitor's every run, mostly never downloaded
    gif_button.download_button("GIF", lambda: denoising_gif(recording.frames), "denoising.gif", "image/gif", key="ddpm_download_gif", icon=":material/download:")
    png_button.download_button("Grid (PNG)", png, "samples.png", "image/png", key="ddpm_download_png", icon=":material/download:")


def generate_section(runs) -> tuple[dict[str, str], str | None, object]:
    """(1): (the models offered, the one picked, the recording in the player), each None or empty when there is none."""
    st.subheader("1 · Generate: from noise to digits")
    sources = model_sources(runs)
    shipped = shipped_checkpoint()
    if not card_path(shipped).exists():
        st.info(f"The shipped checkpoint ({shipped.name}.safetensors in {shipped.parent.name}/) is not in this copy of the lab yet, "
                "so there is nothing to generate from here. Train a run below, then generate from it.", icon=":material/info:")
    if not sources:
        return sources, None, None
    source = pick_model(sources)
    settings, clicked = sampler_controls()
    drawn = draw_digits(sources, source, settings, clicked)
    if drawn is None:
        return sources, source, None
    show_player(drawn, sources)
    return sources, source, drawn[0]


def shipped_classifier():
    """(classifier, its card), or (None, None) with a note saying why there is none."""
    if not card_path(SHIPPED_CLASSIFIER).exists():
        st.info(f"The MNIST classifier ({SHIPPED_CLASSIFIER.name}.safetensors in {SHIPPED_CLASSIFIER.parent.name}/) is not in this copy of the lab, "
                "so the samples cannot be scored here.", icon=":material/info:")
        return None, None
    try:
        return cached_classifier(str(SHIPPED_CLASSIFIER), changed_at(SHIPPED_CLASSIFIER))
    except LabError as error:
        show_error(error)
        return None, None


def score_larger_batch(classifier, recording, count: int) -> None:
    """Draw `count` digits with the player's settings and keep their score for the page to show."""
    try:
        model, schedule, _ = cached_model(*st.session_state.ddpm_generated[:2])
        bar = st.progress(0.0, "Drawing samples…")
        score, seconds = score_fresh(model, schedule, classifier, replace(recording.settings, n=count),
                                     progress=lambda done, total: bar.progress(min(1.0, done / total), f"Drawing samples: step {done:,} of {total:,}"))
        bar.empty()
        st.session_state.ddpm_scored = (st.session_state.ddpm_generated[0], recording.settings, score, seconds)
    except LabError as error:
        show_error(error)


def show_score(classifier, recording) -> None:
    """The larger batch's score when it was drawn with the player's settings (any count), else the player's digits'."""
    scored = st.session_state.get("ddpm_scored")
    if scored and scored[0] == st.session_state.ddpm_generated[0] and replace(scored[1], n=recording.settings.n) == recording.settings:
        score, what = scored[2], f"{scored[2].count:,} fresh samples (drawn in {duration(scored[3])})"
    else:
        score, what = score_samples(classifier, recording.images, recording.labels), f"the {recording.settings.n} samples in the player"
    numbers, bars = st.columns([1, 2])
    numbers.metric("Recognised", f"{score.recognised_share:.0%}", help=f"Share read with confidence above {CONFIDENT}. Real MNIST digits: about 97%.")
    if score.matching_share is not None:
        asked = f"digit {recording.settings.digit}" if recording.settings.digit is not None else "digit asked for (0-9 in turn)"
        numbers.metric(f"Read as the {asked}", f"{score.matching_share:.0%}", help="At any confidence.")
    numbers.caption(f"Scored: {what}.")
    bars.plotly_chart(digit_bars(score.histogram, score.count), key="ddpm_digit_bars")


def quality_section(recording):
    """(3): the classifier's reading of the player's digits, or of a larger batch; returns the classifier (None without one)."""
    st.subheader("3 · Quality: can a classifier read them?")
    classifier, card = shipped_classifier()
    if classifier is not None and recording is not None:
        st.caption(f"A small CNN trained by the project on MNIST's training digits alone reads each sample: "
                   f"{card['metrics']['test_accuracy']:.2%} right on the 10,000 test digits (its card). "
                   f"A sample counts as recognised when the classifier gives one digit a probability above {CONFIDENT}.")
        row = st.columns([1, 1, 3], vertical_alignment="bottom")
        count = row[0].number_input("Samples to score", 10, 1000, 100, 10, key="ddpm_score_n", help="Drawn with the settings above, 250 at a time.")
        if row[1].button("Score a larger batch", key="ddpm_score", icon=":material/fact_check:"):
            score_larger_batch(classifier, recording, int(count))
        show_score(classifier, recording)
    return classifier


def guidance_costs(sources: dict[str, str], source: str | None, classifier, data: DigitData | None) -> None:
    """What guidance costs for the model picked: its card's sweep, and a sweep measured on demand."""
    if sources:
        st.markdown("##### What guidance costs")
        guidance_section(source, sources[source], lambda s=source: cached_model(s, changed_at(Path(s))), classifier, data)
