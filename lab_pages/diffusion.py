"""Diffusion lab: a DDPM on MNIST — the forward process, generation played step by step, quality, training."""

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import streamlit as st
import torch

from engine.core.cache import BoundedCache
from engine.core.checkpoints import card_path, changed_at, read_card
from engine.core.errors import ConfigError, LabError
from engine.core.fetch import find_local
from engine.core.jobs import JobState, JobView, board
from engine.core.runs import export_zip, make_room
from engine.core.settings import check_step_limit
from engine.ddpm.checkpoint import SHIPPED_CHECKPOINT, best_in, load_model, model_parts
from engine.ddpm.classifier import CONFIDENT, SHIPPED_CLASSIFIER, load_classifier, score_samples
from engine.ddpm.data import MNIST_FILES, batch_images, load_mnist, mnist_available, to_unit
from engine.ddpm.estimate import estimated_seconds, images_per_second, training_seconds
from engine.ddpm.quality import read_sweep, suggested_guidance
from engine.ddpm.recording import FIRST_SETTINGS, SHIPPED_RECORDING, load_recording, record
from engine.ddpm.runs import ddpm_runs_dir, list_runs, new_run_folder
from engine.ddpm.sample import SAMPLERS, SampleSettings, denoising_gif, generate, grid_png
from engine.ddpm.schedule import SCHEDULES, NoiseSchedule, ScheduleConfig
from engine.ddpm.train import PRESETS, DDPMTrainConfig, preset_of, train
from ui.diffusion import digit_bars, loss_curves, reverse_player, schedule_curves
from ui.errors import show_error
from ui.guidance import guidance_section
from ui.images import show_grid
from ui.job_panel import job_panel, job_running, start_job
from ui.runs import duration
from ui.address import address_notes, bound, share_box
from ui.visitor import shown_path, visitor_token

PRESET_LABELS = {"quick": "Quick (3 epochs of 20,000 digits)", "cpu": "CPU (5 epochs of all 60,000: where the shipped model began)",
                 "tiny": "Tiny (a few hundred digits, for trying things)"}  # what each does: the time is measured below, on this machine
NUMBERS = {  # field -> (label, help); each label keeps the config's name, which its error messages use
    "width": ("Width · width", "Channels at 28x28; the 14x14 and 7x7 levels have more. Must divide by the GroupNorm groups."),
    "depth": ("Depth · depth", "Residual blocks per level going down (one more coming up)."),
    "epochs": ("Epochs · epochs", "Passes over the training digits; a sample grid is drawn after each."),
    "batch_size": ("Batch · batch_size", "Digits per optimizer step."),
    "learning_rate": ("Learning rate", "Adam's peak rate, after a short warmup; it decays to min_lr."),
    "train_images": ("Training digits · train_images", "Use the first N of MNIST's 60,000 training digits; 0 means all."),
}
FIELDS = [*NUMBERS, "schedule", "conditional"]
SHIPPED_SETTINGS = {name: getattr(FIRST_SETTINGS, name) for name in ("sampler", "steps", "eta", "seed", "digit", "guidance", "n")}


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
        settings = settings.resolved(model.config, schedule.timesteps)
        kept = load_recording(SHIPPED_RECORDING, card.get("weights_sha256")) if path == str(SHIPPED_CHECKPOINT) else None
        recording = kept if kept is not None and kept.settings == settings else record(model, schedule, settings, progress=_progress)
        return recording, denoising_gif(recording.frames), grid_png(recording.images, scale=3), kept is recording

    return recordings().get((path, modified, sampler, steps, eta, seed, digit, guidance, n), draw)


@st.cache_data(max_entries=16, ttl=600, show_spinner="Timing a few training steps on this device…")  # the load changes: time again
def measured_speed(config: dict) -> float:
    return images_per_second(DDPMTrainConfig.from_dict(config))


