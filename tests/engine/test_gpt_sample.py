"""Sampling from the GPT: streaming, seeds, top-k / top-p, and settings checked before the first character."""

import pytest
import torch

from engine.core.errors import ConfigError, DataError
from engine.gpt.data import CharTokenizer
from engine.gpt.model import GPT, GPTConfig
from engine.gpt.sample import generate, generate_full_recompute, sample_next

TOKENIZER = CharTokenizer("\n abcdefgh")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(block_size=16, vocab_size=TOKENIZER.vocab_size, n_layer=2, n_head=2, n_embd=16)).eval()


def test_characters_stream_one_at_a_time(model):
    stream = generate(model, TOKENIZER, "abc", max_new_tokens=40, seed=0)
    first = next(stream)
    rest = list(stream)
    assert len(first) == 1 and all(len(ch) == 1 for ch in rest)
    assert len(rest) == 39
    assert set(first + "".join(rest)) <= set(TOKENIZER.chars)


def test_a_seed_makes_a_sample_repeatable(model):
    def text(seed):
        return "".join(generate(model, TOKENIZER, "a", 50, temperature=1.5, seed=seed))

    assert text(1) == text(1)
    assert text(1) != text(2)


def test_top_k_of_one_is_greedy_whatever_the_seed(model):
    greedy = "".join(generate(model, TOKENIZER, "ab", 30, top_k=1, seed=1))
    assert greedy == "".join(generate(model, TOKENIZER, "ab", 30, top_k=1, seed=2))
    assert greedy == "".join(generate(model, TOKENIZER, "ab", 30, top_p=1e-6, seed=3))  # the smallest nucleus
    assert greedy[:14] == generate_full_recompute(model, TOKENIZER, "ab", 14, top_k=1)  # within the block, nanoGPT's


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    drawn = {sample_next(logits, 1.0, None, 0.7, torch.Generator().manual_seed(s)) for s in range(200)}
    assert drawn == {0, 1}
    drawn = {sample_next(logits, 1.0, 2, 1.0, torch.Generator().manual_seed(s)) for s in range(200)}
    assert drawn == {0, 1}


def test_an_empty_prompt_starts_at_a_newline_and_a_long_prompt_is_cropped(model):
    assert len("".join(generate(model, TOKENIZER, "", 10, seed=0))) == 10
    assert len("".join(generate(model, TOKENIZER, "abcdefgh " * 5, 10, seed=0))) == 10  # 45 characters > block_size 16


@pytest.mark.parametrize(
    "settings, words",
    [
        ({"temperature": 0.0}, "temperature must be above 0"),
        ({"top_k": 0}, "top_k must be at least 1"),
        ({"top_p": 0.0}, "top_p must be above 0 and at most 1"),
        ({"top_p": 1.5}, "top_p must be above 0 and at most 1"),
        ({"max_new_tokens": -1}, "max_new_tokens must be between 0"),
    ],
)
def test_bad_settings_are_refused_at_the_call_not_the_first_character(model, settings, words):
    with pytest.raises(ConfigError, match=words):
        generate(model, TOKENIZER, **{"prompt": "a", "max_new_tokens": 5, **settings})


def test_a_prompt_outside_the_vocabulary_names_the_characters(model):
    with pytest.raises(DataError, match=r"The prompt has 2 character\(s\) outside the model's vocabulary: 'Z', 'é'"):
        generate(model, TOKENIZER, "abZé", 5)
