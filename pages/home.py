"""Home: what the lab is, and one card per lab that exists."""

import streamlit as st

from engine.core.errors import LabError
from engine.sae.train import SHIPPED_CHECKPOINT, load_result
from ui.images import grid_image


@st.cache_resource
def sae_picture():
    try:
        return grid_image(load_result(SHIPPED_CHECKPOINT)[0].filters(), width_px=240)
    except LabError:
        return None


st.title("Deep Learning Lab")
st.markdown(
    "Train classic models yourself and look inside them while they learn — on this machine's "
    "processor or a GPU. Every number on these pages comes from code that ran, with the "
    "published reference beside it."
)

picture, text = st.columns([1, 3], vertical_alignment="center")
with picture:
    filters = sae_picture()
    if filters is not None:
        st.image(filters, caption="25 filters learned from natural images")
with text:
    st.subheader("Sparse autoencoder")
    st.markdown(
        "Andrew Ng's UFLDL exercise: a 64-25-64 network learns to rebuild 8x8 patches of natural "
        "images while keeping its hidden units quiet, and discovers edge detectors on its own."
    )
    st.page_link("pages/sparse_autoencoder.py", label="Open the sparse autoencoder lab", icon=":material/arrow_forward:")
