"""The diffusion page's training section: the settings seeded from a preset, the time to train, the job and its result,
continuing a run and downloading one."""

from __future__ import annotations

import time
from dataclasses import replace

import streamlit as st

from engine.core.cache import BackgroundResults
from engine.core.checkpoints import resumed_command
from engine.core.errors import ConfigError, LabError
from engine.core.jobs import JobState, JobView, board
from engine.core.runs import export_zip, make_room
from engine.core.settings import check_step_limit
from engine.ddpm.data import DigitData
from engine.ddpm.estimate import estimated_seconds, images_per_second, step_shape, training_digits, training_seconds
from engine.ddpm.runs import ddpm_runs_dir, new_run_folder
from engine.ddpm.schedule import SCHEDULES
from engine.ddpm.train import PRESETS, DDPMTrainConfig, preset_of, train
from ui.address import address_notes, bound, share_box
from ui.diffusion import loss_curves
from ui.errors import show_error
from ui.format import duration
from ui.images import show_grid
from ui.job_panel import job_panel, job_running, start_job
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


# One probe per network and batch per server, in a thread of its own, so the page above (the player) never waits
# for it; timed again after ten minutes, as the load changes.
SPEEDS = BackgroundResults(keep_seconds=600)
TIMING_POLL_S = 0.25
PROBE_DELAY_S = 1.0


def seed_settings() -> None:
    """The quick preset's settings, before any widget is drawn (a link's or the person's own stay)."""
    for name in FIELDS:
        st.session_state.setdefault(f"ddpm_{name}", getattr(PRESETS["quick"], name))
    st.session_state.setdefault("ddpm_preset", "quick")


def apply_preset():
    preset = PRESETS[st.session_state.ddpm_preset]
    st.session_state.update({f"ddpm_{name}": getattr(preset, name) for name in FIELDS})


def settings_form() -> None:
    st.radio("Start from", list(PRESET_LABELS), format_func=PRESET_LABELS.get, horizontal=True, key="ddpm_preset", on_change=apply_preset,
             help="Fills in every setting below; each can then be changed.")
    columns = st.columns(4) + st.columns(4)
    for column, (name, (label, help_text)) in zip(columns, NUMBERS.items()):
        if name == "learning_rate":
            column.number_input(label, step=1e-4, format="%.4g", help=help_text, **bound(f"ddpm_{name}", (DDPMTrainConfig, name)))
        else:
            column.number_input(label, step=1, help=help_text, **bound(f"ddpm_{name}", (DDPMTrainConfig, name)))
    columns[6].selectbox("Schedule · schedule", SCHEDULES, help="linear: DDPM's betas; cosine: Improved DDPM's.", **bound("ddpm_schedule", (DDPMTrainConfig, "schedule")))
    columns[7].checkbox("Conditional · conditional", help="Also learn which digit is which, so you can ask for one and use guidance.", **bound("ddpm_conditional", (DDPMTrainConfig, "conditional")))
    address_notes("ddpm")
    share_box("ddpm")


def checked_config() -> tuple[DDPMTrainConfig | None, dict]:
    """(the config the settings make, or None after showing why not; the settings as the config's types)."""
    values = {}
    try:
        values = {name: st.session_state[f"ddpm_{name}"] for name in FIELDS}
        values = {name: (value if name in ("schedule", "conditional") else type(getattr(PRESETS["quick"], name))(value)) for name, value in values.items()}
        config = replace(PRESETS[st.session_state.ddpm_preset], **values).validate()
        check_step_limit("ddpm", config.epochs)
        return config, values
    except (ConfigError, TypeError, ValueError, OverflowError) as error:
        show_error(error if isinstance(error, ConfigError) else f"A setting is not a number: {error}")
        return None, values