def apply_preset():
    preset = PRESETS[st.session_state.dif_preset]
    st.session_state.update({f"dif_{name}": getattr(preset, name) for name in FIELDS})


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
    suited = {"dif_guidance": guidance, "dif_digit": None}
    first = "dif_model_seen" not in st.session_state
    st.session_state.update({key: value for key, value in suited.items() if not (first and key in st.query_params)})  # a link's settings win at first


def draw_live(view: JobView):
    curve, grid = st.columns([3, 2])
    curve.plotly_chart(loss_curves(view.metrics, "Loss while training"))
    logged = [row for row in view.metrics if "images_per_s" in row]
    if logged:
        grid.metric("Speed", f"{logged[-1]['images_per_s']:,.0f} images/s")
    if "samples" in view.snapshots:
        epochs = [row["epoch"] for row in view.metrics if "epoch" in row]
        with grid:
            samples = view.snapshots["samples"]
            show_grid(samples, f"Samples after epoch {epochs[-1]:g} (DDIM, the same noise each epoch)", columns=5 if len(samples) <= 20 else 10, scale="unit", width_px=400)
    else:
        grid.caption("A grid of samples appears at the end of each epoch.")


for name in FIELDS:
    st.session_state.setdefault(f"dif_{name}", getattr(PRESETS["quick"], name))
st.session_state.setdefault("dif_preset", "quick")

st.title("Diffusion: digits from noise")
st.markdown(
    "A **denoising diffusion model** (DDPM, Ho et al. 2020) learns to remove a little Gaussian noise from an image. "
    "Start from pure noise, remove noise a thousand times, and a handwritten digit appears. First scrub **t** below to "
    "see how noise destroys a digit, then press **Play** in the player to watch the shipped model undo it."
)
with st.expander("The equations"):
    st.latex(r"q(x_t \mid x_0) = \mathcal{N}\left(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t)\,I\right),\quad \bar\alpha_t = \prod_{s\le t}(1-\beta_s) \qquad (4)")
    st.latex(r"\hat x_0 = \left(x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t, t)\right) / \sqrt{\bar\alpha_t} \qquad (15)")
    st.latex(r"L_\text{simple} = \mathbb{E}_{t, x_0, \epsilon}\left\lVert \epsilon - \epsilon_\theta\left(\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t\right)\right\rVert^2 \qquad (14)")
    st.latex(r"\epsilon = \epsilon_\theta(x_t, \varnothing) + w\left(\epsilon_\theta(x_t, y) - \epsilon_\theta(x_t, \varnothing)\right) \qquad \text{(guidance)}")
    st.caption("Numbers as in the DDPM paper. β_t rises linearly from 10⁻⁴ to 0.02 over T = 1,000 steps (or follows Improved DDPM's cosine). "
               "The network predicts the noise ε; the sampler turns that into the guess x̂₀ and a slightly cleaner x_(t−1). "
               "Guidance w > 1 (classifier-free, Ho & Salimans 2021) pushes the sample towards the digit asked for.")

# (1) the forward process
st.subheader("1 · The forward process: adding noise")
data = None
try:
    local = find_local(MNIST_FILES["test_images"])
    if mnist_available() or st.session_state.pop("dif_download_ok", False):  # one download try per click
        bar = st.empty()
        data = mnist(local and str(local), lambda done, total: bar.progress(min(1.0, done / total), f"Downloading MNIST: {done / 1e6:.1f} of {total / 1e6:.1f} MB"))
        bar.empty()
    else:
        st.info("MNIST is not on this machine yet (11 MB), so there are no real digits to add noise to or train on. Set DLLAB_DATA_DIR to a "
                "folder that has mnist/MNIST/raw/, or download it now. Generating from the shipped model below works without it.", icon=":material/download:")
        if st.button("Download MNIST", key="dif_download_data"):
            st.session_state.dif_download_ok = True
            st.rerun()
except LabError as error:
    show_error(error)
