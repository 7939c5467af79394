"""The traced forward pass: it is the model's own pass, its pieces add up to the stream, attention is causal."""

import numpy as np
import pytest
import torch

from engine.core.errors import DataError, LabError
from engine.gpt.data import CharTokenizer
from engine.gpt.inspect import AXES, Stage, stage_numbers, stage_weights, stages, tempered, trace, trace_prompt
from engine.gpt.model import GPT, GPTConfig

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
TOKENIZER = CharTokenizer.from_text(TEXT)


def small_model(bias=False, block_size=64, seed=0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(block_size=block_size, vocab_size=TOKENIZER.vocab_size, n_layer=3, n_head=4, n_embd=32, bias=bias)).eval()
    with torch.no_grad():  # non-trivial gains and biases, and projections as large as a trained model's, so mistakes show
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or "ln" in name:
                parameter.add_(torch.randn_like(parameter) * 0.3)
            elif name.endswith("c_proj.weight"):
                parameter.mul_(10)
    return model


@pytest.fixture(scope="module", params=[False, True], ids=["no biases", "biases"])
def traced(request):
    model = small_model(bias=request.param)
    return model, trace_prompt(model, TOKENIZER, TEXT[:40])


def forward_logits(model, ids):
    """GPT.forward's logits at every position (it returns them all when given targets)."""
    idx = torch.tensor([ids])  # (1, T)
    with torch.no_grad():
        logits, _ = model(idx, idx)
    return logits[0].numpy()  # (T, V)


def test_traced_final_logits_equal_the_models_forward_logits(traced):
    model, result = traced
    np.testing.assert_allclose(result.logits, forward_logits(model, list(result.ids)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result.probs.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(result.lens_logits[-1], result.logits)  # the lens's last row is the answer


def test_final_stream_is_the_embedding_plus_every_attention_and_mlp_write(traced):
    _, result = traced
    total = result.embedding + result.attn_out.sum(0) + result.mlp_out.sum(0)
    np.testing.assert_allclose(total, result.resid_post[-1], rtol=1e-4, atol=1e-4)
    # ... and each attention write is the sum of its heads' writes (plus c_proj's bias)
    np.testing.assert_allclose(result.head_outputs.sum(1) + result.attn_bias[:, None, :], result.attn_out, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(result.step_writes().sum(0), result.resid_post[-1], rtol=1e-4, atol=1e-4)
    assert result.step_norms().shape == (2 * 3 + 1, 40) and result.step_names()[1] == "layer 1 attention"


def test_attention_rows_sum_to_one_and_never_look_ahead(traced):
    _, result = traced
    L, H, T, _ = result.attention.shape
    assert (L, H, T) == (3, 4, 40)
    np.testing.assert_allclose(result.attention.sum(-1), 1.0, atol=1e-5)
    ahead = np.triu(np.ones((T, T), dtype=bool), k=1)  # key after query
    assert np.all(result.attention[..., ahead] == 0.0)
    assert np.all(np.isneginf(result.attn_scores[..., ahead]))
    assert np.all(result.attention[..., ~ahead] > 0)  # softmax: every earlier position gets some weight


def test_the_logit_lens_unembeds_the_stream_after_each_layer(traced):
    model, result = traced
    with torch.no_grad():
        after_first = model.lm_head(model.transformer.ln_f(torch.from_numpy(result.resid_post[0]))).numpy()
    assert result.lens_logits.shape == (3 + 1, 40, TOKENIZER.vocab_size)
    np.testing.assert_allclose(result.lens_logits[1], after_first, rtol=1e-4, atol=1e-5)
    top = result.lens_top(position=5, k=3)
    assert len(top) == 4 and all(len(row) == 3 for row in top)
    assert top[-1][0][1] == pytest.approx(result.probs[5].max())


def test_a_prompt_outside_the_vocabulary_is_refused_naming_the_characters():
    with pytest.raises(LabError, match=r"The prompt has 2 character\(s\) outside the model's vocabulary: '!', 'Z'"):
        trace_prompt(small_model(), TOKENIZER, "hear me!Z")


def test_an_empty_prompt_is_refused():
    with pytest.raises(DataError, match="The prompt is empty"):
        trace_prompt(small_model(), TOKENIZER, "")


def test_a_prompt_longer_than_the_context_names_the_limit():
    with pytest.raises(DataError, match=r"The prompt has 40 characters; this model reads at most 16 \(its context, block_size\)"):
        trace_prompt(small_model(block_size=16), TOKENIZER, TEXT[:40])
    assert trace_prompt(small_model(block_size=16), TOKENIZER, TEXT[:16]).length == 16


def test_temperature_reshapes_the_traced_probabilities():
    result = trace_prompt(small_model(), TOKENIZER, "Before")
    np.testing.assert_allclose(tempered(result.logits[-1], 1.0), result.probs[-1], atol=1e-6)
    cold, hot = tempered(result.logits[-1], 0.2), tempered(result.logits[-1], 5.0)
    assert cold.max() > result.probs[-1].max() > hot.max()
    assert cold.argmax() == hot.argmax() == result.probs[-1].argmax()
    with pytest.raises(DataError, match="temperature must be above 0"):
        tempered(result.logits[-1], 0.0)


def test_every_stage_shows_the_traced_numbers():
    model = small_model()
    result = trace_prompt(model, TOKENIZER, "Before we")
    flow = stages(model.config.n_layer)
    assert [stage.key for stage in flow[:3]] == ["embed", "attention:0", "attention_add:0"] and flow[-1].key == "softmax"
    assert len(flow) == 3 + 4 * 3 and all(Stage.from_key(stage.key) == stage for stage in flow)
    for stage in flow:
        at_one = stage_numbers(result, stage, position=4)
        every = stage_numbers(result, stage)
        assert all(numbers.values.ndim == 1 for numbers in at_one)
        assert all(numbers.values.shape[0] == 9 for numbers in every)
        assert all(numbers.axis in AXES for numbers in every)
    before, write, after = (numbers.values for numbers in stage_numbers(result, Stage("mlp_add", 1), position=4))
    np.testing.assert_allclose(before + write, after, atol=1e-5)
    weights = dict(stage_weights(model, Stage("attention", 0)))
    assert weights["W_K"].shape == (32, 32) and stage_weights(model, Stage("softmax")) == []


def test_ids_can_be_traced_directly():
    model = small_model()
    ids = TOKENIZER.encode("hear me")
    result = trace(model, ids, tuple(TOKENIZER.chars))
    assert result.tokens == tuple("hear me") and result.mlp_width == 4 * 32
