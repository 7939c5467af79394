"""The toy transformer: the seed's own example, small enough that every matrix and vector can be shown in full.

Two layers, a residual stream of 4 numbers per position, an MLP 8 wide, and a vocabulary of a dozen
words, trained in a second or two on a handful of sentences such as "UCLA is at Westwood" until it
completes every one of them.

It is `model.GPT` with one change: GPTConfig's MLP is always 4 x n_embd wide (16 here), and the seed's
example has 8, so `build_toy` swaps each block's two MLP layers for 4 -> 8 -> 4 ones. Nothing else in
GPT depends on that width; `inspect.trace` reads it from the weights.

Training is not train.train's loop: that one samples random windows of one long text. Here the data is
a few whole sentences, so every step is one full batch of them (shorter sentences padded, their
padding ignored by the loss), with AdamW, reporting through the same Reporter contract.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn

from engine.core.errors import ConfigError, DataError
from engine.core.jobs import Reporter, SilentReporter
from engine.gpt.model import GPT, GPTConfig

SENTENCES = (
    "UCLA is at Westwood",
    "Caltech is at Pasadena",
    "Stanford is at Palo Alto",
    "Westwood is in LA",
)
IGNORE = -1  # the target at a padded position: F.cross_entropy's ignore_index in GPT.forward


@dataclass(frozen=True)
class WordTokenizer:
    """One token per distinct word; words are separated by whitespace and compared exactly (UCLA is not ucla)."""

    words: tuple[str, ...]
    unit: ClassVar[str] = "word"

    @classmethod
    def from_sentences(cls, sentences) -> "WordTokenizer":
        seen: dict[str, None] = {}
        for sentence in sentences:
            seen.update(dict.fromkeys(sentence.split()))
        return cls(tuple(seen))  # in order of first appearance, so the matrices read like the sentences

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return self.words

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, text: str, what: str = "The text") -> list[int]:
        index = {word: i for i, word in enumerate(self.words)}
        unknown = [word for word in dict.fromkeys(text.split()) if word not in index]
        if unknown:
            raise DataError(
                f"{what} has {len(unknown)} word(s) the toy model does not know: {', '.join(map(repr, unknown))}. "
                f"It knows only these {self.vocab_size}: {' '.join(self.words)}."
            )
        return [index[word] for word in text.split()]

    def decode(self, ids) -> str:
        return " ".join(self.words[i] for i in ids)


@dataclass(frozen=True)
class ToyConfig:
    sentences: tuple[str, ...] = SENTENCES
    n_layer: int = 2  # the seed's example
    n_head: int = 2  # two heads of 2 dimensions each
    n_embd: int = 4  # the residual stream: 4 numbers per position
    mlp_width: int = 8  # the seed's 8-wide MLP; GPTConfig's would be 4 x n_embd = 16
    steps: int = 400  # full-batch AdamW steps, at most
    learning_rate: float = 0.05  # a 300-parameter model on 4 sentences can take large steps
    target_loss: float = 0.02  # stop early once the mean loss is this low (nats per word)
    seed: int = 0

    @property
    def block_size(self) -> int:
        return max(len(sentence.split()) for sentence in self.sentences)

    def validate(self) -> "ToyConfig":
        if not self.sentences or any(len(sentence.split()) < 2 for sentence in self.sentences):
            raise ConfigError("The toy needs at least one sentence, and each sentence needs at least 2 words.")
        if not 1 <= self.mlp_width <= 64:
            raise ConfigError(f"mlp_width must be between 1 and 64, got {self.mlp_width}.")
        if not 1 <= self.steps <= 10_000:
            raise ConfigError(f"steps must be between 1 and 10,000, got {self.steps}.")
        if not 0 < self.learning_rate <= 1:
            raise ConfigError(f"learning_rate must be above 0 and at most 1, got {self.learning_rate}.")
        self.model_config(vocab_size=2).validate()
        return self

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(block_size=self.block_size, vocab_size=vocab_size, n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd)


@dataclass(frozen=True)
class ToyResult:
    config: ToyConfig
    model: GPT  # trained, in eval mode
    tokenizer: WordTokenizer
    losses: list[float]  # the mean loss at each step, nats per word
    seconds: float

    @property
    def steps(self) -> int:
        return len(self.losses)

    @property
    def parameters(self) -> int:
        return self.model.get_num_params(non_embedding=False)


def build_toy(config: ToyConfig, vocab_size: int) -> GPT:
    """GPT with config's sizes and each MLP 4 -> mlp_width -> 4, initialised from config.seed."""
    with torch.random.fork_rng(devices=[]):  # seeds the initialisation without touching the caller's generator
        torch.manual_seed(config.seed)
        model = GPT(config.model_config(vocab_size))
        for block in model.transformer.h:
            block.mlp.c_fc = nn.Linear(config.n_embd, config.mlp_width, bias=False)
            block.mlp.c_proj = nn.Linear(config.mlp_width, config.n_embd, bias=False)
        for name, parameter in model.named_parameters():
            if parameter.dim() == 2:
                # GPT's std of 0.02 suits a 384-wide stream; in 4 dimensions it would start every logit at ~0
                nn.init.normal_(parameter, mean=0.0, std=0.5)
    return model


def sentence_batch(tokenizer: WordTokenizer, sentences, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every sentence as inputs and next-word targets, (S, block_size - 1) each; padding is ignored by the loss."""
    width = block_size - 1
    x = torch.zeros(len(sentences), width, dtype=torch.long)
    y = torch.full((len(sentences), width), IGNORE, dtype=torch.long)
    for row, sentence in enumerate(sentences):
        ids = torch.tensor(tokenizer.encode(sentence))
        x[row, : len(ids) - 1] = ids[:-1]
        y[row, : len(ids) - 1] = ids[1:]  # y is x shifted by one word
    return x, y


def train_toy(config: ToyConfig = ToyConfig(), report: Reporter | None = None) -> ToyResult:
    """Full-batch AdamW on the sentences until the loss reaches target_loss or the steps run out."""
    config.validate()
    report = report or SilentReporter()
    tokenizer = WordTokenizer.from_sentences(config.sentences)
    model = build_toy(config, tokenizer.vocab_size)
    x, y = sentence_batch(tokenizer, config.sentences, config.block_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.0)
    losses: list[float] = []
    started = time.perf_counter()
    model.train()
    report.progress(0, config.steps)
    for step in range(config.steps):
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 10 == 0:
            report.metric(step, loss=losses[-1])
            report.progress(step + 1, config.steps)
        if losses[-1] < config.target_loss or report.stop_requested:
            break
    report.metric(len(losses) - 1, loss=losses[-1])
    return ToyResult(config, model.eval(), tokenizer, losses, time.perf_counter() - started)


def complete(result: ToyResult, prompt: str) -> str:
    """The toy's most likely next word after `prompt`."""
    ids = result.tokenizer.encode(prompt, what="The prompt")
    if not ids:
        raise DataError("The prompt is empty: type at least one word.")
    idx = torch.tensor([ids[-result.config.block_size :]])  # (1, T)
    with torch.inference_mode():
        logits, _ = result.model(idx)  # (1, 1, V)
    return result.tokenizer.words[int(logits[0, -1].argmax())]
