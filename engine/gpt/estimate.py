"""What a GPT run will cost, before it starts: parameters, FLOPs, memory, time.

References:
1) karpathy/nanoGPT, model.py: `get_num_params` (the non-embedding count it prints) and
   `estimate_mfu`, whose FLOPs per token are 6N + 12·L·H·Q·T (PaLM paper, appendix B).
2) Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models", eq. (1):
   a layer keeps about s·b·h·(34 + 5·a·s/h) bytes of activations for the backward pass in 16-bit
   precision (s tokens, b sequences, h width, a heads); in float32 the tensors are twice as large.

The counts are exact (a test builds the model and compares); memory and time are estimates and
the page says so. `time_iterations` measures instead of estimating: a few real training steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from engine.gpt.model import GPT
from engine.gpt.train import GPTTrainConfig

BYTES_PER_PARAMETER = 16  # float32 weight, its gradient and AdamW's two moments


@dataclass(frozen=True)
class ParamCount:
    non_embedding: int  # nanoGPT's count: all but the position embeddings
    total: int


def count_params(config: GPTTrainConfig, vocab_size: int) -> ParamCount:
    """The parameters of `config`'s model without building it (GPT.get_num_params, by formula)."""
    d, L = config.n_embd, config.n_layer
    bias = 1 if config.bias else 0
    per_layer = (
        d * (1 + bias)  # ln_1
        + 3 * d * d + 3 * d * bias  # c_attn: query, key, value
        + d * d + d * bias  # attention's c_proj
        + d * (1 + bias)  # ln_2
        + 4 * d * d + 4 * d * bias  # c_fc
        + 4 * d * d + d * bias  # the MLP's c_proj
    )
    token_embedding = vocab_size * d  # tied with lm_head, so counted once
    total = token_embedding + config.block_size * d + L * per_layer + d * (1 + bias)  # ... + ln_f
    return ParamCount(non_embedding=total - config.block_size * d, total=total)


def flops_per_iter(config: GPTTrainConfig, vocab_size: int) -> float:
    """Forward and backward FLOPs of one training iteration (nanoGPT's estimate_mfu)."""
    N = count_params(config, vocab_size).non_embedding
    L, H, Q, T = config.n_layer, config.n_head, config.n_embd // config.n_head, config.block_size
    flops_per_token = 6 * N + 12 * L * H * Q * T
    return flops_per_token * T * config.batch_size * config.gradient_accumulation_steps


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int  # bytes: weights, gradients, AdamW's moments
    activations: int  # bytes kept for the backward pass of one micro-batch

    @property
    def total(self) -> int:
        return self.parameters + self.activations


def estimate_memory(config: GPTTrainConfig, vocab_size: int, bytes_per_value: int = 4) -> MemoryEstimate:
    """Training memory, roughly: 16 bytes per parameter plus reference 2's activations (float32 unless told)."""
    s, b, h, a = config.block_size, config.batch_size, config.n_embd, config.n_head
    scale = bytes_per_value / 2  # reference 2 counts 16-bit values
    per_layer = s * b * h * (34 + 5 * a * s / h) * scale
    logits = 3 * s * b * vocab_size * bytes_per_value  # logits, their softmax and its gradient
    activations = int(config.n_layer * per_layer + logits)
    return MemoryEstimate(parameters=BYTES_PER_PARAMETER * count_params(config, vocab_size).total, activations=activations)


CHARACTERS_PER_WORD = 5.5  # English text, a space included: tiny Shakespeare has 1,115,394 characters in ~202k words


@dataclass(frozen=True)
class RunShape:
    """The numbers a student reads beside the settings: what one iteration and the whole run see."""

    tokens_per_iter: int  # characters in one optimizer step: batch_size x block_size x gradient_accumulation_steps
    iters_per_epoch: float | None  # iterations for one pass over the training characters (None without data)
    epochs: float | None  # passes over the training characters that max_iters makes
    head_size: int  # numbers each attention head works with: n_embd / n_head
    context_words: float  # block_size in words, roughly
    decay_mismatch: bool  # lr_decay_iters is not max_iters: the schedule ends early or is cut off


def run_shape(config: GPTTrainConfig, train_characters: int | None) -> RunShape:
    per_epoch = train_characters / config.tokens_per_iter if train_characters else None
    return RunShape(
        tokens_per_iter=config.tokens_per_iter,
        iters_per_epoch=per_epoch,
        epochs=config.max_iters / per_epoch if per_epoch else None,
        head_size=config.n_embd // config.n_head,
        context_words=config.block_size / CHARACTERS_PER_WORD,
        decay_mismatch=config.decay_lr and config.lr_decay_iters != config.max_iters,
    )


def eta_seconds(config: GPTTrainConfig, ms_per_iter: float, from_iter: int = 0) -> float:
    """Time for the iterations left plus the evaluations, from a training step's time.

    An evaluation runs eval_iters forward passes on each split; a forward pass is about a third of
    a forward-backward step. The text sample at each evaluation is left out (milliseconds).
    """
    iterations = max(config.max_iters - from_iter, 0)
    evaluations = iterations // config.eval_interval + 1
    eval_ms = evaluations * 2 * config.eval_iters * ms_per_iter / (3 * config.gradient_accumulation_steps)
    return (iterations * ms_per_iter + eval_ms) / 1000


def time_iterations(config: GPTTrainConfig, vocab_size: int, steps: int = 3, device="cpu") -> float:
    """Milliseconds per training iteration of `config`'s model, measured: one warm-up step, then `steps` timed.

    Random tokens stand in for the text: the time does not depend on which characters they are.
    """
    torch.manual_seed(config.seed)
    model = GPT(config.model_config(vocab_size)).to(device)
    optimizer = model.configure_optimizers(config.weight_decay, config.learning_rate, (config.beta1, config.beta2), torch.device(device).type)
    x = torch.randint(vocab_size, (config.batch_size, config.block_size), device=device)  # (B, T)
    y = torch.randint(vocab_size, (config.batch_size, config.block_size), device=device)  # (B, T)

    def step():
        for _ in range(config.gradient_accumulation_steps):
            _, loss = model(x, y)
            (loss / config.gradient_accumulation_steps).backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000 * (time.perf_counter() - started) / steps


@dataclass(frozen=True)
class StepTime:
    """An iteration's time as a fixed cost (launching hundreds of small operations) plus a cost per FLOP,
    fitted through two measured configs; it is a line, so it is exact at both and rough elsewhere."""

    overhead_ms: float
    ms_per_gflop: float

    @classmethod
    def fit(cls, small: tuple[GPTTrainConfig, float], large: tuple[GPTTrainConfig, float], vocab_size: int = 65) -> "StepTime":
        (a, a_ms), (b, b_ms) = small, large
        a_gflop, b_gflop = flops_per_iter(a, vocab_size) / 1e9, flops_per_iter(b, vocab_size) / 1e9
        slope = max((b_ms - a_ms) / (b_gflop - a_gflop), 0.0) if b_gflop > a_gflop else b_ms / b_gflop
        return cls(overhead_ms=max(a_ms - slope * a_gflop, 0.0), ms_per_gflop=slope)

    def ms_per_iter(self, config: GPTTrainConfig, vocab_size: int) -> float:
        return self.overhead_ms + self.ms_per_gflop * flops_per_iter(config, vocab_size) / 1e9
