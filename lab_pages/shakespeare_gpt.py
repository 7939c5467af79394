"""Shakespeare GPT lab: nanoGPT's character-level transformer — generate, train live, compare runs."""

from dataclasses import fields
from pathlib import Path

import streamlit as st

from engine.core.checkpoints import changed_at
from engine.core.device import autocast_dtype, pick_device
from engine.core.settings import check_step_limit
from engine.core.errors import ConfigError, LabError
from engine.core.fetch import find_local
from engine.core.jobs import JobView, board
from engine.core.runs import export_zip, make_room
from engine.gpt.checkpoint import load_model
from engine.gpt.data import SHAKESPEARE as SHAKESPEARE_FILE, decode_text, load_shakespeare, prepare_text
from engine.gpt.estimate import StepTime, count_params, estimate_memory, eta_seconds, run_shape, time_iterations
from engine.gpt.runs import (
    SHAKESPEARE, SHIPPED_CHECKPOINT, TEXT_FILE, cli_command, iteration_ms, list_runs, new_run_folder, read_history,
    resume_config, run_text, shipped_available, train_run,
)
from engine.gpt.sample import generate
from engine.gpt.train import CPU, PRESETS, REFERENCE_VAL_LOSS, TINY, GPTTrainConfig, preset_of
from ui.errors import show_error
from ui.gpt_handout import handout
from ui.job_panel import job_panel, job_running, start_job
from ui.runs import as_markdown, duration, lr_schedule, markdown_stream, megabytes, runs_table, training_curves, val_curves
from ui.address import address_notes, bound, share_box
from ui.visitor import shown_path, visitor_token

REFERENCE = ("nanoGPT's CPU run", CPU.max_iters, REFERENCE_VAL_LOSS["cpu"])
PRESET_LABELS = {"cpu": "CPU (nanoGPT's laptop recipe)", "gpu": "GPU (nanoGPT's train_shakespeare_char)", "tiny": "Tiny (seconds, for trying things)"}
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


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def cached_model(path: str, modified: float):
    return load_model(path)


@st.cache_resource(show_spinner="Timing the tiny and CPU presets on this device…")
def fitted_step_time(device: str) -> StepTime:
    return StepTime.fit((TINY, time_iterations(TINY, 65, 3, device)), (CPU, time_iterations(CPU, 65, 2, device)))


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


def generate_here(path: Path, label: str, prompt: str, count: int, temperature=0.8, top_k=200, top_p=1.0, seed=None):
    """Stream the model's characters into the page as they are drawn; keep the text for reruns and the download."""
    model, tokenizer, _ = cached_model(str(path), changed_at(path))
    characters = generate(model, tokenizer, prompt, count, temperature, top_k, top_p, seed)  # checks the prompt now
    record = st.session_state.gpt_generated = {"count": count, "source": label, "complete": False, "text": prompt, "characters": 0, "seconds": 0.0}
    # the record is the session's own, filled as the text streams: a rerun that cuts the stream short keeps what was written
    st.write_stream(markdown_stream(characters, prompt, record))
    record["complete"] = True


def reference_for(view: JobView):
    """The job's run folder, and nanoGPT's result for its recipe when it ran one of them on tiny Shakespeare."""
    folder, trained_on, preset = (view.info.get(key) for key in ("folder", "data", "preset"))
    if preset in REFERENCE_VAL_LOSS and trained_on == SHAKESPEARE:
        return folder, (f"nanoGPT's {preset.upper()} run", PRESETS[preset].max_iters, REFERENCE_VAL_LOSS[preset])
    return folder, None


def draw_live(view: JobView):
    curve, side = st.columns([3, 2])
    curve.plotly_chart(training_curves(view.metrics, "Loss while training", reference_for(view)[1]))
    logged = [row for row in view.metrics if "lr" in row]
    if logged:
        rate, speed = side.columns(2)
        rate.metric("Learning rate now", f"{logged[-1]['lr']:.2e}")
        speed.metric("Time per iteration", f"{logged[-1]['ms_per_iter']:,.0f} ms", f"{logged[-1]['tokens_per_s']:,.0f} tokens/s", delta_color="off", delta_arrow="off")
    evaluated = [row["step"] for row in view.metrics if "val_loss" in row]
    if "sample" in view.snapshots and evaluated:
        side.caption(f"What the model writes at iteration {evaluated[-1]:,} (from an empty prompt):")
        side.code(view.snapshots["sample"], language=None, wrap_lines=True)


