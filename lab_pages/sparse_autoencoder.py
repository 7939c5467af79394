"""Sparse autoencoder lab: UFLDL's exercise, trained live with L-BFGS."""

import streamlit as st

from ui.sae import checked_config, data_section, gradient_check_section, seed_settings, settings_section, train_section


def equations():
    with st.expander("The cost being minimised"):
        st.latex(r"J(W,b) = \underbrace{\frac{1}{2m}\sum_{i=1}^m \lVert \hat x^{(i)} - x^{(i)} \rVert^2}_{(1)\ \text{reconstruction}}"
                 r" + \underbrace{\frac{\lambda}{2}\left(\sum W_1^2 + \sum W_2^2\right)}_{(2)\ \text{weight decay}}"
                 r" + \underbrace{\beta \sum_{j} \mathrm{KL}(\rho \,\|\, \hat\rho_j)}_{(3)\ \text{sparsity}}")
        st.latex(r"\hat\rho_j = \frac{1}{m}\sum_{i=1}^m a^{(2)}_j(x^{(i)}) \qquad (4)")


seed_settings()

st.title("Sparse autoencoder")
st.markdown(
    "A 64-25-64 network of sigmoid units learns to reproduce 8x8 patches of whitened natural images. "
    "A penalty keeps each hidden unit's average activation near ρ, so every unit must specialise, "
    "and the units become **edge detectors** like those in the visual cortex. "
    "Press **Train** with UFLDL's settings first (one to four seconds on two cores), then change one thing at a time."
)
equations()

uploaded = settings_section()
config = checked_config()
data = data_section(config, uploaded)
gradient_check_section(config, data)
train_section(config, data)
