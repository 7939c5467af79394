"""Serves the Inside the transformer page only: its numbered sections, each drawn from one traced prompt."""

from __future__ import annotations

import streamlit as st
import torch

from engine.gpt.inspect import Stage, Trace, stage_numbers, stage_weights, stages, tempered
from engine.gpt.sample import make_generator, sample_next
from ui.transformer import (
    attention_heatmap, attention_overview, flow_diagram, lens_figure, lens_table, position_label, position_norms_figure, probability_bars,
    show_toy_numbers, shown, stage_figure, step_norms_figure,
)
from ui.transformer_picker import Picked


def stage_clicked():
    points = st.session_state.itt_diagram["selection"]["points"]
    key = points[0].get("customdata") if points else None
    if isinstance(key, str):
        st.session_state.itt_stage = key


def flow_section(trace: Trace, picked: Picked, position: int) -> None:
    """The flow diagram, whose blocks select a stage, and that stage's numbers."""
    model, label = picked.model, position_label(trace, position)
    st.caption(f"The grey line is the residual stream: one vector of {model.config.n_embd} numbers for each of the prompt's {trace.length} positions. "
               f"Blocks above it read from it and add (+) their output back. "
               f"Click a block or a +, or choose a stage below, to see its numbers at position {label}.")
    keys = [stage.key for stage in stages(trace.n_layer)]
    if st.session_state.get("itt_stage") not in keys:
        st.session_state.itt_stage = "attention:0"
    st.plotly_chart(flow_diagram(trace, st.session_state.itt_stage, model.config.block_size), key="itt_diagram",
                    on_select=stage_clicked, selection_mode="points", config={"displayModeBar": False})
    stage = Stage.from_key(st.selectbox("Stage", keys, format_func=lambda key: Stage.from_key(key).label, key="itt_stage"))
    if picked.word:
        show_toy_numbers(trace, stage_numbers(trace, stage), stage_weights(model, stage), stage.label)
    else:
        st.plotly_chart(stage_figure(trace, stage_numbers(trace, stage, position), position, f"{stage.label}, at position {label}"),
                        key="itt_stage_numbers")
        st.caption("Each row is one vector, one coloured cell per entry (red above zero, blue below; hover for the value). "
                   "‖·‖ is the vector's length (L2 norm).")


def attention_section(trace: Trace, position: int) -> None:
    """One head's weights large, and every head of its layer small."""
    st.caption("Each head decides, for every position (row), how much to read from each earlier position (column). "
               "Rows sum to 1; the blank triangle is the future, which a GPT never sees. The orange row is your position.")
    L, H = trace.n_layer, trace.n_head
    if st.session_state.get("itt_layer", 0) >= L or st.session_state.get("itt_head", 0) >= H:
        st.session_state.itt_layer, st.session_state.itt_head = 0, 0
    pick_layer, pick_head = st.columns([1, 3])
    layer = pick_layer.selectbox("Layer", list(range(L)), format_func=lambda i: f"layer {i + 1}", key="itt_layer")
    head = pick_head.radio("Head", list(range(H)), format_func=lambda i: f"head {i + 1}", key="itt_head", horizontal=True)
    heatmap, overview = st.columns([3, 2])
    heatmap.plotly_chart(attention_heatmap(trace, layer, head, position), key="itt_attention")
    overview.plotly_chart(attention_overview(trace, layer, head), key="itt_attention_all")


def stream_section(trace: Trace, position: int) -> None:
    """What each step writes into the stream: everywhere, and at the position."""
    st.caption("How big a change each step makes: the length of the vector it adds to the stream at each position. "
               "The embedding starts the stream; a step with a small norm barely changes what the model 'thinks' there.")
    grid, here = st.columns([3, 2])
    grid.plotly_chart(step_norms_figure(trace), key="itt_norms")
    here.plotly_chart(position_norms_figure(trace, position), key="itt_position_norms")


def lens_section(trace: Trace, position: int, unit: str) -> None:
    """The stream unembedded after each layer: the guesses as a picture, and the position's top five as a table."""
    st.caption(f"Unembed the stream after each layer, as if the model stopped there: each cell shows the top guess for the next {unit} "
               "(on a prompt longer than 64, hover over a cell to read it) and how sure the model is of it (colour). Watch the guesses "
               f"become the final answer in the last row. After the embedding alone, the guess is often the {unit} itself: the output "
               "layer reuses the embedding matrix, and no layer has changed the stream yet.")
    st.plotly_chart(lens_figure(trace, position), key="itt_lens")
    st.dataframe(lens_table(trace, position), hide_index=True, key="itt_lens_table")


def append_sample(logits, temperature: float, vocabulary: tuple, word: bool, block_size: int):
    """Draw the next token as the sampler does (engine.gpt.sample.sample_next) and append it to the prompt."""
    token = sample_next(torch.from_numpy(logits), temperature, None, 1.0, make_generator(None, "cpu"))
    tokens = (st.session_state.itt_prompt.split() if word else list(st.session_state.itt_prompt)) + [vocabulary[token]]
    st.session_state.itt_prompt = (" " if word else "").join(tokens[-block_size:])
    p = float(tempered(logits, temperature)[token])
    st.session_state.itt_sampled = (st.session_state.itt_prompt, vocabulary[token], p, temperature, len(tokens) > block_size)


def last_sample_note(block_size: int, unit: str) -> None:
    """What the last click of Sample appended, while the prompt is still the one it made."""
    sampled = st.session_state.get("itt_sampled")
    if sampled and sampled[0] == st.session_state.itt_prompt:
        _, token, p, at, cropped = sampled
        st.caption(f"Last sample: {shown(token)!r}, which had probability {p:.1%} at temperature {at:g}."
                   + (f" The model reads at most {block_size} {unit}s, so the first one was dropped." if cropped else ""))


def next_token_section(trace: Trace, picked: Picked, position: int) -> None:
    """The final softmax at a temperature, and a button that samples from it."""
    unit, block_size = picked.unit, picked.model.config.block_size
    st.caption(f"The final softmax at position {position_label(trace, position)}. Temperature divides the logits before the softmax: "
               "below 1 sharpens the distribution toward the top guess, above 1 flattens it; the orange marks are the model's own (temperature 1).")
    temperature = st.slider("Temperature", 0.05, 3.0, 1.0, 0.05, key="itt_temperature")
    probs = tempered(trace.logits[position], temperature)
    st.plotly_chart(probability_bars(trace, position, probs, temperature), key="itt_bars")
    last = position == trace.length - 1
    st.button(f"Sample the next {unit} and append it", key="itt_sample", disabled=not last, icon=":material/casino:",
              on_click=append_sample, args=(trace.logits[position], temperature, trace.vocabulary, picked.word, block_size),
              help=None if last else f"Sampling continues the prompt: move the position to the last {unit} first.")
    last_sample_note(block_size, unit)


def toy_parameters_section(trace: Trace, picked: Picked) -> None:
    """Every matrix and vector of the toy, stage by stage; nothing for a model too big to print."""
    if not picked.word:
        return
    st.subheader("6. Every parameter of the toy")
    st.caption("The toy is small enough to print whole: these matrices and vectors are all the model knows.")
    with st.expander(f"All {picked.model.get_num_params(non_embedding=False)} parameters, stage by stage"):
        for part in stages(trace.n_layer):
            show_toy_numbers(trace, [], stage_weights(picked.model, part), part.label, key=f"itt_all_{part.key}")