for name in FIELDS:
    st.session_state.setdefault(f"gpt_{name}", getattr(CPU, name))
runs = list_runs(visitor=visitor_token())

st.title("Shakespeare GPT")
st.markdown(
    "A small **GPT** (Karpathy's nanoGPT) reads text one character at a time and learns to predict the next one; "
    "trained on 1 MB of Shakespeare, it writes new scenes in his style. Read what the shipped model writes first, then "
    "press **Train** with nanoGPT's CPU recipe and watch the loss fall while its samples turn from noise into dialogue. "
    "Loss is the cross-entropy of the next character in nats per character: ln 65 ≈ 4.17 is a uniform guess."
)
with st.expander("The loss, the learning rate and the parameter count"):
    st.latex(r"\mathcal{L} = -\frac{1}{N}\sum_{t=1}^{N} \ln p_\theta\left(x_{t+1} \mid x_{t-T+1}, \dots, x_t\right) \qquad (1)")
    st.latex(r"\eta(i) = \begin{cases} \eta_{\max}\,\frac{i+1}{w+1} & i < w \\ \eta_{\min} + \frac{1}{2}\left(1 + \cos \pi\frac{i-w}{D-w}\right)"
             r"(\eta_{\max} - \eta_{\min}) & w \le i \le D \\ \eta_{\min} & i > D \end{cases} \qquad (2)")
    st.latex(r"N_{\text{non-embedding}} = L\,(12 d^2 + 2d) + V d + d \qquad (3)")
    st.caption("(1) T = block_size characters of context. (2) w = warmup_iters, D = lr_decay_iters, η_max = learning_rate, "
               "η_min = min_lr. (3) L = n_layer, d = n_embd, V = the vocabulary; without biases; the token embedding is also "
               "the output layer (weight tying), and nanoGPT leaves the position embeddings out of its count.")

st.subheader("Generate")
sources = {str(SHIPPED_CHECKPOINT): "the shipped checkpoint"} if shipped_available() else {}
sources.update({str(run.checkpoint): f"run {run.name} (val loss {run.best_val_loss:.4f})" for run in runs if run.has_checkpoint and run.best_val_loss})
if not shipped_available():
    st.info(f"The shipped checkpoint ({SHIPPED_CHECKPOINT.name}.safetensors in {SHIPPED_CHECKPOINT.parent.name}/) is not in this "
            "copy of the lab yet, so there is no sample to read here. Train a run below, then generate from it.", icon=":material/info:")
if sources:
    source = st.selectbox("Generate from", list(sources), format_func=sources.get, key="gpt_model")
    row = st.columns([3, 1, 1, 1, 1, 1])
    prompt = row[0].text_input("Prompt", key="gpt_gen_prompt", placeholder="e.g. ROMEO: (empty starts on a new line)")
    count = row[1].number_input("New characters", 1, 5000, 500, key="gpt_gen_count")
    temperature = row[2].number_input("Temperature", 0.05, 5.0, 0.8, 0.05, key="gpt_gen_temperature", help="Below 1 is more conservative, above 1 wilder.")
    top_k = row[3].number_input("Top-k", 1, 1000, 200, key="gpt_gen_top_k", help="Draw among the k most likely characters.")
    top_p = row[4].number_input("Top-p", 0.01, 1.0, 1.0, 0.05, key="gpt_gen_top_p", help="Nucleus sampling: draw among the likeliest characters that make up this much probability; 1 turns it off.")
    seed = row[5].number_input("Seed", 0, 2**31 - 1, None, key="gpt_gen_seed", placeholder="random", help="The same seed and settings give the same text.")
    clicked = st.button("Generate", key="gpt_generate", icon=":material/edit_note:")
    try:
        if clicked:
            generate_here(Path(source), sources[source], prompt, count, temperature, top_k, top_p, seed)
        elif "gpt_generated" not in st.session_state and str(SHIPPED_CHECKPOINT) in sources:  # a first visit: a short sample
            generate_here(SHIPPED_CHECKPOINT, sources[str(SHIPPED_CHECKPOINT)], "", 200)
        elif "gpt_generated" in st.session_state:
            st.markdown(as_markdown(st.session_state.gpt_generated["text"]))
    except LabError as error:
        show_error(error)
    done = st.session_state.get("gpt_generated")
    if done:
        note, download = st.columns([4, 1], vertical_alignment="center")
        if done.get("complete", True):
            note.caption(f"{done['count']:,} new characters in {done['seconds']:.2f} s ({done['count'] / done['seconds']:,.0f} characters/s) from {done['source']}.")
        else:
            note.caption(f"Cut short after {done['characters']:,} of {done['count']:,} new characters from {done['source']}: something on the page "
                         "changed while it was writing. What it wrote is kept; press Generate for a new text.")
        download.download_button("Download the text", done["text"], "shakespeare_gpt.txt", "text/plain", key="gpt_download_text", icon=":material/download:")

