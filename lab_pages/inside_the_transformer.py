"""Inside the transformer: one prompt's trip along a GPT's residual stream, with the model's real numbers."""

from pathlib import Path

import streamlit as st
import torch

from engine.core.checkpoints import changed_at
from engine.core.errors import LabError
from engine.gpt import runs as gpt_runs
from engine.gpt.checkpoint import load_model
from engine.gpt.inspect import Stage, stage_numbers, stage_weights, stages, tempered, trace_prompt
from engine.gpt.sample import make_generator, sample_next
from engine.gpt.toy import ToyConfig, train_toy
from ui.errors import show_error
from ui.visitor import visitor_token
from ui.transformer import (
    attention_heatmap, attention_overview, describe_checkpoint, describe_toy, flow_diagram, lens_figure, lens_table, position_label,
    position_norms_figure, probability_bars, show_computation, show_toy_numbers, shown, stage_figure, step_norms_figure,
)

SHAKESPEARE_PROMPT = "First Citizen:\nBefore we proceed any further, hear me speak."  # the first line of tiny Shakespeare
TOY_PROMPT = "UCLA is at"
SHIPPED, TOY = "shipped", "toy"


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def cached_model(path: str, modified: float):
    return load_model(path)  # (model, tokenizer, card)


@st.cache_resource(show_spinner="Training the toy on its four sentences (a second or two)…")
def cached_toy():
    return train_toy(ToyConfig())


def modified_time(choice: str) -> float:
    """When the choice's checkpoint last changed (0 for the toy): a checkpoint that a running training rewrote is loaded afresh."""
    return 0.0 if choice == TOY else changed_at(gpt_runs.SHIPPED_CHECKPOINT if choice == SHIPPED else Path(choice))


def picked_model(choice: str):
    """(model, tokenizer, what to say about it) for the picker's choice."""
    if choice == TOY:
        toy = cached_toy()
        return toy.model, toy.tokenizer, describe_toy(toy)
    path = gpt_runs.SHIPPED_CHECKPOINT if choice == SHIPPED else Path(choice)
    model, tokenizer, card = cached_model(str(path), modified_time(choice))
    return model, tokenizer, describe_checkpoint(model, card)


@st.cache_resource(max_entries=16)
def cached_trace(choice: str, modified: float, prompt: str):
    model, tokenizer, _ = picked_model(choice)
    return trace_prompt(model, tokenizer, prompt)


def model_changed():
    """A word prompt means nothing to a character model and the other way round: each kind starts from its own."""
    toy = st.session_state.itt_model == TOY
    if toy != st.session_state.get("itt_toy_prompted", False):
        st.session_state.itt_prompt = TOY_PROMPT if toy else SHAKESPEARE_PROMPT
        st.session_state.itt_toy_prompted = toy


def stage_clicked():
    points = st.session_state.itt_diagram["selection"]["points"]
    key = points[0].get("customdata") if points else None
    if isinstance(key, str):
        st.session_state.itt_stage = key


def append_sample(logits, temperature: float, vocabulary: tuple, word: bool, block_size: int):
    """Draw the next token as the sampler does (engine.gpt.sample.sample_next) and append it to the prompt."""
    token = sample_next(torch.from_numpy(logits), temperature, None, 1.0, make_generator(None, "cpu"))
    tokens = (st.session_state.itt_prompt.split() if word else list(st.session_state.itt_prompt)) + [vocabulary[token]]
    st.session_state.itt_prompt = (" " if word else "").join(tokens[-block_size:])
    p = float(tempered(logits, temperature)[token])
    st.session_state.itt_sampled = (st.session_state.itt_prompt, vocabulary[token], p, temperature, len(tokens) > block_size)


shipped = gpt_runs.shipped_available()
runs = [run for run in gpt_runs.list_runs(visitor=visitor_token()) if run.has_checkpoint]
choices = {SHIPPED: "Shakespeare GPT: the shipped model" + ("" if shipped else " (not in this copy of the lab yet)")}
choices.update({str(run.checkpoint): f"Your run {run.name}" + (f" (val loss {run.best_val_loss:.3f})" if run.best_val_loss else "")
                for run in runs})
