"""The job panel every training page uses: start, stop, progress, and a live view while it runs.

The job's id lives in a plain page-prefixed session key (`<prefix>_job_id`), not a widget key,
so a run survives navigating to another page and back; after a reload (a new session) the page
finds the visitor's newest job from the board instead. What a page needs to draw its job again
(its run folder, its data's name) travels in the job's `info`, not in the session.

A job may wait in the board's queue first: the panel then shows its place and estimated wait, live,
with Cancel, and turns into the training view when it starts. Each redraw tells the board someone is
watching; in public mode a job nobody watches is stopped after a while and kept.

While the job runs, the live part is a fragment with `run_every`: the page's full run draws it
once, and the fragment's first timed rerun then stays in a loop that redraws it in place every
`interval` seconds until the job ends, and asks for one full rerun, which draws the results. A
fragment rerun per update would cost the browser a rerender of the whole page and the server a
script run each second; on a two-core machine both are taken from the training. Two rules follow
from Streamlit's scheduling: a click inside a running fragment waits for that run to end, so Stop
is drawn outside the fragment, where its click interrupts the loop at once; and `draw_live` is
called several times in one script run, so what it draws must not carry a fixed widget key.
"""

from __future__ import annotations

import html
from typing import Any, Callable

import streamlit as st

from engine.core.jobs import Job, JobState, JobView, Reporter, board
from ui.errors import show_error
from ui.visitor import visitor_token

_STATE_LABEL = {
    JobState.QUEUED: "Waiting to start",
    JobState.RUNNING: "Training",
    JobState.DONE: "Finished",
    JobState.STOPPED: "Stopped — the result so far is kept",
    JobState.FAILED: "Failed",
    JobState.CANCELLED: "Cancelled before it started",
}


def _key(prefix: str) -> str:
    return f"{prefix}_job_id"


def start_job(prefix: str, name: str, run: Callable[[Reporter], Any], info: dict | None = None, expected_seconds: float | None = None) -> Job:
    """Submit `run` to the process-wide board for this visitor: it starts now, or waits its turn in the queue."""
    job = board.submit(name, run, owner=visitor_token(), page=prefix, info=info, expected_seconds=expected_seconds)
    st.session_state[_key(prefix)] = job.id
    return job


def current_job(prefix: str) -> Job | None:
    """This page's job for this visitor: the one this session started, else (after a reload) their newest."""
    job = board.get(st.session_state.get(_key(prefix)))
    if job is None or job.owner != visitor_token():
        job = board.latest(visitor_token(), prefix)
        if job is not None:
            st.session_state[_key(prefix)] = job.id
    return job


def job_running(prefix: str) -> bool:
    """True while this page's job runs or waits: the page then offers Stop, not another Train."""
    job = current_job(prefix)
    return job is not None and not job.state.finished


def duration_words(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"


def progress_bar_html(fraction: float, label: str) -> str:
    """A progress bar that does not animate: st.progress's transition keeps a software-rendered
    browser repainting, about a tenth of a core for as long as the job runs."""
    percent = round(100 * min(1.0, max(0.0, fraction)), 1)
    return (
        f'<div role="progressbar" aria-label="{html.escape(label)}" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{percent:g}" '
        f'style="height:0.5rem;border-radius:0.25rem;background:rgba(151,166,195,0.25);margin-bottom:0.5rem">'
        f'<div style="width:{percent:g}%;height:100%;border-radius:0.25rem;background:#1f4e99"></div></div>'
    )


def _waiting(view: JobView) -> str:
    place = view.queue_place or 1
    ahead = "next to start" if place == 1 else f"{place - 1} ahead of yours"
    slots = "one training" if board.max_running == 1 else f"{board.max_running} trainings"
    text = (f":material/hourglass_top: **Waiting for a free slot** · place {place} in the queue ({ahead}) · starts in about "
            f"{duration_words(max(view.wait_seconds or 0, 1))} · this server runs {slots} at a time.")
    if board.idle_limit is not None:
        text += f" Keep this page open: a training that no page shows for {board.idle_limit / 60:g} minutes gives up its place."
    return text


def _status(view: JobView, unit: str) -> str:
    if view.state is JobState.QUEUED:
        return _waiting(view)
    if view.state is JobState.CANCELLED:
        return f"**{_STATE_LABEL[view.state]}**" + (f" · it left the queue because {view.stop_reason}" if view.stop_reason else "")
    progress = f"{unit} {view.done:,} of {view.total:,}" if view.total else "starting"
    state = "Stopping" if view.stop_requested and not view.state.finished else _STATE_LABEL[view.state]
    if view.state is JobState.RUNNING and isinstance(view.info.get("doing"), str):  # not every job trains: a sweep measures
        state = view.info["doing"]
    if view.state is JobState.STOPPED and view.stop_reason:
        state = f"Stopped because {view.stop_reason} — the result so far is kept"
    phase = view.snapshots.get("phase")
    doing = f" · {phase}" if view.state is JobState.RUNNING and isinstance(phase, str) and phase != "training" else ""
    left = ""
    made = view.done - view.first_done
    if view.state is JobState.RUNNING and made > 0 and view.done < view.total:  # measured on this run as it goes: it holds on a loaded machine
        left = f" · about {duration_words(view.seconds * (view.total - view.done) / made)} left at this pace"
    return f"**{state}** · {progress}{doing} · {view.seconds:.1f} s elapsed{left}"


def job_panel(prefix: str, draw_live: Callable[[JobView], None], unit: str = "iteration", interval: float = 1.0) -> JobView | None:
    """Stop, progress and, while it runs, `draw_live(view)` for this page's job; returns its view, or None without one."""
    job = current_job(prefix)
    if job is None:
        return None
    running = not job.state.finished
    waiting = job.state is JobState.QUEUED
    job.watched()
    if running and not waiting:  # above the live view, where it stays in reach
        st.button("Stop", key=f"{prefix}_stop", on_click=job.stop, disabled=job.view().stop_requested, icon=":material/stop:",
                  help="End the training and keep what it has")
    calls = []  # the full run calls the fragment once; every later call is one of its timed reruns

    @st.fragment(run_every=interval if running else None)
    def panel():
        calls.append(None)
        streaming = running and len(calls) > 1
        status, bar, live = st.empty(), st.empty(), st.empty()
        drawn = None
        started = job.state is not JobState.QUEUED
        while True:
            job.watched()
            view = board.view(job)
            if streaming and (view.state.finished or (not started and view.state is not JobState.QUEUED)):
                st.rerun()  # the whole page redraws with the results, and the fragment stops polling
            status.markdown(_status(view, unit))
            if view.state is not JobState.QUEUED:
                bar.html(progress_bar_html(view.done / view.total if view.total else 0.0, f"{unit}s done"))
            if view.state is JobState.FAILED:
                show_error(view.error or "The job failed without a message.")
            if view.state.finished:
                return  # the page draws the result itself
            if view.state is not JobState.QUEUED and len(view.metrics) != drawn:  # only new rows change the figures, so no element repeats in this run
                drawn = len(view.metrics)
                with live.container():
                    draw_live(view)
            if not streaming:
                return
            job.wait(interval)  # returns the moment the job ends, so the results do not wait for the next tick

    panel()
    if waiting:  # below the line that says what is waiting; when the job starts, the page redraws with Stop above
        st.button("Cancel", key=f"{prefix}_stop", on_click=job.stop, icon=":material/close:", help="Leave the queue")
    return board.view(job)