st.subheader("Train your own")
st.radio("Start from", list(PRESETS), format_func=PRESET_LABELS.get, horizontal=True, key="gpt_preset", on_change=apply_preset,
         help="Fills in every setting below; each can then be changed.")
columns = st.columns(6)
for index, name in enumerate(LABELS):
    setting(columns[index % 6], name)
with st.expander("More settings (AdamW, evaluation, seed)"):
    columns = st.columns(6)
    for index, name in enumerate(FIELDS[len(LABELS):]):
        setting(columns[index % 6], name)
address_notes("gpt")
share_box("gpt")
config = None
try:
    asked = GPTTrainConfig.from_form({name: st.session_state[f"gpt_{name}"] for name in FIELDS}).validate()
    check_step_limit("gpt", asked.max_iters)
    config = asked
except ConfigError as error:
    show_error(error)

st.radio("Text", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="gpt_source")
text, name, data = None, None, None
try:
    if st.session_state.gpt_source == "shakespeare":
        if (local := find_local(SHAKESPEARE_FILE)) or st.session_state.pop("gpt_download_ok", False):  # one try per click
            bar = st.empty()
            text, name = shakespeare_text(local and str(local), lambda done, total: bar.progress(min(1.0, done / total), f"Downloading tiny Shakespeare: {done / 1e6:.1f} of {total / 1e6:.1f} MB")), SHAKESPEARE
            bar.empty()
        else:
            st.info("tiny Shakespeare is not on this machine yet (1.1 MB). Set DLLAB_DATA_DIR to a folder that has "
                    "shakespeare/input.txt, or download it now.", icon=":material/download:")
            if st.button("Download tiny Shakespeare", key="gpt_download_data"):
                st.session_state.gpt_download_ok = True
                st.rerun()
    elif st.session_state.gpt_source == "paste":
        if pasted := st.text_area("Your text", key="gpt_text", height=150, placeholder="A few thousand characters or more: poems, code, a novel…"):
            text, name = decode_text(pasted.encode("utf-8"), "The pasted text"), "the pasted text"
        else:
            st.info("Paste some text above: the model will learn to write like it.")
    elif (upload := st.file_uploader("A UTF-8 text file, up to 20 MB", key="gpt_upload", max_upload_size=20,
                                     help="Plain text saved as UTF-8 (.txt, .md, .csv, code …), at most 20 MB.")) is not None:
        text, name = decode_text(upload.getvalue(), upload.name), upload.name
    else:
        st.info("Upload a plain-text file (UTF-8, at most 20 MB): the model will learn to write like it. "
                "A file marked in red above was refused by the uploader: it is larger than 20 MB.")
    if text is not None:
        data = cached_data(text, name)
        st.caption(f"{name}: {data.characters:,} characters, {data.tokenizer.vocab_size} distinct; the first 90% "
                   f"({len(data.train):,}) trains, the last 10% ({len(data.val):,}) measures the val loss.")
        if config is not None:
            data.require_block_size(config.block_size)
except LabError as error:
    show_error(error)
    data = None

if config is not None:
    vocab, device = data.tokenizer.vocab_size if data is not None else 65, pick_device()
    params = count_params(config, vocab)
    memory = estimate_memory(config, vocab, autocast_dtype(device).itemsize)
    shape = (device.type, vocab, *(getattr(config, name) for name in ("n_layer", "n_head", "n_embd", "block_size", "bias", "batch_size", "gradient_accumulation_steps")))
    timed = st.session_state.setdefault("gpt_timed", {})
    ms, basis = iteration_ms(config, vocab, device.type, runs, fitted_step_time(device.type), timed.get(shape))
    metrics = st.columns(4)
    metrics[0].metric("Parameters", f"{params.non_embedding / 1e6:.2f} M", help="nanoGPT's count: all but the position embeddings.")
    metrics[1].metric("Tokens per iteration", f"{config.tokens_per_iter:,}", help="batch_size × block_size × gradient_accumulation_steps")
    metrics[2].metric("Training memory", f"≈ {megabytes(memory.total)}", help="An estimate: 16 bytes per parameter (weights, gradients, AdamW) plus activations.")
    metrics[3].metric("Time to train", f"≈ {duration(eta_seconds(config, ms))}", basis.split(" ")[0].rstrip(":"), delta_color="off", delta_arrow="off",
                      help="Iterations plus evaluations, from the time per iteration below.")
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

