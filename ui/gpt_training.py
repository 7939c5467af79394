"""Serves the Shakespeare GPT page only: Train, the live view, the finished run, Continue a run, and Compare runs."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from engine.core.errors import LabError
from engine.core.runs import RunList
from engine.core.jobs import JobView, board
from engine.core.runs import export_zip, make_room
from engine.core.settings import check_step_limit
from engine.gpt.estimate import eta_seconds
from engine.gpt.runs import SHAKESPEARE, TEXT_FILE, cli_command, new_run_folder, read_history, resume_config, run_text, train_run
from engine.gpt.train import CPU, PRESETS, REFERENCE_RECIPE, REFERENCE_VAL_LOSS, GPTTrainConfig, preset_of
from ui.errors import show_error
from ui.format import duration
from ui.job_panel import job_panel, job_running, start_job
from ui.runs import runs_table, training_curves, val_curves
from ui.visitor import shown_path, visitor_token

REFERENCE = ("nanoGPT's CPU run", CPU.max_iters, REFERENCE_VAL_LOSS["cpu"])


def reference_for(view: JobView):
    """The job's run folder, and nanoGPT's result for its recipe when it ran one of them on tiny Shakespeare."""
    folder, trained_on, preset = (view.info.get(key) for key in ("folder", "data", "preset"))
    recipe = REFERENCE_RECIPE.get(preset)
    if recipe is not None and trained_on == SHAKESPEARE:
        return folder, (f"nanoGPT's {recipe.upper()} run", PRESETS[recipe].max_iters, REFERENCE_VAL_LOSS[recipe])
    return folder, None


def latest_sample(column, view: JobView, caption: str) -> None:
    """What the model wrote at its last evaluation, if it has written anything yet."""
    if "sample" in view.snapshots:
        column.caption(caption)
        column.code(view.snapshots["sample"], language=None, wrap_lines=True)


def draw_live(view: JobView):
    curve, side = st.columns([3, 2])
    curve.plotly_chart(training_curves(view.metrics, "Loss while training", reference_for(view)[1]))
    logged = [row for row in view.metrics if "lr" in row]
    if logged:
        rate, speed = side.columns(2)
        rate.metric("Learning rate now", f"{logged[-1]['lr']:.2e}")
        speed.metric("Time per iteration", f"{logged[-1]['ms_per_iter']:,.0f} ms", f"{logged[-1]['tokens_per_s']:,.0f} tokens/s", delta_color="off", delta_arrow="off")
    evaluated = [row["step"] for row in view.metrics if "val_loss" in row]
    if evaluated:
        latest_sample(side, view, f"What the model writes at iteration {evaluated[-1]:,} (from an empty prompt):")


def train_button(config: GPTTrainConfig | None, data, text: str | None, name: str | None, ms: float | None) -> None:
    """Train, enabled once the settings and the text are good: a new run folder, and the job that fills it."""
    if not st.button("Train", type="primary", disabled=config is None or data is None or job_running("gpt"), key="gpt_train", icon=":material/play_arrow:"):
        return
    try:
        make_room(board)
        folder = new_run_folder(preset_of(config) or "custom", owner=visitor_token())
        command = cli_command(config, folder, folder / TEXT_FILE if name != SHAKESPEARE else None)
        start_job("gpt", f"GPT {folder.name}", lambda report, c=config, d=data, f=folder, t=text: train_run(c, d, report, f, t, command=command),
                  info={"folder": str(folder), "data": name, "preset": preset_of(config)}, expected_seconds=eta_seconds(config, ms))
        st.rerun()  # Train was drawn enabled before the job existed: draw the page again with Stop instead
    except LabError as error:
        show_error(error)


def result_section(view: JobView | None) -> None:
    """A finished job's best loss, its curves and last sample; its run is offered first under Continue a run."""
    if view is None or not view.state.finished or view.result is None:
        return
    result, (folder, reference) = view.result, reference_for(view)
    stopped = f", stopped at iteration {result.iterations:,}" if result.stopped else ""
    if result.best_val_loss < float("inf"):
        st.success(f"Best val loss **{result.best_val_loss:.4f} nats/char** at iteration {result.best_iter:,} of {result.config.max_iters:,}{stopped}; "
                   f"{duration(result.seconds)} of training. Kept in `{shown_path(folder)}`.", icon=":material/check_circle:")
    else:
        st.warning(f"Stopped at iteration {result.iterations:,}, before its first evaluation finished: there is no loss to report and no "
                   "checkpoint to keep.", icon=":material/info:")
    curve, sample = st.columns([3, 2])
    curve.plotly_chart(training_curves(read_history(folder) if folder else view.metrics, "Loss of your run", reference), key="gpt_result_curve")
    latest_sample(sample, view, "What it wrote at the last evaluation (from an empty prompt):")
    if folder and st.session_state.get("gpt_resume_default") != view.id:  # offer this run first below
        st.session_state.gpt_resume_default, st.session_state.gpt_resume_run = view.id, Path(folder).name


