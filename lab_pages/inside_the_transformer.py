"""Inside the transformer: one prompt's trip along a GPT's residual stream, with the model's real numbers."""

import streamlit as st

from ui.transformer import show_computation
from ui.transformer_picker import model_choices, model_picker, position_picker, prompt_trace
from ui.transformer_sections import (
    attention_section, flow_section, lens_section, next_token_section, stream_section, toy_parameters_section,
)

choices = model_choices()

st.title("Inside the transformer")
st.markdown(
    "Follow a prompt through a GPT. Each position's **token and position embeddings** start a vector, the *residual stream*; "
    "in every layer **attention** (which mixes in information from earlier positions) and an **MLP** (which works on each "
    "position alone) read the stream and *add* their output back to it; at the end the stream is **unembedded** into a score "
    "for every possible next character, and a **softmax** turns the scores into probabilities. Every number below comes "
    "from one traced run of the model on your prompt. Start with the toy model if this is new: it is small enough to print."
)
show_computation()

picked = model_picker(choices)  # stops the page when the model cannot be had
trace = prompt_trace(picked)  # stops the page on a prompt the model cannot read
position = position_picker(trace, picked)

st.subheader("1. The flow")
flow_section(trace, picked, position)

st.subheader("2. Attention")
attention_section(trace, position)

st.subheader("3. The residual stream")
stream_section(trace, position)

st.subheader("4. The logit lens")
lens_section(trace, position, picked.unit)

st.subheader(f"5. The next {picked.unit}")
next_token_section(trace, picked, position)

toy_parameters_section(trace, picked)
