"""Generating text from a trained GPT, one character at a time.

`generate` is what the CLI and the page use: a Python generator that yields each character as soon as
it is drawn, so text can stream. It keeps every layer's keys and values (`GPT.forward_cached`), so
each new character costs one token's forward pass. `generate_full_recompute` is nanoGPT's loop, which
runs the whole context through the model for every character; the tests and the bench compare the two.

Each step draws the next character like nanoGPT's sample.py, with nucleus sampling added:
1. logits / temperature (below 1 sharpens the distribution, above 1 flattens it);
2. keep the top_k largest logits;
3. softmax;
4. keep the smallest set of most probable characters whose probabilities sum to at least top_p
   (Holtzman et al. 2019, "The Curious Case of Neural Text Degeneration");
5. draw one, with the run's own torch.Generator.

The window. The model has position embeddings for positions 0 .. block_size - 1 only, so a cached key
cannot slide to an earlier position. nanoGPT crops the context to the last block_size characters at
every step; with a cache that would mean rebuilding it at every step once the text is that long. So
`CachedContext`, once full, rebuilds from the last `keep` characters (block_size // 2) in one forward
pass and goes on from there. Up to block_size characters both paths compute the same thing; beyond, the
cached path conditions on between `keep` and block_size characters instead of exactly block_size.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch

from engine.core.config import SEED, check_value
from engine.core.errors import ConfigError
from engine.gpt.data import CharTokenizer
from engine.gpt.decode import NumpyDecoder
from engine.gpt.model import GPT, KVCache

MAX_NEW_TOKENS = 100_000


def check_sampling(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float, seed: int | None = None) -> None:
    if seed is not None:
        check_value("seed", seed, int, SEED)
    if not 0 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise ConfigError(f"max_new_tokens must be between 0 and {MAX_NEW_TOKENS:,}, got {max_new_tokens}.")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ConfigError(f"temperature must be above 0 (1 samples the model as trained; lower is more conservative), got {temperature}.")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top_k must be at least 1 (1 always picks the most likely character), got {top_k}.")
    if not 0 < top_p <= 1:
        raise ConfigError(f"top_p must be above 0 and at most 1 (1 turns nucleus sampling off), got {top_p}.")


def prompt_ids(tokenizer: CharTokenizer, prompt: str) -> list[int]:
    """The prompt's token ids; an empty prompt starts at a newline, as nanoGPT's sample.py does."""
    if prompt == "":
        prompt = "\n" if "\n" in tokenizer.chars else tokenizer.chars[0]
    return tokenizer.encode(prompt, what="The prompt")


def sample_next(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float, generator: torch.Generator | None) -> int:
    """Steps 1-5 of the module docstring on one distribution: logits (vocab,) -> a token id."""
    logits = logits.float() / temperature  # (vocab,)
    if top_k is not None and top_k < logits.size(-1):
        v, _ = torch.topk(logits, top_k)
        logits = logits.masked_fill(logits < v[-1], float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # drop a character when the more probable ones before it already reach top_p; the first always stays
        outside = sorted_probs.cumsum(-1) - sorted_probs >= top_p
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs.masked_fill(outside, 0.0))
    return int(torch.multinomial(probs, num_samples=1, generator=generator))


def make_generator(seed: int | None, device) -> torch.Generator:
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


class CachedContext:
    """The characters the model currently sees (`window`), with every layer's keys and values for them.

    On the CPU the steps run in numpy (`decode.NumpyDecoder`, several times faster per character);
    elsewhere through the torch model's own cache (`GPT.forward_cached`).
    """

    def __init__(self, model: GPT, device, keep: int | None = None):
        self.model = model
        self.device = torch.device(device)
        self.block_size = model.config.block_size
        self.keep = keep or max(1, self.block_size // 2)
        self.window: list[int] = []
        if self.device.type == "cpu":
            self.decoder = NumpyDecoder(model)
        else:
            self.decoder = None
            self.cache = KVCache(model.config, batch_size=1, device=device, dtype=model.lm_head.weight.dtype)

    def _feed(self, ids: list[int]) -> torch.Tensor:
        if self.decoder is not None:  # numpy: no autograd to turn off (inference_mode's switch costs a tenth of a step)
            return torch.from_numpy(self.decoder.feed(ids))
        with torch.inference_mode():
            idx = torch.tensor([ids], dtype=torch.long, device=self.device)  # (1, T)
            return self.model.forward_cached(idx, self.cache)[0, -1]

    def start(self, ids: list[int]) -> torch.Tensor:
        """Fill the cache with the last block_size of `ids`; returns the next-token logits (vocab,)."""
        self.window = list(ids[-self.block_size :])
        if self.decoder is not None:
            self.decoder.reset()
        else:
            self.cache.length = 0
        return self._feed(self.window)

    def push(self, token: int) -> torch.Tensor:
        """Append one token; returns the logits (vocab,) for the token after it."""
        if len(self.window) == self.block_size:
            return self.start((self.window + [token])[-self.keep :])
        self.window.append(token)
        return self._feed([token])


class FullContext:
    """nanoGPT's GPT.generate: the whole context, cropped to its last block_size characters, through the model for
    every new character. Slower than CachedContext, and the reference it is tested against."""

    def __init__(self, model: GPT, device):
        self.model = model
        self.device = torch.device(device)
        self.idx = torch.empty(1, 0, dtype=torch.long, device=self.device)  # (1, T)

    @torch.no_grad()
    def _logits(self) -> torch.Tensor:
        idx_cond = self.idx[:, -self.model.config.block_size :]  # (1, <= block_size)
        logits, _ = self.model(idx_cond)  # (1, 1, vocab)
        return logits[0, -1]

    def start(self, ids: list[int]) -> torch.Tensor:
        self.idx = torch.tensor([ids], dtype=torch.long, device=self.device)  # (1, T)
        return self._logits()

    def push(self, token: int) -> torch.Tensor:
        self.idx = torch.cat([self.idx, torch.tensor([[token]], device=self.device)], dim=1)  # (1, T + 1)
        return self._logits()


def model_device(model: GPT) -> torch.device:
    return next(model.parameters()).device


def generate(
    model: GPT,
    tokenizer: CharTokenizer,
    prompt: str = "",
    max_new_tokens: int = 500,
    temperature: float = 0.8,
    top_k: int | None = 200,
    top_p: float = 1.0,
    seed: int | None = None,
    device=None,
    recompute: bool = False,
) -> Iterator[str]:
    """Yield `max_new_tokens` characters that continue `prompt`, one at a time, using the key/value cache
    (or, with `recompute`, nanoGPT's full forward pass for each character).

    Settings are checked now, not at the first character. The model is put in eval mode (no dropout).
    """
    check_sampling(max_new_tokens, temperature, top_k, top_p, seed)
    ids = prompt_ids(tokenizer, prompt)
    device = torch.device(device) if device is not None else model_device(model)
    generator = make_generator(seed, device)
    model.eval()

    def stream() -> Iterator[str]:
        context = FullContext(model, device) if recompute else CachedContext(model, device)
        logits = context.start(ids)
        for step in range(max_new_tokens):
            token = sample_next(logits, temperature, top_k, top_p, generator)
            yield tokenizer.chars[token]
            if step + 1 < max_new_tokens:
                logits = context.push(token)

    return stream()


def generate_full_recompute(model: GPT, tokenizer: CharTokenizer, prompt: str = "", max_new_tokens: int = 500, **settings) -> str:
    """nanoGPT's GPT.generate: the whole (cropped) context through the model for every new character.
    `settings` are generate's (temperature, top_k, top_p, seed, device)."""
    return "".join(generate(model, tokenizer, prompt, max_new_tokens, recompute=True, **settings))
