"""The GPT's forward pass with a key/value cache, in numpy, for generating on the CPU.

When a character-level model writes one character at a time, each step is a few dozen operations on
vectors of a hundred numbers. Torch spends about 5 µs dispatching each of them; numpy about 1 µs.
So at the CPU preset's size (4 layers, 128 wide) a torch step costs ~0.7 ms, nearly all overhead,
and recomputing the whole 64-character context costs only 2-3 times that. The same step here costs
~0.25 ms. `NumpyDecoder` holds a float32 copy of a trained model's weights and the keys and values
of every layer; it computes exactly `model.GPT`'s forward pass (pre-LN blocks, causal attention,
exact GELU, tied output layer), which a test checks against the torch model. On a GPU, sampling
uses the torch path (`GPT.forward_cached`) instead.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

from engine.gpt.model import GPT


def _layer_norm(x, weight, bias):
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    out = centred / np.sqrt(variance + 1e-5) * weight
    return out + bias if bias is not None else out


def _linear(x, weight_t, bias):
    out = x @ weight_t  # weight_t is the Linear's weight transposed once, (in, out)
    return out + bias if bias is not None else out


def _gelu(x):
    return 0.5 * x * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))  # nn.GELU's exact form


class NumpyDecoder:
    """Feed tokens in order; after each feed, the logits for the next token. Holds at most block_size tokens."""

    def __init__(self, model: GPT):
        config = model.config
        self.n_head, self.n_embd, self.block_size = config.n_head, config.n_embd, config.block_size
        weights = {name: p.detach().float().cpu().numpy() for name, p in model.named_parameters()}
        weights.update({name: b.detach().float().cpu().numpy() for name, b in model.named_buffers()})
        get = weights.get
        self.wte, self.wpe = weights["transformer.wte.weight"], weights["transformer.wpe.weight"]
        self.ln_f = (weights["transformer.ln_f.weight"], get("transformer.ln_f.bias"))
        self.layers = []
        for i in range(config.n_layer):
            p = f"transformer.h.{i}."
            self.layers.append(
                dict(
                    ln_1=(weights[p + "ln_1.weight"], get(p + "ln_1.bias")),
                    c_attn=(weights[p + "attn.c_attn.weight"].T.copy(), get(p + "attn.c_attn.bias")),
                    attn_proj=(weights[p + "attn.c_proj.weight"].T.copy(), get(p + "attn.c_proj.bias")),
                    ln_2=(weights[p + "ln_2.weight"], get(p + "ln_2.bias")),
                    c_fc=(weights[p + "mlp.c_fc.weight"].T.copy(), get(p + "mlp.c_fc.bias")),
                    mlp_proj=(weights[p + "mlp.c_proj.weight"].T.copy(), get(p + "mlp.c_proj.bias")),
                )
            )
        self.lm_head_t = self.wte.T.copy()  # tied: the output layer reads with the embedding matrix
        head_size = self.n_embd // self.n_head
        shape = (config.n_layer, self.n_head, self.block_size, head_size)
        self.keys = np.zeros(shape, np.float32)  # (n_layer, nh, block_size, hs)
        self.values = np.zeros(shape, np.float32)
        self.length = 0

    def reset(self) -> None:
        self.length = 0

    def feed(self, tokens: list[int]) -> np.ndarray:
        """Run `tokens` after the cached ones; returns the next-token logits (vocab,)."""
        T, start = len(tokens), self.length
        end = start + T
        if end > self.block_size:
            raise ValueError(f"Cannot run {T} tokens after {start}: the block size is only {self.block_size}.")
        nh, C = self.n_head, self.n_embd
        hs = C // nh
        x = self.wte[tokens] + self.wpe[start:end]  # (T, C)
        # query i (at position start + i) may see keys 0 .. start + i
        allowed = np.arange(end)[None, :] <= np.arange(start, end)[:, None]  # (T, end)
        for layer, p in enumerate(self.layers):
            qkv = _linear(_layer_norm(x, *p["ln_1"]), *p["c_attn"])  # (T, 3C)
            q, k, v = qkv.reshape(T, 3, nh, hs).transpose(1, 2, 0, 3)  # each (nh, T, hs)
            self.keys[layer, :, start:end] = k
            self.values[layer, :, start:end] = v
            scores = q @ self.keys[layer, :, :end].transpose(0, 2, 1) * (1.0 / math.sqrt(hs))  # (nh, T, end)
            scores = np.where(allowed, scores, -np.inf)
            weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
            weights /= weights.sum(axis=-1, keepdims=True)
            y = (weights @ self.values[layer, :, :end]).transpose(1, 0, 2).reshape(T, C)  # (T, C): heads side by side
            x = x + _linear(y, *p["attn_proj"])
            x = x + _linear(_gelu(_linear(_layer_norm(x, *p["ln_2"]), *p["c_fc"])), *p["mlp_proj"])
        self.length = end
        return _layer_norm(x[-1], *self.ln_f) @ self.lm_head_t  # (vocab,)