if data is not None:
    row = st.columns([1, 1, 3])
    index = row[0].number_input("Test digit (index)", 0, len(data.test_images) - 1, 0, key="dif_index", help=f"One of MNIST's {len(data.test_images):,} test digits.")
    schedule_name = row[1].radio("Schedule", SCHEDULES, horizontal=True, key="dif_fwd_schedule", help="linear: DDPM's; cosine: Improved DDPM's.")
    schedule = NoiseSchedule(ScheduleConfig(schedule=schedule_name))
    t = row[2].slider("Timestep t (0: the clean digit, T: pure noise)", 0, schedule.timesteps, 250, key="dif_t")
    x0 = batch_images(data.test_images[index : index + 1])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(index))  # the same noise while t moves
    x_t = x0 if t == 0 else schedule.add_noise(x0, noise, torch.tensor([t - 1]))
    pair, curves = st.columns([1, 3])
    with pair:
        show_grid(to_unit(torch.cat([x0, x_t])), f"x₀ (a {int(data.test_labels[index])}) and x_t at t = {t:,}", columns=2, scale="unit", width_px=300)
        alpha_bar = 1.0 if t == 0 else schedule.alphas_cumprod[t - 1].item()
        st.caption(f"x_t = {alpha_bar ** 0.5:.3f} · x₀ + {(1 - alpha_bar) ** 0.5:.3f} · noise")
    curves.plotly_chart(schedule_curves(schedule, t), key="dif_schedule_curves")

# (2) generate
st.subheader("2 · Generate: from noise to digits")
runs = list_runs(visitor=visitor_token())
sources = {str(SHIPPED_CHECKPOINT): "the shipped checkpoint"} if card_path(SHIPPED_CHECKPOINT).exists() else {}
sources.update({str(best_in(run.folder)): f"run {run.name}" for run in runs if card_path(best_in(run.folder)).exists()})
if not card_path(SHIPPED_CHECKPOINT).exists():
    st.info(f"The shipped checkpoint ({SHIPPED_CHECKPOINT.name}.safetensors in {SHIPPED_CHECKPOINT.parent.name}/) is not in this copy of the lab yet, "
            "so there is nothing to generate from here. Train a run below, then generate from it.", icon=":material/info:")
recording = None
if sources:
    if st.session_state.get("dif_model") not in sources:
        st.session_state.pop("dif_model", None)
    source = st.selectbox("Generate from", list(sources), format_func=sources.get, key="dif_model")
    if st.session_state.get("dif_model_seen") != source:
        suit_model(source)
        st.session_state.dif_model_seen = source
    row = st.columns(4)
    sampler = row[0].radio("Sampler", SAMPLERS, SAMPLERS.index("ddim"), horizontal=True, **bound("dif_sampler"), help="ddpm: all T = 1,000 steps (Algorithm 2); ddim: as few steps as you like.")
    steps = row[1].number_input("DDIM steps", 1, 1000, SHIPPED_SETTINGS["steps"], **bound("dif_steps"), disabled=sampler == "ddpm", help="Network calls; DDPM always takes all T.")
    eta = row[2].number_input("η (DDIM)", 0.0, 1.0, SHIPPED_SETTINGS["eta"], 0.1, **bound("dif_eta"), disabled=sampler == "ddpm", help="0: deterministic; 1: as noisy as DDPM.")
    seed = row[3].number_input("Seed", 0, 2**31 - 1, SHIPPED_SETTINGS["seed"], **bound("dif_seed"), help="The same seed and settings draw the same digits.")
    row = st.columns(4, vertical_alignment="bottom")
    digit = row[0].number_input("Digit", value=None, step=1, **bound("dif_digit"), placeholder="all digits", help="0 to 9; empty draws 0-9 in turn. Needs a conditional model.")
    guidance = row[1].number_input("Guidance", 0.0, 20.0, step=0.5, **bound("dif_guidance"), help="1: none; above 1 trades variety for clearer digits. Needs a conditional model.")
    n = row[2].number_input("Samples", 1, 64, SHIPPED_SETTINGS["n"], **bound("dif_n"), help="How many digits to draw at once, up to 64.")
    clicked = row[3].button("Generate", key="dif_generate", type="primary", icon=":material/auto_awesome:")
    kept = None
    try:
        asked = (source, changed_at(Path(source)), sampler, int(steps), float(eta), int(seed), None if digit is None else int(digit), float(guidance), int(n))
        kept = st.session_state.get("dif_generated")
        if kept is not None and (kept[0] not in sources or changed_at(Path(kept[0])) != kept[1]):
            kept = None  # that model is gone or was retrained
        bar = st.empty()  # drawn on every run, so the elements below keep their places and a rerun does not draw them twice
        if clicked or (kept is None and source == str(SHIPPED_CHECKPOINT)):  # a first visit: the shipped model's digits, seed 0
            recording, gif, png, from_file = cached_recording(*asked, _progress=lambda done, total: bar.progress(
                done / total, f"Denoising, one step at a time: step {done:,} of {total:,}"))
            bar.empty()
            st.session_state.dif_generated = kept = asked
    except LabError as error:
        show_error(error)  # the last digits that worked stay below
    try:
        if kept is not None and recording is None:
            recording, gif, png, from_file = cached_recording(*kept)
    except LabError as error:
        show_error(error)
