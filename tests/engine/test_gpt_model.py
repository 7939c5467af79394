"""The GPT model: nanoGPT's parameter counts, config validation, and the key/value cache against the full forward pass."""

import math

import pytest
import torch

from engine.core.errors import ConfigError, LabError
from engine.gpt.data import CharTokenizer
from engine.gpt.model import GPT, GPTConfig, KVCache
from engine.gpt.sample import CachedContext, generate, generate_full_recompute


def small_model(block_size=16, vocab_size=11, bias=False, seed=0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=2, n_head=2, n_embd=16, bias=bias)).eval()


@pytest.mark.parametrize(
    "config, millions",
    [
        (GPTConfig(block_size=256, vocab_size=65, n_layer=6, n_head=6, n_embd=384), 10.65),  # train_shakespeare_char
        (GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128), 0.80),  # nanoGPT's CPU settings
    ],
)
def test_non_embedding_parameter_count_is_nanogpts(config, millions):
    with torch.device("meta"):  # shapes only: no memory, no time
        model = GPT(config)
    assert round(model.get_num_params() / 1e6, 2) == millions
    assert model.get_num_params(non_embedding=False) - model.get_num_params() == config.block_size * config.n_embd


def test_output_layer_is_tied_to_the_token_embedding():
    model = small_model()
    assert model.lm_head.weight is model.transformer.wte.weight


def test_residual_projections_get_gpt2s_scaled_init():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=10, n_layer=8, n_head=4, n_embd=256))
    expected = 0.02 / math.sqrt(2 * 8)
    assert model.transformer.h[0].mlp.c_proj.weight.std().item() == pytest.approx(expected, rel=0.05)
    assert model.transformer.h[0].mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_n_embd_not_divisible_by_n_head_is_a_config_error_naming_both():
    with pytest.raises(ConfigError, match=r"n_embd \(100\) must be divisible by n_head \(6\)"):
        GPTConfig(n_embd=100, n_head=6).validate()


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"n_layer": 0}, "n_layer must be between 1"),
        ({"block_size": 0}, "block_size must be between 1"),
        ({"dropout": 1.0}, "dropout is a probability"),
        ({"vocab_size": 1}, "vocab_size must be between 2"),
    ],
)
def test_out_of_range_settings_say_the_limit(changes, words):
    with pytest.raises(LabError, match=words):
        GPT(GPTConfig(**{**dict(block_size=8, vocab_size=10, n_layer=1, n_head=1, n_embd=8), **changes}))


@pytest.mark.parametrize("bias", [False, True])
def test_cached_forward_in_chunks_equals_one_full_forward(bias):
    model = small_model(bias=bias)
    idx = torch.randint(11, (2, 16), generator=torch.Generator().manual_seed(1))
    cache = KVCache(model.config, batch_size=2)
    with torch.no_grad():
        full, _ = model(idx, idx)  # with targets: logits at every position, (B, T, vocab)
        model.forward_cached(idx[:, :5], cache)  # a prompt
        logits = model.forward_cached(idx[:, 5:9], cache)  # several tokens after a cache: the masked path
        torch.testing.assert_close(logits[:, 0], full[:, 8], rtol=1e-5, atol=1e-5)
        for t in range(9, 16):  # then one token at a time
            logits = model.forward_cached(idx[:, t : t + 1], cache)
            torch.testing.assert_close(logits[:, 0], full[:, t], rtol=1e-5, atol=1e-5)
    assert cache.length == 16 and cache.keys.shape == (2, 2, 2, 16, 8)  # (n_layer, B, nh, block_size, hs)
    with pytest.raises(ValueError, match="block size is only 16"):
        model.forward_cached(idx[:, :1], cache)


def test_cached_next_token_distributions_equal_the_full_forward_pass_over_a_long_generation():
    model = small_model(block_size=16)
    context = CachedContext(model, torch.device("cpu"))
    logits = context.start([1, 2, 3])
    tokens = torch.randint(11, (60,), generator=torch.Generator().manual_seed(2)).tolist()
    rebuilds = 0
    for token in tokens:  # 63 tokens through a 16-token window: the cache is rebuilt several times
        with torch.no_grad():
            reference, _ = model(torch.tensor([context.window]))  # nanoGPT's pass over the same context
        torch.testing.assert_close(torch.softmax(logits, -1), torch.softmax(reference[0, -1], -1), rtol=1e-5, atol=1e-6)
        before = len(context.window)
        logits = context.push(token)
        rebuilds += len(context.window) < before
        assert 1 <= len(context.window) <= 16
    assert rebuilds >= 3


def test_generation_with_the_cache_equals_nanogpts_full_recompute_within_the_block():
    model = small_model(block_size=32)
    tokenizer = CharTokenizer("abcdefghij\n")
    settings = dict(prompt="abc", max_new_tokens=29, temperature=1.0, top_k=None, seed=5)  # 3 + 29 = the whole block
    cached = "".join(generate(model, tokenizer, **settings))
    assert cached == generate_full_recompute(model, tokenizer, **settings)
    assert len(cached) == 29
