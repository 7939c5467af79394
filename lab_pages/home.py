"""Home: what the lab is, and one card per lab that exists."""

import streamlit as st

from engine.core.errors import LabError
from engine.ddpm import checkpoint as ddpm_checkpoint
from engine.ddpm.sample import SampleSettings, generate as generate_digits, grid_image as digit_grid
from engine.gpt import checkpoint as gpt_checkpoint, runs as gpt_runs
from engine.gpt.checkpoint import load_model
from engine.gpt.sample import generate
from engine.sae.checkpoint import SHIPPED_CHECKPOINT, load_result
from ui.images import grid_image


@st.cache_resource
def sae_picture():
    try:
        return grid_image(load_result(SHIPPED_CHECKPOINT)[0].filters(), width_px=240)
    except LabError:
        return None


@st.cache_resource
def gpt_snippet(path: str):
    """A few lines written by the shipped GPT (a fixed seed, so the card does not change between visits)."""
    try:
        model, tokenizer, card = load_model(path)
        return "".join(generate(model, tokenizer, "", 160, seed=0)).strip(), (card.get("metrics") or {}).get("best_val_loss")
    except LabError:
        return None


@st.cache_resource(show_spinner="Drawing ten digits with the shipped diffusion model…")
def ddpm_picture():
    """Digits 0-9 drawn by the shipped DDPM (DDIM, 50 steps, a fixed seed: the card does not change between visits)."""
    try:
        model, schedule, _ = ddpm_checkpoint.load_model()
        images, _ = generate_digits(model, schedule, SampleSettings(n=10, seed=0))
        return digit_grid(images, columns=5, scale=3)
    except LabError:
        return None


def lab_card(title: str, description: str, page: str, link_label: str):
    """One lab's card: its name, what it does and a link on the right; returns the left column for its picture."""
    picture, text = st.columns([1, 3], vertical_alignment="center")
    with text:
        st.subheader(title)
        st.markdown(description)
        st.page_link(page, label=link_label, icon=":material/arrow_forward:")
    return picture


def image_card(title: str, description: str, page: str, link_label: str, image, caption: str):
    """A lab's card whose picture is `image()`: called inside the card, so its spinner shows where the picture goes."""
    with lab_card(title, description, page, link_label):
        picture = image()
        if picture is not None:
            st.image(picture, caption=caption)


st.title("Deep Learning Lab")
st.markdown(
    "Train classic models yourself and look inside them while they learn — on this machine's "
    "processor or a GPU. Every number on these pages comes from code that ran, with the "
    "published reference beside it."
)

image_card(
    "Sparse autoencoder",
    "Andrew Ng's UFLDL exercise: a 64-25-64 network learns to rebuild 8x8 patches of natural "
    "images while keeping its hidden units quiet, and discovers edge detectors on its own.",
    "lab_pages/sparse_autoencoder.py", "Open the sparse autoencoder lab",
    sae_picture, "25 filters learned from natural images",
)

with lab_card(
    "Shakespeare GPT",
    "Karpathy's nanoGPT at the character level: a small transformer reads tiny Shakespeare and learns to "
    "write plays in his style. Generate from a trained model, train your own live, and compare runs.",
    "lab_pages/shakespeare_gpt.py", "Open the Shakespeare GPT lab",
):
    snippet = gpt_snippet(str(gpt_checkpoint.SHIPPED_CHECKPOINT)) if gpt_runs.shipped_available() else None
    if snippet is not None:
        st.code(snippet[0], language=None, wrap_lines=True)
        loss = f" (val loss {snippet[1]:.2f} nats per character)" if snippet[1] else ""
        st.caption(f"Written by the shipped model, one character at a time{loss}")

with lab_card(
    "Inside the transformer",
    "Type a line and follow it along a trained GPT's residual stream: what each attention head looks at, "
    "how much each layer changes the stream, its guesses layer by layer, and the final softmax — with the "
    "model's real numbers, or a toy small enough to print every matrix.",
    "lab_pages/inside_the_transformer.py", "Open Inside the transformer",
):
    st.code("embed\n  → attention → add\n  → MLP → add\n    (× each layer)\n  → unembed\n  → softmax", language=None)

image_card(
    "Diffusion",
    "Ho et al.'s DDPM on MNIST: a U-Net learns to remove noise, then turns pure noise into handwritten digits "
    "step by step. Watch the noise go on, play the denoising frame by frame, score the digits, train your own.",
    "lab_pages/diffusion.py", "Open the diffusion lab",
    ddpm_picture, "Drawn from pure noise by the shipped model",
)