def resume_job(chosen, target: int) -> None:
    """Continue `chosen` from its best checkpoint to iteration `target`, in the same folder."""
    try:
        check_step_limit("gpt", target)
        resumed, resumed_data = resume_config(chosen, target), run_text(chosen)
        start_job("gpt", f"GPT {chosen.name} (resumed)", lambda report, c=resumed, d=resumed_data, f=chosen.folder: train_run(c, d, report, f, resume=True),
                  info={"folder": str(chosen.folder), "data": chosen.data_name, "preset": preset_of(chosen.config)})
        st.rerun()
    except LabError as error:
        show_error(error)


def resume_section(runs: RunList, view: JobView | None) -> None:
    """Continue a run: pick one with a checkpoint and how far it should now go."""
    resumable = {run.name: run for run in runs if run.resumable and run.config is not None}
    if not resumable:
        return
    with st.expander("Continue a run", expanded=view is not None and view.state.finished):
        if st.session_state.get("gpt_resume_run") not in resumable:
            st.session_state.pop("gpt_resume_run", None)
        chosen = resumable[st.selectbox("Run", list(resumable), key="gpt_resume_run", format_func=lambda run: (
            f"{run} ({resumable[run].state}, checkpoint at iteration {resumable[run].best_iter:,} of {resumable[run].config.max_iters:,})"))]
        reached, planned = chosen.best_iter or 0, chosen.config.max_iters
        target = st.number_input("Continue to iteration", reached + 1, 1_000_000, planned if planned > reached else reached + max(planned // 2, 1),
                                 key=f"gpt_resume_to_{chosen.name}", help="From its best checkpoint; beyond lr_decay_iters the learning rate stays at min_lr.")
        if st.button("Resume", key="gpt_resume", disabled=job_running("gpt"), icon=":material/resume:"):
            resume_job(chosen, int(target))


def training_section(config: GPTTrainConfig | None, data, text: str | None, name: str | None, ms: float | None, runs: RunList) -> None:
    """Train, the job panel, the finished run and Continue a run, in the page's order."""
    train_button(config, data, text, name, ms)
    view = job_panel("gpt", draw_live)
    result_section(view)
    resume_section(runs, view)


def compare_section(runs: RunList) -> None:
    """Every run in a table, their val curves overlaid against nanoGPT's, and a zip of one to keep."""
    for note in runs.skipped:
        st.caption(f":material/warning: {note}")
    if not runs:
        st.info("No runs yet. Each training started here is kept in its own folder under DLLAB_RUNS_DIR (default runs/gpt), so it can be resumed and compared.")
        return
    st.dataframe(runs_table(runs), hide_index=True)
    shown = st.multiselect("Runs to plot", [run.name for run in runs], default=[run.name for run in runs[:6]])  # no key: a new run joins the plot
    st.plotly_chart(val_curves([run for run in runs if run.name in shown], REFERENCE), key="gpt_compare_curves")
    st.caption(f"Runs kept under {shown_path(runs[0].folder.parent)}. The gray line is nanoGPT's CPU recipe on tiny Shakespeare "
               "(val loss 1.8857 at iteration 2,000); runs on other texts are not comparable with it.")
    keep, button = st.columns([3, 1], vertical_alignment="bottom")
    kept = keep.selectbox("Download a run to keep it (weights, card and history, zipped)", [run.name for run in runs], key="gpt_download_run")
    button.download_button("Download", lambda f=runs[0].folder.parent / kept: export_zip(f), f"{kept}.zip", "application/zip",
                           key="gpt_download_zip", icon=":material/download:")