if st.button("Train", type="primary", disabled=config is None or data is None or job_running("gpt"), key="gpt_train", icon=":material/play_arrow:"):
    try:
        make_room(board)
        folder = new_run_folder(preset_of(config) or "custom", owner=visitor_token())
        command = cli_command(config, folder, folder / TEXT_FILE if name != SHAKESPEARE else None)
        start_job("gpt", f"GPT {folder.name}", lambda report, c=config, d=data, f=folder, t=text: train_run(c, d, report, f, t, command=command),
                  info={"folder": str(folder), "data": name, "preset": preset_of(config)}, expected_seconds=eta_seconds(config, ms))
        st.rerun()  # Train was drawn enabled before the job existed: draw the page again with Stop instead
    except LabError as error:
        show_error(error)
view = job_panel("gpt", draw_live)
if view is not None and view.state.finished and view.result is not None:
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
    if "sample" in view.snapshots:
        sample.caption("What it wrote at the last evaluation (from an empty prompt):")
        sample.code(view.snapshots["sample"], language=None, wrap_lines=True)
    if folder and st.session_state.get("gpt_resume_default") != view.id:  # offer this run first below
        st.session_state.gpt_resume_default, st.session_state.gpt_resume_run = view.id, Path(folder).name

resumable = {run.name: run for run in runs if run.resumable and run.config is not None}
if resumable:
    with st.expander("Continue a run", expanded=view is not None and view.state.finished):
        if st.session_state.get("gpt_resume_run") not in resumable:
            st.session_state.pop("gpt_resume_run", None)
        chosen = resumable[st.selectbox("Run", list(resumable), key="gpt_resume_run", format_func=lambda run: (
            f"{run} ({resumable[run].state}, checkpoint at iteration {resumable[run].best_iter:,} of {resumable[run].config.max_iters:,})"))]
        reached, planned = chosen.best_iter or 0, chosen.config.max_iters
        target = st.number_input("Continue to iteration", reached + 1, 1_000_000, planned if planned > reached else reached + max(planned // 2, 1),
                                 key=f"gpt_resume_to_{chosen.name}", help="From its best checkpoint; beyond lr_decay_iters the learning rate stays at min_lr.")
        if st.button("Resume", key="gpt_resume", disabled=job_running("gpt"), icon=":material/resume:"):
            try:
                check_step_limit("gpt", int(target))
                resumed, resumed_data = resume_config(chosen, int(target)), run_text(chosen)
                start_job("gpt", f"GPT {chosen.name} (resumed)", lambda report, c=resumed, d=resumed_data, f=chosen.folder: train_run(c, d, report, f, resume=True),
                          info={"folder": str(chosen.folder), "data": chosen.data_name, "preset": preset_of(chosen.config)})
                st.rerun()
            except LabError as error:
                show_error(error)

st.subheader("Compare runs")
for note in runs.skipped:
    st.caption(f":material/warning: {note}")
if runs:
    st.dataframe(runs_table(runs), hide_index=True)
    shown = st.multiselect("Runs to plot", [run.name for run in runs], default=[run.name for run in runs[:6]])  # no key: a new run joins the plot
    st.plotly_chart(val_curves([run for run in runs if run.name in shown], REFERENCE), key="gpt_compare_curves")
    st.caption(f"Runs kept under {shown_path(runs[0].folder.parent)}. The gray line is nanoGPT's CPU recipe on tiny Shakespeare "
               "(val loss 1.8857 at iteration 2,000); runs on other texts are not comparable with it.")
    keep, button = st.columns([3, 1], vertical_alignment="bottom")
    kept = keep.selectbox("Download a run to keep it (weights, card and history, zipped)", [run.name for run in runs], key="gpt_download_run")
    button.download_button("Download", lambda f=runs[0].folder.parent / kept: export_zip(f), f"{kept}.zip", "application/zip",
                           key="gpt_download_zip", icon=":material/download:")
else:
    st.info("No runs yet. Each training started here is kept in its own folder under DLLAB_RUNS_DIR (default runs/gpt), so it can be resumed and compared.")
