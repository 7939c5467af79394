"""Serves the Shakespeare GPT page only: what the chosen settings will cost (parameters, memory, time) and their schedule."""

from __future__ import annotations

import streamlit as st

from engine.core.device import autocast_dtype, pick_device
from engine.core.runs import RunList
from engine.gpt.estimate import StepTime, count_params, estimate_memory, eta_seconds, run_shape, time_iterations
from engine.gpt.runs import iteration_ms
from engine.gpt.train import CPU, TINY, GPTTrainConfig
from ui.format import duration
from ui.gpt_handout import handout
from ui.runs import lr_schedule, megabytes


@st.cache_resource(show_spinner="Timing the tiny and CPU presets on this device…")
def fitted_step_time(device: str) -> StepTime:
    return StepTime.fit((TINY, time_iterations(TINY, 65, 3, device)), (CPU, time_iterations(CPU, 65, 2, device)))


def headline_metrics(config: GPTTrainConfig, params, memory, ms: float, basis: str) -> None:
    metrics = st.columns(4)
    metrics[0].metric("Parameters", f"{params.non_embedding / 1e6:.2f} M", help="nanoGPT's count: all but the position embeddings.")
    metrics[1].metric("Tokens per iteration", f"{config.tokens_per_iter:,}", help="batch_size × block_size × gradient_accumulation_steps")
    metrics[2].metric("Training memory", f"≈ {megabytes(memory.total)}", help="An estimate: 16 bytes per parameter (weights, gradients, AdamW) plus activations.")
    metrics[3].metric("Time to train", f"≈ {duration(eta_seconds(config, ms))}", basis.split(" ")[0].rstrip(":"), delta_color="off", delta_arrow="off",
                      help="Iterations plus evaluations, from the time per iteration below.")


def estimates_section(config: GPTTrainConfig | None, data, name: str | None, runs: RunList) -> float | None:
    """The cost of a run with these settings, a button that times them, the LR schedule and the handout;
    returns the milliseconds per iteration, which the board uses to place the job in its queue.
    Nothing without a config: the settings' error is shown above instead."""
    if config is None:
        return None
    vocab, device = data.tokenizer.vocab_size if data is not None else 65, pick_device()
    params = count_params(config, vocab)
    memory = estimate_memory(config, vocab, autocast_dtype(device).itemsize)
    shape = (device.type, vocab, *(getattr(config, field) for field in ("n_layer", "n_head", "n_embd", "block_size", "bias", "batch_size", "gradient_accumulation_steps")))
    timed = st.session_state.setdefault("gpt_timed", {})
    ms, basis = iteration_ms(config, vocab, device.type, runs, fitted_step_time(device.type), timed.get(shape))
    headline_metrics(config, params, memory, ms, basis)
    numbers, schedule = st.columns([3, 2])
    numbers.caption(
        f"Parameters: {params.non_embedding / 1e6:.2f} M without the position embeddings (as nanoGPT prints), {params.total / 1e6:.2f} M in all "
        f"({params.total:,}). Memory: {megabytes(memory.parameters)} for weights, gradients and AdamW's moments, about "
        f"{megabytes(memory.activations)} of activations. Time: {ms:,.0f} ms per iteration, {basis}."
    )
    if numbers.button("Time 3 iterations of these settings", key="gpt_time", icon=":material/timer:"):
        with st.spinner(f"Timing 4 iterations (about {duration(4 * ms / 1000)})…"):
            timed[shape] = time_iterations(config, vocab, 3, device)
        st.rerun()
    schedule.plotly_chart(lr_schedule(config, height=220), key="gpt_lr_schedule")
    handout(config, run_shape(config, len(data.train) if data is not None else None), name)
    return ms
