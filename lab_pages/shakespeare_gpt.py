"""Shakespeare GPT lab: nanoGPT's character-level transformer — generate, train live, compare runs."""

import streamlit as st

from engine.gpt.runs import list_runs
from ui.gpt_estimates import estimates_section
from ui.gpt_generate import generate_section
from ui.gpt_handout import equations
from ui.gpt_settings import seed_settings, settings_section, text_section
from ui.gpt_training import compare_section, training_section
from ui.visitor import visitor_token

seed_settings()
runs = list_runs(visitor=visitor_token())

st.title("Shakespeare GPT")
st.markdown(
    "A small **GPT** (Karpathy's nanoGPT) reads text one character at a time and learns to predict the next one; "
    "trained on 1 MB of Shakespeare, it writes new scenes in his style. Read what the shipped model writes first, then "
    "press **Train** with nanoGPT's CPU recipe and watch the loss fall while its samples turn from noise into dialogue. "
    "Loss is the cross-entropy of the next character in nats per character: ln 65 ≈ 4.17 is a uniform guess."
)
equations()

st.subheader("Generate")
generate_section(runs)

st.subheader("Train your own")
config = settings_section()
text, name, data = text_section(config)
ms = estimates_section(config, data, name, runs)
training_section(config, data, text, name, ms, runs)

st.subheader("Compare runs")
compare_section(runs)
