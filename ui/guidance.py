"""The diffusion page's guidance trade-off: the sweep kept in a checkpoint's card, or one measured on demand as a job."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from engine.core.checkpoints import read_card
from engine.core.errors import LabError
from engine.core.jobs import JobState
from engine.ddpm.classifier import DigitClassifier
from engine.ddpm.data import DigitData
from engine.ddpm.quality import CLOSE_TO_REAL, UNCONDITIONAL, read_sweep, reference, suggested_guidance, sweep
from ui.diffusion import guidance_tradeoff, sweep_table
from ui.errors import show_error
from ui.job_panel import job_panel, job_running, start_job

ON_DEMAND = [UNCONDITIONAL, 1.0, 2.0, 3.0]
ON_DEMAND_N = 100  # per guidance value: a minute or two on two cores; the bench uses 500


@st.cache_resource(max_entries=2, show_spinner="Reading the features of MNIST's test digits…")
def cached_reference(_classifier: DigitClassifier, _data: DigitData, key: tuple, n: int):
    return reference(_classifier, _data, n)


def show_rows(rows: list, real: dict | None, where: str) -> None:
    chart, table = st.columns([2, 3])
    chart.plotly_chart(guidance_tradeoff(rows, real.get("recognised") if real else None), key=f"ddpm_tradeoff_{where}")
    table.dataframe(sweep_table(rows), hide_index=True)
    if real:
        table.caption(f"{rows[0].n:,} samples each. Real digits, for scale: {real['n']:,} of MNIST's training digits are {real['recognised']:.1%} recognised and "
                      f"at distance {real['distance']:.1f} from the test digits (1×). Distance: the Fréchet distance between "
                      f"the classifier's hidden features of the samples and of the 10,000 test digits, FID's formula.")
    best = suggested_guidance(rows)
    if best is not None:
        table.caption(f"Suggested guidance: **{best:g}**, the lowest at which ≥ 95% of digits are recognised and read as the digit asked, "
                      f"while staying within {CLOSE_TO_REAL:g}× real digits' distance (or the most recognised one that stays there).")


def guidance_section(source: str, label: str, model_loader, classifier: DigitClassifier | None, data: DigitData | None) -> None:
    """What guidance costs, for the model `source`: its card's sweep when it has one, and a sweep on demand."""
    st.markdown("**Guidance trades variety for clarity.** Each point draws digits one way and measures two things: the share recognised, "
                "and how far their spread is from real digits' (a model that draws one perfect 7 again and again is recognised every time, "
                "and far from real digits).")
    try:
        recorded = read_sweep(read_card(Path(source)))
    except LabError:
        recorded = None
    if recorded is not None:
        rows, fields = recorded
        show_rows(rows, fields.get("real_digits"), "card")
        st.caption(f"Measured for {label} with {fields.get('sampler', 'DDIM')}, seed {fields.get('seed', 0)}, by `{fields.get('command', '?')}`; kept in its card.")
    view = job_panel("ddpm_sweep", lambda view: None, unit="sampling step")
    measured = view is not None and view.state in (JobState.DONE, JobState.STOPPED) and view.info.get("source") == source and view.result
    if measured:
        show_rows(view.result, view.info.get("real"), "measured")
        st.caption(f"Measured just now: {ON_DEMAND_N} samples per way of sampling, DDIM 50 steps, seed 0. Fewer samples than the card's sweep, "
                   f"so each figure moves by a few points from one seed to another.")
    if classifier is None or data is None:
        st.caption("Measuring needs MNIST's test digits and the classifier: see sections 2 and 3.")
        return
    if st.button(f"Measure the trade-off for {label}", key="ddpm_measure", disabled=job_running("ddpm_sweep"), icon=":material/query_stats:",
                 help=f"{ON_DEMAND_N} digits each: unconditional, then guidance 1, 2 and 3. A minute or more; it waits its turn like a training."):
        try:
            ref = cached_reference(classifier, data, (data.fingerprint, ON_DEMAND_N), ON_DEMAND_N)
            model, schedule, _ = model_loader()
            real = {"n": ref.n, "recognised": ref.real_recognised, "distance": ref.real_distance}
            start_job("ddpm_sweep", f"guidance sweep of {label}",
                      lambda report: sweep(model, schedule, classifier, ref, ON_DEMAND, ON_DEMAND_N, progress=report.progress,
                                           should_stop=lambda: report.stop_requested),
                      info={"source": source, "real": real, "doing": "Measuring"})
            st.rerun()
        except LabError as error:
            show_error(error)