choices[TOY] = "The toy: 2 layers, a 4-number stream, 11 words"
if st.session_state.get("itt_model") not in choices:  # a first visit, or a run that has gone
    st.session_state.itt_model = SHIPPED if shipped else (str(runs[0].checkpoint) if runs else TOY)
st.session_state.setdefault("itt_toy_prompted", st.session_state.itt_model == TOY)
st.session_state.setdefault("itt_prompt", TOY_PROMPT if st.session_state.itt_model == TOY else SHAKESPEARE_PROMPT)

st.title("Inside the transformer")
st.markdown(
    "Follow a prompt through a GPT. Each position's **token and position embeddings** start a vector, the *residual stream*; "
    "in every layer **attention** (which mixes in information from earlier positions) and an **MLP** (which works on each "
    "position alone) read the stream and *add* their output back to it; at the end the stream is **unembedded** into a score "
    "for every possible next character, and a **softmax** turns the scores into probabilities. Every number below comes "
    "from one traced run of the model on your prompt. Start with the toy model if this is new: it is small enough to print."
)
show_computation()

choice = st.selectbox("Model", list(choices), format_func=choices.get, key="itt_model", on_change=model_changed)
if choice == SHIPPED and not shipped:
    st.info(f"The shipped model ({gpt_runs.SHIPPED_CHECKPOINT.name}.safetensors in {gpt_runs.SHIPPED_CHECKPOINT.parent.name}/) is not "
            "in this copy of the lab yet. Pick one of your own runs or the toy above, or train a model on the Shakespeare GPT page "
            "(or `python -m engine.gpt train --preset cpu`) and come back.", icon=":material/info:")
    st.stop()
try:
    model, tokenizer, about = picked_model(choice)
except LabError as error:
    show_error(error)
    st.stop()
word = choice == TOY
unit = "word" if word else "character"
st.caption(about)
st.text_area("Prompt", key="itt_prompt", height=80 if not word else 68,
             help=f"What the model reads, one {unit} per position; at most {model.config.block_size} {unit}s. "
                  + ("Words are separated by spaces." if word else "Ctrl+Enter (or clicking outside the box) applies it."))
try:
    trace = cached_trace(choice, modified_time(choice), st.session_state.itt_prompt)
except LabError as error:
    show_error(error)
    st.stop()

T, L, H = trace.length, trace.n_layer, trace.n_head
if st.session_state.get("itt_traced") != (choice, st.session_state.itt_prompt):  # a new prompt: look at its last position
    st.session_state.itt_traced = (choice, st.session_state.itt_prompt)
    st.session_state.itt_position = T - 1
if T > 1:
    position = st.select_slider(f"Position: the model predicts the {unit} after it", list(range(T)), key="itt_position",
                                format_func=lambda i: position_label(trace, i),
                                help="Every position predicts the token after it, at once; the last one continues the prompt.")
else:
    position = 0
if position + 1 < T:
    st.caption(f"At position {position_label(trace, position)}, the prompt's actual next {unit} is {shown(trace.tokens[position + 1])!r}: "
               f"the model gives it {trace.probs[position, trace.ids[position + 1]]:.1%}.")

st.subheader("1. The flow")
st.caption(f"The grey line is the residual stream: one vector of {model.config.n_embd} numbers for each of the prompt's {T} positions. "
           f"Blocks above it read from it and add (+) their output back. "
           f"Click a block or a +, or choose a stage below, to see its numbers at position {position_label(trace, position)}.")
keys = [stage.key for stage in stages(L)]
if st.session_state.get("itt_stage") not in keys:
    st.session_state.itt_stage = "attention:0"
st.plotly_chart(flow_diagram(trace, st.session_state.itt_stage, model.config.block_size), key="itt_diagram",
                on_select=stage_clicked, selection_mode="points", config={"displayModeBar": False})
stage = Stage.from_key(st.selectbox("Stage", keys, format_func=lambda key: Stage.from_key(key).label, key="itt_stage"))
if word:
    show_toy_numbers(trace, stage_numbers(trace, stage), stage_weights(model, stage), stage.label)
