"""The job panel every training page uses: start, stop, progress, and a live view while it runs.

The job's id lives in a plain page-prefixed session key (`<prefix>_job_id`), not a widget key,
so a run survives navigating to another page and back. The live part is one fragment that
polls every `interval` seconds only while the job runs; when the job ends the fragment asks
for one full rerun, which draws the results and defines the fragment again without polling.
"""

from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from engine.core.errors import BusyError
from engine.core.jobs import Job, JobState, JobView, Reporter, board
from ui.errors import show_error

_STATE_LABEL = {
    JobState.QUEUED: "Waiting to start",
    JobState.RUNNING: "Training",
    JobState.DONE: "Finished",
    JobState.STOPPED: "Stopped — the result so far is kept",
    JobState.FAILED: "Failed",
}


def _key(prefix: str) -> str:
    return f"{prefix}_job_id"


def start_job(prefix: str, name: str, run: Callable[[Reporter], Any]) -> Job | None:
    """Submit `run` to the process-wide board; a full board is told to the person, not raised."""
    try:
        job = board.submit(name, run)
    except BusyError as error:
        show_error(error)
        return None
    st.session_state[_key(prefix)] = job.id
    return job


def current_job(prefix: str) -> Job | None:
    return board.get(st.session_state.get(_key(prefix)))


def job_running(prefix: str) -> bool:
    job = current_job(prefix)
    return job is not None and not job.state.finished


def job_panel(prefix: str, draw_live: Callable[[JobView], None], unit: str = "iteration", interval: float = 1.0) -> JobView | None:
    """Progress, Stop and, while it runs, `draw_live(view)` for this page's job; returns its view, or None without one."""
    job = current_job(prefix)
    if job is None:
        return None
    polling = not job.state.finished

    @st.fragment(run_every=interval if polling else None)
    def panel():
        view = job.view()
        if polling and view.state.finished:
            st.rerun()  # the whole page redraws with the results, and this fragment stops polling
        status, stop = st.columns([5, 1], vertical_alignment="center")
        progress = f"{unit} {view.done:,} of {view.total:,}" if view.total else "starting"
        status.markdown(f"**{_STATE_LABEL[view.state]}** · {progress} · {view.seconds:.1f} s")
        if not view.state.finished:
            stop.button("Stop", key=f"{prefix}_stop", on_click=job.stop, disabled=view.stop_requested, icon=":material/stop:")
        st.progress(min(1.0, view.done / view.total) if view.total else 0.0)
        if view.state is JobState.FAILED:
            show_error(view.error or "The job failed without a message.")
        if not view.state.finished:
            draw_live(view)  # once it ends, the page draws the result itself

    panel()
    return job.view()