if recording is not None:
    st.plotly_chart(reverse_player(recording), key="dif_player")
    settings = recording.settings
    guided = settings.guidance != 1.0
    batch = f"a batch of {2 * settings.n if guided else settings.n}" + (f" ({settings.n} digits with and without their label, for guidance)" if guided else "")
    note, gif_button, png_button = st.columns([3, 1, 1], vertical_alignment="center")
    drawn = (f"{settings.n} samples drawn by `python -m engine.ddpm record` when this lab was built, with these settings "
             f"(press Generate to draw them here)" if from_file else f"{settings.n} samples in {recording.seconds:.2f} s")
    note.caption(f"{drawn}: {recording.calls:,} network calls, each on {batch}; "
                 f"{settings.sampler.upper()}{f', η = {settings.eta:g}' if settings.sampler == 'ddim' else ''}, seed {settings.seed}, from {sources[st.session_state.dif_generated[0]]}. "
                 f"The player holds {len(recording.frames)} of the {settings.steps:,} steps, closer together at the end.")
    gif_button.download_button("GIF", gif, "denoising.gif", "image/gif", key="dif_download_gif", icon=":material/download:")
    png_button.download_button("Grid (PNG)", png, "samples.png", "image/png", key="dif_download_png", icon=":material/download:")

# (3) quality
st.subheader("3 · Quality: can a classifier read them?")
classifier = None
if not card_path(SHIPPED_CLASSIFIER).exists():
    st.info(f"The MNIST classifier ({SHIPPED_CLASSIFIER.name}.safetensors in {SHIPPED_CLASSIFIER.parent.name}/) is not in this copy of the lab, "
            "so the samples cannot be scored here.", icon=":material/info:")
else:
    try:
        classifier, classifier_card = cached_classifier(str(SHIPPED_CLASSIFIER), changed_at(SHIPPED_CLASSIFIER))
    except LabError as error:
        show_error(error)