def time_to_train(config: DDPMTrainConfig, runs) -> float | None:
    """Shows the time to train, the speed and the digits seen; returns the seconds, for the queue's estimate of the wait
    (None while this device's speed is still being timed).

    The probe runs in the background and waits PROBE_DELAY_S before its steps, so they do not take the cores from the
    browser drawing the player above; the fragment's first timed rerun waits for it, then redraws the page once."""
    key = step_shape(config)

    def probe() -> float:
        time.sleep(PROBE_DELAY_S)
        return images_per_second(config)

    try:
        speed = SPEEDS.poll(key, probe)
    except LabError as error:
        show_error(error)
        return None
    calls = []  # the full run calls the fragment once; every later call is one of its timed reruns

    @st.fragment(run_every=None if speed is not None else 1.0)
    def estimate():
        calls.append(None)
        if speed is not None:
            return estimate_metrics(config, runs, speed)
        timing_metrics(config)
        if len(calls) == 1:
            return
        try:
            while SPEEDS.poll(key, probe) is None:
                time.sleep(TIMING_POLL_S)
        except LabError:
            pass  # the page's next run shows it, where the estimate goes
        st.rerun()  # the whole page, with the estimate and the Train button's figure for the queue

    return estimate()  # on the page's own run a fragment returns what its function does


def timing_metrics(config: DDPMTrainConfig) -> None:
    metrics = st.columns(3)
    metrics[0].metric("Time to train", "timing…", help="A few real training steps are being timed on this device; the estimate follows in seconds.")
    metrics[1].metric("Speed on this device", "timing…", help="Measured with the real training loop for this network and batch.")
    metrics[2].metric("Digits seen", f"{config.epochs * training_digits(config):,}", help="Epochs × training digits.")


def estimate_metrics(config: DDPMTrainConfig, runs, speed: float) -> float:
    """Shows the time to train, the speed and the digits seen; returns the seconds."""
    images, quick = training_digits(config), PRESETS["quick"]
    metrics = st.columns(3)
    expected, basis = estimated_seconds(config, images, speed, runs)
    metrics[0].metric("Time to train", f"≈ {duration(expected)}", help=f"Estimated {basis}. Once it runs, the time left is measured on the run itself.")
    metrics[1].metric("Speed on this device", f"{speed:,.0f} images/s", help="Measured with the real training loop for this network and batch.")
    metrics[2].metric("Digits seen", f"{config.epochs * images:,}", help="Epochs × training digits.")
    if config.width == quick.width and config.depth == quick.depth and config.batch_size == quick.batch_size:
        st.caption(f"The quick preset (3 epochs on 20,000 digits) already draws recognisable digits; on this device it takes "
                   f"≈ {duration(training_seconds(quick, quick.train_images, speed))}.")
    return expected


def train_command(values: dict, folder) -> str:
    """The CLI command that repeats this run, kept in its card."""
    return f"python -m engine.ddpm train --preset {st.session_state.ddpm_preset} " + " ".join(
        f"--{name.replace('_', '-')} {value}" if not isinstance(value, bool) else f"--{'' if value else 'no-'}{name.replace('_', '-')}" for name, value in values.items()
    ) + f" --out {folder}"


def train_button(config: DDPMTrainConfig | None, values: dict, data: DigitData | None, expected: float | None) -> None:
    if st.button("Train", type="primary", disabled=config is None or data is None or job_running("ddpm"), key="ddpm_train", icon=":material/play_arrow:"):
        try:
            make_room(board)
            folder = new_run_folder(preset_of(config) or "custom", owner=visitor_token())
            command = train_command(values, folder)
            start_job("ddpm", f"DDPM {folder.name}", lambda report, c=config, d=data, f=folder, m=command: train(c, d, report, out=f, command=m),
                      info={"folder": str(folder)}, expected_seconds=expected)
            st.rerun()  # Train was drawn enabled before the job existed: draw the page again with Stop instead
        except LabError as error:
            show_error(error)


def show_samples(container, samples, caption: str) -> None:
    with container:
        show_grid(samples, caption, columns=5 if len(samples) <= 20 else 10, scale="unit", width_px=400)


def draw_live(view: JobView):
    curve, grid = st.columns([3, 2])
    curve.plotly_chart(loss_curves(view.metrics, "Loss while training"))
    logged = [row for row in view.metrics if "images_per_s" in row]
    if logged:
        grid.metric("Speed", f"{logged[-1]['images_per_s']:,.0f} images/s")
    if "samples" in view.snapshots:
        epochs = [row["epoch"] for row in view.metrics if "epoch" in row]
        show_samples(grid, view.snapshots["samples"], f"Samples after epoch {epochs[-1]:g} (DDIM, the same noise each epoch)")
    else:
        grid.caption("A grid of samples appears at the end of each epoch.")


