"""Serves the Shakespeare GPT page only: the training settings, seeded from a preset, and the text to train on."""

from __future__ import annotations

from dataclasses import fields

import streamlit as st

from engine.core.errors import ConfigError, LabError
from engine.core.fetch import find_local
from engine.core.settings import check_step_limit
from engine.gpt.data import SHAKESPEARE as SHAKESPEARE_FILE, decode_text, load_shakespeare, prepare_text
from engine.gpt.runs import SHAKESPEARE
from engine.gpt.train import CPU, PRESETS, GPTTrainConfig
from ui.address import address_notes, bound, share_box
from ui.errors import show_error

PRESET_LABELS = {"cpu": "CPU (nanoGPT's laptop recipe)", "fast": "Fast (nanoGPT's quality, sooner)", "gpu": "GPU (nanoGPT's train_shakespeare_char)", "tiny": "Tiny (seconds, for trying things)"}
SOURCES = {"shakespeare": "tiny Shakespeare (1.1 M characters)", "paste": "Paste text", "upload": "Upload a text file"}
LABELS = {  # field -> (label, help); each label keeps the config's name, which its error messages use
    "n_layer": ("Layers · n_layer", "Transformer blocks, one after another."),
    "n_head": ("Heads · n_head", "Attention heads per block; n_embd is split evenly among them."),
    "n_embd": ("Width · n_embd", "Numbers per character in the residual stream."),
    "block_size": ("Context · block_size", "Characters the model sees at once."),
    "dropout": ("Dropout", "Chance of zeroing an activation while training; 0 suits small, short runs."),
    "batch_size": ("Batch · batch_size", "Sequences per micro-batch (the sequences one forward pass handles at once)."),
    "max_iters": ("Iterations · max_iters", "Optimizer steps."),
    "learning_rate": ("Learning rate", "The peak, reached after the warmup."),
    "min_lr": ("Final rate · min_lr", "Where the cosine decay ends; usually learning_rate / 10."),
    "warmup_iters": ("Warmup · warmup_iters", "Iterations of linear warmup."),
    "lr_decay_iters": ("Decay until · lr_decay_iters", "Usually max_iters."),
}
FIELDS = list(LABELS) + [f.name for f in fields(GPTTrainConfig) if f.name not in LABELS and f.name != "device"]


@st.cache_resource(max_entries=4, show_spinner="Encoding the text…")
def cached_data(text: str, name: str):
    return prepare_text(text, name)


@st.cache_resource(show_spinner="Reading tiny Shakespeare…")
def shakespeare_text(local: str | None, _progress=None):  # keyed by the local copy, if any: None downloads
    return load_shakespeare(progress=_progress)


def seed_settings() -> None:
    """Every setting starts at the CPU preset; the session keeps what a person changes."""
    for name in FIELDS:
        st.session_state.setdefault(f"gpt_{name}", getattr(CPU, name))


def apply_preset():
    st.session_state.update({f"gpt_{name}": getattr(PRESETS[st.session_state.gpt_preset], name) for name in FIELDS})


def setting(column, name: str):
    value, (label, help_text) = getattr(CPU, name), LABELS.get(name, (name, None))
    if isinstance(value, bool):
        column.checkbox(label, help=help_text, **bound(f"gpt_{name}", (GPTTrainConfig, name)))
    elif isinstance(value, int):
        column.number_input(label, step=1, help=help_text, **bound(f"gpt_{name}", (GPTTrainConfig, name)))
    else:
        column.number_input(label, step=1e-4 if name.endswith(("lr", "rate")) else 0.01, format="%.4g", help=help_text, **bound(f"gpt_{name}", (GPTTrainConfig, name)))


def settings_grid(names: list[str]) -> None:
    columns = st.columns(6)
    for index, name in enumerate(names):
        setting(columns[index % 6], name)


def settings_section() -> GPTTrainConfig | None:
    """The preset, every setting and the share link; the config they make, or None after showing its error."""
    st.radio("Start from", list(PRESETS), format_func=PRESET_LABELS.get, horizontal=True, key="gpt_preset", on_change=apply_preset,
             help="Fills in every setting below; each can then be changed.")
    settings_grid(list(LABELS))
    with st.expander("More settings (AdamW, evaluation, seed)"):
        settings_grid(FIELDS[len(LABELS):])
    address_notes("gpt")
    share_box("gpt")
    try:
        asked = GPTTrainConfig.from_form({name: st.session_state[f"gpt_{name}"] for name in FIELDS}).validate()
        check_step_limit("gpt", asked.max_iters)
        return asked
    except ConfigError as error:
        show_error(error)
        return None


def shakespeare_source() -> tuple[str | None, str | None]:
    """tiny Shakespeare from this machine, or downloaded once a person asks; else a button that asks."""
    if (local := find_local(SHAKESPEARE_FILE)) or st.session_state.pop("gpt_download_ok", False):  # one try per click
        bar = st.empty()
        text = shakespeare_text(local and str(local), lambda done, total: bar.progress(min(1.0, done / total), f"Downloading tiny Shakespeare: {done / 1e6:.1f} of {total / 1e6:.1f} MB"))
        bar.empty()
        return text, SHAKESPEARE
    st.info("tiny Shakespeare is not on this machine yet (1.1 MB). Set DLLAB_DATA_DIR to a folder that has "
            "shakespeare/input.txt, or download it now.", icon=":material/download:")
    if st.button("Download tiny Shakespeare", key="gpt_download_data"):
        st.session_state.gpt_download_ok = True
        st.rerun()
    return None, None


def pasted_source() -> tuple[str | None, str | None]:
    if pasted := st.text_area("Your text", key="gpt_text", height=150, placeholder="A few thousand characters or more: poems, code, a novel…"):
        return decode_text(pasted.encode("utf-8"), "The pasted text"), "the pasted text"
    st.info("Paste some text above: the model will learn to write like it.")
    return None, None


def uploaded_source() -> tuple[str | None, str | None]:
    upload = st.file_uploader("A UTF-8 text file, up to 20 MB", key="gpt_upload", max_upload_size=20,
                              help="Plain text saved as UTF-8 (.txt, .md, .csv, code …), at most 20 MB.")
    if upload is not None:
        return decode_text(upload.getvalue(), upload.name), upload.name
    st.info("Upload a plain-text file (UTF-8, at most 20 MB): the model will learn to write like it. "
            "A file marked in red above was refused by the uploader: it is larger than 20 MB.")
    return None, None


def text_section(config: GPTTrainConfig | None):
    """The text to train on: (text, its name, the prepared data), each None until there is one that fits the config."""
    st.radio("Text", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="gpt_source")
    text, name = None, None
    try:
        source = {"shakespeare": shakespeare_source, "paste": pasted_source}.get(st.session_state.gpt_source, uploaded_source)
        text, name = source()
        if text is None:
            return text, name, None
        data = cached_data(text, name)
        st.caption(f"{name}: {data.characters:,} characters, {data.tokenizer.vocab_size} distinct; the first 90% "
                   f"({len(data.train):,}) trains, the last 10% ({len(data.val):,}) measures the val loss.")
        if config is not None:
            data.require_block_size(config.block_size)
        return text, name, data
    except LabError as error:
        show_error(error)
        return text, name, None
