"""The toy transformer: the seed's sizes, trained in seconds until it completes its sentences."""

import time

import numpy as np
import pytest
import torch

from engine.core.errors import ConfigError, DataError
from engine.core.jobs import SilentReporter
from engine.gpt.inspect import trace_prompt
from engine.gpt.toy import SENTENCES, ToyConfig, WordTokenizer, complete, train_toy


@pytest.fixture(scope="module")
def toy():
    started = time.perf_counter()
    result = train_toy(ToyConfig(), SilentReporter())
    return result, time.perf_counter() - started


def test_it_trains_in_seconds_and_completes_every_sentence(toy):
    result, seconds = toy
    assert seconds < 30  # about a second on one shared core; generous for a busy machine
    assert result.losses[-1] < result.losses[0] / 20
    for sentence in SENTENCES:
        words = sentence.split()
        for end in range(1, len(words)):
            assert complete(result, " ".join(words[:end])) == words[end], f"after {' '.join(words[:end])!r}"
    assert complete(result, "UCLA is at") == "Westwood"


def test_it_has_the_seeds_sizes(toy):
    result, _ = toy
    model, config = result.model, result.config
    assert (config.n_layer, config.n_embd, config.mlp_width) == (2, 4, 8)
    assert model.transformer.h[0].mlp.c_fc.weight.shape == (8, 4)
    assert model.transformer.h[1].mlp.c_proj.weight.shape == (4, 8)
    assert model.transformer.wte.weight.shape == (result.tokenizer.vocab_size, 4)
    assert result.parameters < 400  # every number fits on one screen


def test_its_trace_is_small_and_its_answer_is_confident(toy):
    result, _ = toy
    traced = trace_prompt(result.model, result.tokenizer, "Caltech is at")
    assert traced.tokens == ("Caltech", "is", "at") and traced.mlp_hidden.shape == (2, 3, 8)
    assert traced.top_tokens(traced.probs[-1], 1)[0][0] == "Pasadena"
    assert traced.probs[-1].max() > 0.8


def test_the_trace_of_its_8_wide_mlp_is_its_forward_pass(toy):
    result, _ = toy
    traced = trace_prompt(result.model, result.tokenizer, "Stanford is at Palo")
    idx = torch.tensor([traced.ids.tolist()])  # (1, T)
    with torch.no_grad():
        logits, _ = result.model(idx, idx)  # with targets: every position's logits
    np.testing.assert_allclose(traced.logits, logits[0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(traced.embedding + traced.attn_out.sum(0) + traced.mlp_out.sum(0), traced.resid_post[-1], atol=1e-4)


def test_unknown_words_and_long_prompts_are_explained(toy):
    result, _ = toy
    with pytest.raises(DataError, match=r"1 word\(s\) the toy model does not know: 'USC'. It knows only these"):
        trace_prompt(result.model, result.tokenizer, "USC is at")
    with pytest.raises(DataError, match="The prompt is empty: type at least one word"):
        trace_prompt(result.model, result.tokenizer, "   ")
    with pytest.raises(DataError, match=r"The prompt has 6 words; this model reads at most 5"):
        trace_prompt(result.model, result.tokenizer, "UCLA is at Westwood is in")


def test_the_vocabulary_is_the_words_in_order_of_appearance():
    tokenizer = WordTokenizer.from_sentences(["a b c", "c b d"])
    assert tokenizer.words == ("a", "b", "c", "d") and tokenizer.encode("d a") == [3, 0] and tokenizer.decode([1, 2]) == "b c"


def test_training_is_reproducible_from_the_seed():
    first, second = train_toy(ToyConfig(steps=20)), train_toy(ToyConfig(steps=20))
    np.testing.assert_array_equal(first.losses, second.losses)
    with pytest.raises(ConfigError, match="mlp_width must be between 1 and 64, got 0"):
        train_toy(ToyConfig(mlp_width=0))
