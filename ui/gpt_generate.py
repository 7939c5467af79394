"""Serves the Shakespeare GPT page only: its Generate section, text streamed from the shipped model or a run."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from engine.core.checkpoints import changed_at
from engine.core.errors import LabError
from engine.core.runs import RunList
from engine.gpt import checkpoint as gpt_checkpoint, runs as gpt_runs  # the modules, not their names: tests point SHIPPED_CHECKPOINT elsewhere
from engine.gpt.checkpoint import load_model
from engine.gpt.sample import generate
from ui.errors import show_error
from ui.runs import as_markdown, markdown_stream


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def cached_model(path: str, modified: float):
    return load_model(path)


def generate_here(path: Path, label: str, prompt: str, count: int, temperature=0.8, top_k=200, top_p=1.0, seed=None):
    """Stream the model's characters into the page as they are drawn; keep the text for reruns and the download."""
    model, tokenizer, _ = cached_model(str(path), changed_at(path))
    characters = generate(model, tokenizer, prompt, count, temperature, top_k, top_p, seed)  # checks the prompt now
    record = st.session_state.gpt_generated = {"count": count, "source": label, "complete": False, "text": prompt, "characters": 0, "seconds": 0.0}
    # the record is the session's own, filled as the text streams: a rerun that cuts the stream short keeps what was written
    st.write_stream(markdown_stream(characters, prompt, record))
    record["complete"] = True


def model_sources(runs: RunList) -> dict[str, str]:
    """Checkpoint path -> what to call it: the shipped model when this copy has it, then each run with a checkpoint."""
    shipped = gpt_checkpoint.SHIPPED_CHECKPOINT
    sources = {str(shipped): "the shipped checkpoint"} if gpt_runs.shipped_available() else {}
    sources.update({str(run.checkpoint): f"run {run.name} (val loss {run.best_val_loss:.4f})" for run in runs if run.has_checkpoint and run.best_val_loss})
    return sources


def sampling_settings() -> dict:
    """The prompt and the sampler's settings, in one row: keyword arguments for generate_here."""
    row = st.columns([3, 1, 1, 1, 1, 1])
    return dict(
        prompt=row[0].text_input("Prompt", key="gpt_gen_prompt", placeholder="e.g. ROMEO: (empty starts on a new line)"),
        count=row[1].number_input("New characters", 1, 5000, 500, key="gpt_gen_count"),
        temperature=row[2].number_input("Temperature", 0.05, 5.0, 0.8, 0.05, key="gpt_gen_temperature", help="Below 1 is more conservative, above 1 wilder."),
        top_k=row[3].number_input("Top-k", 1, 1000, 200, key="gpt_gen_top_k", help="Draw among the k most likely characters."),
        top_p=row[4].number_input("Top-p", 0.01, 1.0, 1.0, 0.05, key="gpt_gen_top_p", help="Nucleus sampling: draw among the likeliest characters that make up this much probability; 1 turns it off."),
        seed=row[5].number_input("Seed", 0, 2**31 - 1, None, key="gpt_gen_seed", placeholder="random", help="The same seed and settings give the same text."),
    )


def show_text(clicked: bool, source: str, sources: dict[str, str], settings: dict) -> None:
    """A new text on Generate, a short sample on a first visit, else the session's last text again."""
    shipped = str(gpt_checkpoint.SHIPPED_CHECKPOINT)
    try:
        if clicked:
            generate_here(Path(source), sources[source], **settings)
        elif "gpt_generated" not in st.session_state and shipped in sources:  # a first visit: a short sample
            generate_here(Path(shipped), sources[shipped], "", 200)
        elif "gpt_generated" in st.session_state:
            st.markdown(as_markdown(st.session_state.gpt_generated["text"]))
    except LabError as error:
        show_error(error)


def text_note() -> None:
    """How long the last text took, or why it stopped short; and its download."""
    done = st.session_state.get("gpt_generated")
    if not done:
        return
    note, download = st.columns([4, 1], vertical_alignment="center")
    if done.get("complete", True):
        note.caption(f"{done['count']:,} new characters in {done['seconds']:.2f} s ({done['count'] / done['seconds']:,.0f} characters/s) from {done['source']}.")
    else:
        note.caption(f"Cut short after {done['characters']:,} of {done['count']:,} new characters from {done['source']}: something on the page "
                     "changed while it was writing. What it wrote is kept; press Generate for a new text.")
    download.download_button("Download the text", done["text"], "shakespeare_gpt.txt", "text/plain", key="gpt_download_text", icon=":material/download:")


def generate_section(runs: RunList) -> None:
    """Pick a model, set the sampler, read what it writes."""
    sources = model_sources(runs)
    if not gpt_runs.shipped_available():
        shipped = gpt_checkpoint.SHIPPED_CHECKPOINT
        st.info(f"The shipped checkpoint ({shipped.name}.safetensors in {shipped.parent.name}/) is not in this "
                "copy of the lab yet, so there is no sample to read here. Train a run below, then generate from it.", icon=":material/info:")
    if not sources:
        return
    source = st.selectbox("Generate from", list(sources), format_func=sources.get, key="gpt_model")
    settings = sampling_settings()
    clicked = st.button("Generate", key="gpt_generate", icon=":material/edit_note:")
    show_text(clicked, source, sources, settings)
    text_note()
