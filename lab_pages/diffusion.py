"""Diffusion lab: a DDPM on MNIST — the forward process, generation played step by step, quality, training."""

import streamlit as st

from engine.ddpm.runs import list_runs
from ui.diffusion_generate import forward_section, generate_section, guidance_costs, quality_section
from ui.diffusion_train import runs_section, seed_settings, train_section
from ui.visitor import visitor_token


def equations():
    with st.expander("The equations"):
        st.latex(r"q(x_t \mid x_0) = \mathcal{N}\left(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t)\,I\right),\quad \bar\alpha_t = \prod_{s\le t}(1-\beta_s) \qquad (4)")
        st.latex(r"\hat x_0 = \left(x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t, t)\right) / \sqrt{\bar\alpha_t} \qquad (15)")
        st.latex(r"L_\text{simple} = \mathbb{E}_{t, x_0, \epsilon}\left\lVert \epsilon - \epsilon_\theta\left(\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t\right)\right\rVert^2 \qquad (14)")
        st.latex(r"\epsilon = \epsilon_\theta(x_t, \varnothing) + w\left(\epsilon_\theta(x_t, y) - \epsilon_\theta(x_t, \varnothing)\right) \qquad \text{(guidance)}")
        st.caption("Numbers as in the DDPM paper. β_t rises linearly from 10⁻⁴ to 0.02 over T = 1,000 steps (or follows Improved DDPM's cosine). "
                   "The network predicts the noise ε; the sampler turns that into the guess x̂₀ and a slightly cleaner x_(t−1). "
                   "Guidance w > 1 (classifier-free, Ho & Salimans 2021) pushes the sample towards the digit asked for.")


seed_settings()

st.title("Diffusion: digits from noise")
st.markdown(
    "A **denoising diffusion model** (DDPM, Ho et al. 2020) learns to remove a little Gaussian noise from an image. "
    "Start from pure noise, remove noise a thousand times, and a handwritten digit appears. Press **Play** in the player "
    "to watch the shipped model do it, then scrub **t** in section 2 to see the noise it learned to undo."
)
equations()

runs = list_runs(visitor=visitor_token())
sources, source, recording = generate_section(runs)  # first: the player is on screen before the heavier sections below
data = forward_section()
classifier = quality_section(recording)
guidance_costs(sources, source, classifier, data)
view = train_section(data, runs)
runs_section(runs, data, view)
