"""Serves the Shakespeare GPT page only: the equations it rests on, and what each setting is, what raising it costs
and buys, with the current numbers."""

from __future__ import annotations

import streamlit as st

from engine.gpt.estimate import RunShape
from engine.gpt.train import GPTTrainConfig
from ui.equations import equations_expander


def equations() -> None:
    """The loss, the schedule and the parameter count, numbered as the page's captions cite them."""
    equations_expander("The loss, the learning rate and the parameter count", [
        r"\mathcal{L} = -\frac{1}{N}\sum_{t=1}^{N} \ln p_\theta\left(x_{t+1} \mid x_{t-T+1}, \dots, x_t\right) \qquad (1)",
        r"\eta(i) = \begin{cases} \eta_{\max}\,\frac{i+1}{w+1} & i < w \\ \eta_{\min} + \frac{1}{2}\left(1 + \cos \pi\frac{i-w}{D-w}\right)"
        r"(\eta_{\max} - \eta_{\min}) & w \le i \le D \\ \eta_{\min} & i > D \end{cases} \qquad (2)",
        r"N_{\text{non-embedding}} = L\,(12 d^2 + 2d) + V d + d \qquad (3)",
    ], "(1) T = block_size characters of context. (2) w = warmup_iters, D = lr_decay_iters, η_max = learning_rate, "
       "η_min = min_lr. (3) L = n_layer, d = n_embd, V = the vocabulary; without biases; the token embedding is also "
       "the output layer (weight tying), and nanoGPT leaves the position embeddings out of its count.")


def handout(config: GPTTrainConfig, shape: RunShape, text_name: str | None) -> None:
    """An expander a student can read like a course handout; every number in it is the current settings'."""
    if shape.decay_mismatch:
        ends = "before the run ends: the last iterations train at min_lr" if config.lr_decay_iters < config.max_iters else (
            "after the run ends: the rate never gets down to min_lr")
        st.caption(f":material/warning: lr_decay_iters ({config.lr_decay_iters:,}) differs from max_iters ({config.max_iters:,}), so the "
                   f"cosine decay ends {ends}. nanoGPT sets them equal.")
    epochs = (f"{shape.iters_per_epoch:,.0f} iterations make one pass (an epoch) over the {text_name or 'training text'}'s training "
              f"characters, so max_iters {config.max_iters:,} is about {shape.epochs:.1f} epochs" if shape.epochs else
              "choose a text to see how many passes over it max_iters makes")
    with st.expander("What each setting does, with these settings' numbers"):
        st.markdown(f"""
**Batch and context.** One *micro-batch* is `batch_size` = {config.batch_size} sequences of `block_size` = {config.block_size}
characters, drawn from random places in the text; the model predicts every next character in each. Gradients of
`gradient_accumulation_steps` = {config.gradient_accumulation_steps} micro-batches are added up before one optimizer step, so an
iteration sees **{shape.tokens_per_iter:,} characters** (batch × block × accumulation) for the memory of one micro-batch. {epochs}.
A bigger batch gives a less noisy gradient per step but costs time per step; accumulation buys the same with time instead of memory.

**Context** (`block_size`): the model sees at most {config.block_size} characters back, about **{shape.context_words:.0f} words**.
Longer context lets it keep a speaker's name or a rhyme in view; attention's cost grows with its square, and the position
embeddings it learns grow with it.

**Width and heads** (`n_embd`, `n_head`): every character is {config.n_embd} numbers in the residual stream; attention splits
them among {config.n_head} heads of **{shape.head_size} numbers each** (head size = n_embd / n_head). More width holds more
about each character (parameters grow with its square); more heads look at more things at once, each with a smaller view.

**Depth** (`n_layer`): {config.n_layer} blocks of attention + MLP, one after another. Each adds about 12 × n_embd² parameters
and a step of reasoning; deeper models learn more slowly at first and need the warmup.

**Dropout** ({config.dropout:g}): while training, each activation is zeroed with this chance, so the model cannot lean on any one
of them. It helps when a big model trains long on little text and starts to memorise it (the val loss rises while the train
loss falls); for small, short runs 0 is better, as in nanoGPT's CPU recipe.

**Learning rate and schedule**: the rate rises linearly for `warmup_iters` = {config.warmup_iters:,} iterations (large early
updates would throw a fresh model off course), then falls along a cosine to `min_lr` = {config.min_lr:g} at `lr_decay_iters`
= {config.lr_decay_iters:,}; the curve beside the estimates is this schedule. A higher peak learns faster until it diverges;
small models tolerate higher rates than big ones.

**AdamW** (`beta1` {config.beta1:g}, `beta2` {config.beta2:g}, `weight_decay` {config.weight_decay:g}): the optimizer keeps a running
mean of the gradient (beta1) and of its square (beta2); weight decay pulls the weight matrices toward zero, a mild brake on
memorising. `grad_clip` = {config.grad_clip:g} caps the gradient's overall length so one odd batch cannot wreck the weights.

**Evaluation** (`eval_interval` {config.eval_interval:,}, `eval_iters` {config.eval_iters:,}): every eval_interval iterations the
loss is averaged over eval_iters batches of each split; the best val loss so far is the checkpoint kept. More batches give a
steadier estimate and cost time that does not train.
""")