else:
    st.plotly_chart(stage_figure(trace, stage_numbers(trace, stage, position), position,
                                 f"{stage.label}, at position {position_label(trace, position)}"), key="itt_stage_numbers")
    st.caption("Each row is one vector, one coloured cell per entry (red above zero, blue below; hover for the value). "
               "‖·‖ is the vector's length (L2 norm).")

st.subheader("2. Attention")
st.caption("Each head decides, for every position (row), how much to read from each earlier position (column). "
           "Rows sum to 1; the blank triangle is the future, which a GPT never sees. The orange row is your position.")
if st.session_state.get("itt_layer", 0) >= L or st.session_state.get("itt_head", 0) >= H:
    st.session_state.itt_layer, st.session_state.itt_head = 0, 0
pick_layer, pick_head = st.columns([1, 3])
layer = pick_layer.selectbox("Layer", list(range(L)), format_func=lambda i: f"layer {i + 1}", key="itt_layer")
head = pick_head.radio("Head", list(range(H)), format_func=lambda i: f"head {i + 1}", key="itt_head", horizontal=True)
heatmap, overview = st.columns([3, 2])
heatmap.plotly_chart(attention_heatmap(trace, layer, head, position), key="itt_attention")
overview.plotly_chart(attention_overview(trace, layer, head), key="itt_attention_all")

st.subheader("3. The residual stream")
st.caption("How big a change each step makes: the length of the vector it adds to the stream at each position. "
           "The embedding starts the stream; a step with a small norm barely changes what the model 'thinks' there.")
grid, here = st.columns([3, 2])
grid.plotly_chart(step_norms_figure(trace), key="itt_norms")
here.plotly_chart(position_norms_figure(trace, position), key="itt_position_norms")

st.subheader("4. The logit lens")
st.caption(f"Unembed the stream after each layer, as if the model stopped there: each cell shows the top guess for the next {unit} "
           "(on a prompt longer than 64, hover over a cell to read it) and how sure the model is of it (colour). Watch the guesses "
           f"become the final answer in the last row. After the embedding alone, the guess is often the {unit} itself: the output "
           "layer reuses the embedding matrix, and no layer has changed the stream yet.")
st.plotly_chart(lens_figure(trace, position), key="itt_lens")
st.dataframe(lens_table(trace, position), hide_index=True, key="itt_lens_table")

st.subheader(f"5. The next {unit}")
st.caption(f"The final softmax at position {position_label(trace, position)}. Temperature divides the logits before the softmax: "
           "below 1 sharpens the distribution toward the top guess, above 1 flattens it; the orange marks are the model's own (temperature 1).")
temperature = st.slider("Temperature", 0.05, 3.0, 1.0, 0.05, key="itt_temperature")
probs = tempered(trace.logits[position], temperature)
st.plotly_chart(probability_bars(trace, position, probs, temperature), key="itt_bars")
last = position == T - 1
st.button(f"Sample the next {unit} and append it", key="itt_sample", disabled=not last, icon=":material/casino:",
          on_click=append_sample, args=(trace.logits[position], temperature, trace.vocabulary, word, model.config.block_size),
          help=None if last else f"Sampling continues the prompt: move the position to the last {unit} first.")
sampled = st.session_state.get("itt_sampled")
if sampled and sampled[0] == st.session_state.itt_prompt:
    _, token, p, at, cropped = sampled
    st.caption(f"Last sample: {shown(token)!r}, which had probability {p:.1%} at temperature {at:g}."
               + (f" The model reads at most {model.config.block_size} {unit}s, so the first one was dropped." if cropped else ""))

if word:
    st.subheader("6. Every parameter of the toy")
    st.caption("The toy is small enough to print whole: these matrices and vectors are all the model knows.")
    with st.expander(f"All {model.get_num_params(non_embedding=False)} parameters, stage by stage"):
        for part in stages(L):
            show_toy_numbers(trace, [], stage_weights(model, part), part.label, key=f"itt_all_{part.key}")
