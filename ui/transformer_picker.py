"""Serves the Inside the transformer page only: which model to look inside, the prompt, its trace and the position to study."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from engine.core.checkpoints import changed_at
from engine.core.errors import LabError
from engine.gpt import checkpoint as gpt_checkpoint, runs as gpt_runs  # the modules, not their names: tests point SHIPPED_CHECKPOINT elsewhere
from engine.gpt.checkpoint import load_model
from engine.gpt.inspect import Trace, trace_prompt
from engine.gpt.toy import ToyConfig, train_toy
from ui.errors import show_error
from ui.transformer import describe_checkpoint, describe_toy, position_label, shown
from ui.visitor import visitor_token

SHAKESPEARE_PROMPT = "First Citizen:\nBefore we proceed any further, hear me speak."  # the first line of tiny Shakespeare
TOY_PROMPT = "UCLA is at"
SHIPPED, TOY = "shipped", "toy"


@dataclass(frozen=True)
class Picked:
    """The model the page looks inside: the picker's choice and the model itself."""

    choice: str
    model: object  # an engine.gpt.model.GPT

    @property
    def word(self) -> bool:
        """The toy reads words; every other model characters."""
        return self.choice == TOY

    @property
    def unit(self) -> str:
        return "word" if self.word else "character"


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def cached_model(path: str, modified: float):
    return load_model(path)  # (model, tokenizer, card)


@st.cache_resource(show_spinner="Training the toy on its four sentences (a second or two)…")
def cached_toy():
    return train_toy(ToyConfig())


def modified_time(choice: str) -> float:
    """When the choice's checkpoint last changed (0 for the toy): a checkpoint that a running training rewrote is loaded afresh."""
    return 0.0 if choice == TOY else changed_at(gpt_checkpoint.SHIPPED_CHECKPOINT if choice == SHIPPED else Path(choice))


def picked_model(choice: str):
    """(model, tokenizer, what to say about it) for the picker's choice."""
    if choice == TOY:
        toy = cached_toy()
        return toy.model, toy.tokenizer, describe_toy(toy)
    path = gpt_checkpoint.SHIPPED_CHECKPOINT if choice == SHIPPED else Path(choice)
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


def model_choices() -> dict[str, str]:
    """The shipped model, the visitor's runs with a checkpoint, and the toy; on a first visit, the first that exists is chosen."""
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
    return choices


def model_picker(choices: dict[str, str]) -> Picked:
    """The model select box and a line about the model; the page stops here when the model cannot be had."""
    choice = st.selectbox("Model", list(choices), format_func=choices.get, key="itt_model", on_change=model_changed)
    if choice == SHIPPED and not gpt_runs.shipped_available():
        shipped = gpt_checkpoint.SHIPPED_CHECKPOINT
        st.info(f"The shipped model ({shipped.name}.safetensors in {shipped.parent.name}/) is not "
                "in this copy of the lab yet. Pick one of your own runs or the toy above, or train a model on the Shakespeare GPT page "
                "(or `python -m engine.gpt train --preset cpu`) and come back.", icon=":material/info:")
        st.stop()
    try:
        model, _, about = picked_model(choice)
    except LabError as error:
        show_error(error)
        st.stop()
    st.caption(about)
    return Picked(choice, model)


def prompt_trace(picked: Picked) -> Trace:
    """The prompt box and the model's trace of it; the page stops here, with the reason, on a prompt it cannot read."""
    unit = picked.unit
    st.text_area("Prompt", key="itt_prompt", height=80 if not picked.word else 68,
                 help=f"What the model reads, one {unit} per position; at most {picked.model.config.block_size} {unit}s. "
                      + ("Words are separated by spaces." if picked.word else "Ctrl+Enter (or clicking outside the box) applies it."))
    try:
        return cached_trace(picked.choice, modified_time(picked.choice), st.session_state.itt_prompt)
    except LabError as error:
        show_error(error)
        st.stop()


def position_picker(trace: Trace, picked: Picked) -> int:
    """The position the figures below study: the last one of a new prompt, then wherever the slider is moved."""
    T, unit = trace.length, picked.unit
    if st.session_state.get("itt_traced") != (picked.choice, st.session_state.itt_prompt):  # a new prompt: look at its last position
        st.session_state.itt_traced = (picked.choice, st.session_state.itt_prompt)
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
    return position