if classifier is not None and recording is not None:
    st.caption(f"A small CNN trained by the project on MNIST's training digits alone reads each sample: "
               f"{classifier_card['metrics']['test_accuracy']:.2%} right on the 10,000 test digits (its card). "
               f"A sample counts as recognised when the classifier gives one digit a probability above {CONFIDENT}.")
    row = st.columns([1, 1, 3], vertical_alignment="bottom")
    count = row[0].number_input("Samples to score", 10, 1000, 100, 10, key="dif_score_n", help="Drawn with the settings above, 250 at a time.")
    if row[1].button("Score a larger batch", key="dif_score", icon=":material/fact_check:"):
        try:
            model, schedule, _ = cached_model(*st.session_state.dif_generated[:2])
            bar = st.progress(0.0, "Drawing samples…")
            started = datetime.now()
            images, labels = generate(model, schedule, replace(recording.settings, n=int(count)),
                                      progress=lambda done, total: bar.progress(min(1.0, done / total), f"Drawing samples: step {done:,} of {total:,}"))
            bar.empty()
            st.session_state.dif_scored = (st.session_state.dif_generated[0], recording.settings, score_samples(classifier, images, labels),
                                           (datetime.now() - started).total_seconds())
        except LabError as error:
            show_error(error)
    scored = st.session_state.get("dif_scored")
    if scored and scored[0] == st.session_state.dif_generated[0] and replace(scored[1], n=recording.settings.n) == recording.settings:
        score, what = scored[2], f"{scored[2].count:,} fresh samples (drawn in {duration(scored[3])})"
    else:
        score, what = score_samples(classifier, recording.images, recording.labels), f"the {recording.settings.n} samples in the player"
    numbers, bars = st.columns([1, 2])
    numbers.metric("Recognised", f"{score.recognised_share:.0%}", help=f"Share read with confidence above {CONFIDENT}. Real MNIST digits: about 97%.")
    if score.matching_share is not None:
        asked = f"digit {recording.settings.digit}" if recording.settings.digit is not None else "digit asked for (0-9 in turn)"
        numbers.metric(f"Read as the {asked}", f"{score.matching_share:.0%}", help="At any confidence.")
    numbers.caption(f"Scored: {what}.")
    bars.plotly_chart(digit_bars(score.histogram, score.count), key="dif_digit_bars")
if sources:
    st.markdown("##### What guidance costs")
    guidance_section(source, sources[source], lambda s=source: cached_model(s, changed_at(Path(s))), classifier, data)

# (4) train your own
st.subheader("4 · Train your own")
st.radio("Start from", list(PRESET_LABELS), format_func=PRESET_LABELS.get, horizontal=True, key="dif_preset", on_change=apply_preset,
         help="Fills in every setting below; each can then be changed.")
columns = st.columns(4) + st.columns(4)
for column, (name, (label, help_text)) in zip(columns, NUMBERS.items()):
    if name == "learning_rate":
        column.number_input(label, step=1e-4, format="%.4g", help=help_text, **bound(f"dif_{name}", (DDPMTrainConfig, name)))
    else:
        column.number_input(label, step=1, help=help_text, **bound(f"dif_{name}", (DDPMTrainConfig, name)))
columns[6].selectbox("Schedule · schedule", SCHEDULES, help="linear: DDPM's betas; cosine: Improved DDPM's.", **bound("dif_schedule", (DDPMTrainConfig, "schedule")))
columns[7].checkbox("Conditional · conditional", help="Also learn which digit is which, so you can ask for one and use guidance.", **bound("dif_conditional", (DDPMTrainConfig, "conditional")))
address_notes("dif")
share_box("dif")
config = None
try:
    values = {name: st.session_state[f"dif_{name}"] for name in FIELDS}
    values = {name: (value if name in ("schedule", "conditional") else type(getattr(PRESETS["quick"], name))(value)) for name, value in values.items()}
    asked = replace(PRESETS[st.session_state.dif_preset], **values).validate()
    check_step_limit("ddpm", asked.epochs)
    config = asked
except (ConfigError, TypeError, ValueError, OverflowError) as error:
    show_error(error if isinstance(error, ConfigError) else f"A setting is not a number: {error}")
expected = None  # seconds, for the queue's estimate of the wait behind this run
if config is not None:
    images = min(config.train_images or 60_000, 60_000)
    try:
        speed = measured_speed({**config.__dict__, "channel_mults": list(config.channel_mults)})
        quick = PRESETS["quick"]
        metrics = st.columns(3)
        expected, basis = estimated_seconds(config, images, speed, runs)
        metrics[0].metric("Time to train", f"≈ {duration(expected)}", help=f"Estimated {basis}. Once it runs, the time left is measured on the run itself.")
        metrics[1].metric("Speed on this device", f"{speed:,.0f} images/s", help="Measured with the real training loop for this network and batch.")
        metrics[2].metric("Digits seen", f"{config.epochs * images:,}", help="Epochs × training digits.")
        if config.width == quick.width and config.depth == quick.depth and config.batch_size == quick.batch_size:
            st.caption(f"The quick preset (3 epochs on 20,000 digits) already draws recognisable digits; on this device it takes "
                       f"≈ {duration(training_seconds(quick, quick.train_images, speed))}.")
    except LabError as error:
        show_error(error)