def show_result(view: JobView | None) -> None:
    """A finished or stopped run's numbers, loss curve and last samples."""
    if view is None or view.state not in (JobState.DONE, JobState.STOPPED) or view.result is None:
        return
    result, folder = view.result, view.info.get("folder")
    stopped = f", stopped at step {result.steps:,}" if result.stopped else ""
    st.success(f"Validation loss **{result.val_loss:.4f}** (best {result.best_val_loss:.4f}) after {result.steps:,} steps, {result.epochs:.2f} epochs{stopped}; "
               f"{duration(result.seconds)} of training. Kept in `{shown_path(folder)}`: pick it under **Generate from** above.", icon=":material/check_circle:")
    curve, grid = st.columns([3, 2])
    curve.plotly_chart(loss_curves(view.metrics, "Loss of your run"), key="ddpm_result_curve")
    if result.samples is not None:
        show_samples(grid, result.samples, "Samples at the end of the run (DDIM, 0-9 in turn)" if result.config.conditional else "Samples at the end of the run")


def train_section(data: DigitData | None, runs) -> JobView | None:
    """(4): the settings, the time they take, Train, the live job and its result; returns the job's view (None without one)."""
    st.subheader("4 · Train your own")
    settings_form()
    config, values = checked_config()
    expected = time_to_train(config, runs) if config is not None else None
    if data is None:
        st.caption("Training needs MNIST: see section 2.")
    train_button(config, values, data, expected)
    view = job_panel("ddpm", draw_live, unit="step")
    show_result(view)
    return view


def resume_section(runs, data: DigitData | None, view: JobView | None) -> None:
    """Continue a run from its last checkpoint to a later epoch, with the settings it started with."""
    resumable = {run.name: run for run in runs if run.resumable}
    if not resumable:
        return
    with st.expander("Continue a run", expanded=view is not None and view.state.finished):
        chosen = resumable[st.selectbox("Run", list(resumable), key="ddpm_resume_run", format_func=lambda name: (
            f"{name} (epoch {resumable[name].epoch:g} of {resumable[name].config.epochs})"))]
        target = st.number_input("Continue to epoch", int(chosen.epoch) + 1, 1000, max(chosen.config.epochs, int(chosen.epoch) + 1), key=f"ddpm_resume_to_{chosen.name}",
                                 help="From its last checkpoint, with the settings it started with.")
        if st.button("Resume", key="ddpm_resume", disabled=data is None or job_running("ddpm"), icon=":material/resume:"):
            try:
                check_step_limit("ddpm", int(target))
                resumed = replace(chosen.config, epochs=int(target))
                command = resumed_command(chosen.command, f"python -m engine.ddpm train --resume {chosen.folder} --epochs {int(target)}")
                start_job("ddpm", f"DDPM {chosen.name} (resumed)", lambda report, c=resumed, d=data, f=chosen.folder, m=command: train(c, d, report, out=f, resume=f, command=m),
                          info={"folder": str(chosen.folder)})
                st.rerun()
            except ConfigError as error:
                show_error(error)


def runs_section(runs, data: DigitData | None, view: JobView | None) -> None:
    """The visitor's runs: folders that could not be read, continuing one, downloading one, and where they are kept."""
    for note in runs.skipped:
        st.caption(f":material/warning: {note}")
    resume_section(runs, data, view)
    if runs:
        keep, button = st.columns([3, 1], vertical_alignment="bottom")
        kept = keep.selectbox("Download a run to keep it (checkpoints and cards, zipped)", [run.name for run in runs], key="ddpm_download_run")
        button.download_button("Download", lambda f=ddpm_runs_dir() / kept: export_zip(f), f"{kept}.zip", "application/zip", key="ddpm_download_zip",
                               icon=":material/download:")
    st.caption(f"Each run is kept in its own folder under {shown_path(ddpm_runs_dir())} (DLLAB_RUNS_DIR), with its `last` and `best` checkpoints.")