if data is None:
    st.caption("Training needs MNIST: see section 1.")
if st.button("Train", type="primary", disabled=config is None or data is None or job_running("dif"), key="dif_train", icon=":material/play_arrow:"):
    try:
        make_room(board)
        folder = new_run_folder(preset_of(config) or "custom", owner=visitor_token())
        command = f"python -m engine.ddpm train --preset {st.session_state.dif_preset} " + " ".join(
            f"--{name.replace('_', '-')} {value}" if not isinstance(value, bool) else f"--{'' if value else 'no-'}{name.replace('_', '-')}" for name, value in values.items()
        ) + f" --out {folder}"
        start_job("dif", f"DDPM {folder.name}", lambda report, c=config, d=data, f=folder, m=command: train(c, d, report, out=f, command=m),
                  info={"folder": str(folder)}, expected_seconds=expected)
        st.rerun()  # Train was drawn enabled before the job existed: draw the page again with Stop instead
    except LabError as error:
        show_error(error)
view = job_panel("dif", draw_live, unit="step")
if view is not None and view.state in (JobState.DONE, JobState.STOPPED) and view.result is not None:
    result, folder = view.result, view.info.get("folder")
    stopped = f", stopped at step {result.steps:,}" if result.stopped else ""
    st.success(f"Validation loss **{result.val_loss:.4f}** (best {result.best_val_loss:.4f}) after {result.steps:,} steps, {result.epochs:.2f} epochs{stopped}; "
               f"{duration(result.seconds)} of training. Kept in `{shown_path(folder)}`: pick it under **Generate from** above.", icon=":material/check_circle:")
    curve, grid = st.columns([3, 2])
    curve.plotly_chart(loss_curves(view.metrics, "Loss of your run"), key="dif_result_curve")
    if result.samples is not None:
        with grid:
            show_grid(result.samples, "Samples at the end of the run (DDIM, 0-9 in turn)" if result.config.conditional else "Samples at the end of the run",
                      columns=5 if len(result.samples) <= 20 else 10, scale="unit", width_px=400)

resumable = {run.name: run for run in runs if run.resumable}
for note in runs.skipped:
    st.caption(f":material/warning: {note}")
if resumable:
    with st.expander("Continue a run", expanded=view is not None and view.state.finished):
        chosen = resumable[st.selectbox("Run", list(resumable), key="dif_resume_run", format_func=lambda name: (
            f"{name} (epoch {resumable[name].epoch:g} of {resumable[name].config.epochs})"))]
        target = st.number_input("Continue to epoch", int(chosen.epoch) + 1, 1000, max(chosen.config.epochs, int(chosen.epoch) + 1), key=f"dif_resume_to_{chosen.name}",
                                 help="From its last checkpoint, with the settings it started with.")
        if st.button("Resume", key="dif_resume", disabled=data is None or job_running("dif"), icon=":material/resume:"):
            try:
                check_step_limit("ddpm", int(target))
                resumed = replace(chosen.config, epochs=int(target))
                start_job("dif", f"DDPM {chosen.name} (resumed)", lambda report, c=resumed, d=data, f=chosen.folder: train(c, d, report, out=f, resume=f),
                          info={"folder": str(chosen.folder)})
                st.rerun()
            except ConfigError as error:
                show_error(error)
if runs:
    keep, button = st.columns([3, 1], vertical_alignment="bottom")
    kept = keep.selectbox("Download a run to keep it (checkpoints and cards, zipped)", [run.name for run in runs], key="dif_download_run")
    button.download_button("Download", lambda f=ddpm_runs_dir() / kept: export_zip(f), f"{kept}.zip", "application/zip", key="dif_download_zip",
                           icon=":material/download:")
st.caption(f"Each run is kept in its own folder under {shown_path(ddpm_runs_dir())} (DLLAB_RUNS_DIR), with its `last` and `best` checkpoints.")
