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
from scipy.special import ndtr

from engine.gpt.model import GPT


def _normalize(x):
    """LayerNorm without its gain and bias, which NumpyDecoder folds into the Linear that reads the result."""
    # np.add.reduce rather than x.mean: the same sums without mean's Python wrapper, a third of a step's time
    scale = 1.0 / x.shape[-1]
    centred = x - np.add.reduce(x, axis=-1, keepdims=True) * scale
    variance = np.add.reduce(centred * centred, axis=-1, keepdims=True) * scale
    return centred / np.sqrt(variance + 1e-5)


def _normalize_vector(x):
    """_normalize for one vector (C,): the variance as a dot product and the scale as a Python float, 4 numpy calls instead of 8."""
    centred = x - np.add.reduce(x) * (1.0 / x.shape[0])
    return centred * (1.0 / math.sqrt(float(np.dot(centred, centred)) / x.shape[0] + 1e-5))


def _fold_layer_norm(gain, bias, weight_t, linear_bias):
    """(n * gain + bias) @ W + b  ==  n @ (gain[:, None] * W) + (bias @ W + b): one multiply and add fewer per step."""
    folded_bias = linear_bias if bias is None else bias @ weight_t + (0 if linear_bias is None else linear_bias)
    return (gain[:, None] * weight_t).astype(np.float32), None if folded_bias is None else folded_bias.astype(np.float32)


def _linear(x, weight_t, bias):
    out = x @ weight_t  # weight_t is the Linear's weight transposed once, (in, out)
    return out + bias if bias is not None else out


def _gelu(x):
    return x * ndtr(x)  # nn.GELU's exact form, x·Φ(x), in one ufunc


class NumpyDecoder:
    """Feed tokens in order; after each feed, the logits for the next token. Holds at most block_size tokens."""

    def __init__(self, model: GPT):
        config = model.config
        self.n_head, self.n_embd, self.block_size = config.n_head, config.n_embd, config.block_size
        weights = {name: p.detach().float().cpu().numpy() for name, p in model.named_parameters()}
        weights.update({name: b.detach().float().cpu().numpy() for name, b in model.named_buffers()})
        get = weights.get
        self.wte, self.wpe = weights["transformer.wte.weight"], weights["transformer.wpe.weight"]
        self.layers = []
        head_size = self.n_embd // self.n_head
        for i in range(config.n_layer):
            p = f"transformer.h.{i}."
            c_attn_t, c_attn_bias = _fold_layer_norm(weights[p + "ln_1.weight"], get(p + "ln_1.bias"),
                                                     weights[p + "attn.c_attn.weight"].T, get(p + "attn.c_attn.bias"))
            # attention's 1/sqrt(head size) folded into the query's columns: one multiply fewer per step
            c_attn_t[:, : self.n_embd] *= np.float32(1.0 / math.sqrt(head_size))
            if c_attn_bias is not None:
                c_attn_bias[: self.n_embd] *= np.float32(1.0 / math.sqrt(head_size))
            self.layers.append(
                dict(
                    c_attn=(c_attn_t, c_attn_bias),
                    attn_proj=(weights[p + "attn.c_proj.weight"].T.copy(), get(p + "attn.c_proj.bias")),
                    c_fc=_fold_layer_norm(weights[p + "ln_2.weight"], get(p + "ln_2.bias"),
                                          weights[p + "mlp.c_fc.weight"].T, get(p + "mlp.c_fc.bias")),
                    mlp_proj=(weights[p + "mlp.c_proj.weight"].T.copy(), get(p + "mlp.c_proj.bias")),
                )
            )
        # tied: the output layer reads with the embedding matrix (after ln_f, folded in)
        self.lm_head = _fold_layer_norm(weights["transformer.ln_f.weight"], get("transformer.ln_f.bias"), self.wte.T, None)
        shape = (config.n_layer, self.n_head, self.block_size, head_size)
        self.keys = np.zeros(shape, np.float32)  # (n_layer, nh, block_size, hs)
        self.values = np.zeros(shape, np.float32)
        self.length = 0

    def reset(self) -> None:
        self.length = 0

    def feed(self, tokens: list[int]) -> np.ndarray:
        """Run `tokens` after the cached ones; returns the next-token logits (vocab,)."""
        if len(tokens) == 1:
            return self._step(tokens[0])
        T, start = len(tokens), self.length
        end = start + T
        if end > self.block_size:
            raise ValueError(f"Cannot run {T} tokens after {start}: the block size is only {self.block_size}.")
        nh, C = self.n_head, self.n_embd
        hs = C // nh
        x = self.wte[tokens] + self.wpe[start:end]  # (T, C)
        # query i (at position start + i) may see keys 0 .. start + i; one new token may see them all
        allowed = np.arange(end)[None, :] <= np.arange(start, end)[:, None] if T > 1 else None  # (T, end)
        for layer, p in enumerate(self.layers):
            qkv = _linear(_normalize(x), *p["c_attn"])  # (T, 3C)
            q, k, v = qkv.reshape(T, 3, nh, hs).transpose(1, 2, 0, 3)  # each (nh, T, hs)
            self.keys[layer, :, start:end] = k
            self.values[layer, :, start:end] = v
            scores = q @ self.keys[layer, :, :end].transpose(0, 2, 1)  # (nh, T, end); q comes scaled by 1/sqrt(hs)
            if allowed is not None:
                scores = np.where(allowed, scores, -np.inf)
            weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
            weights /= weights.sum(axis=-1, keepdims=True)
            y = (weights @ self.values[layer, :, :end]).transpose(1, 0, 2).reshape(T, C)  # (T, C): heads side by side
            x = x + _linear(y, *p["attn_proj"])
            x = x + _linear(_gelu(_linear(_normalize(x), *p["c_fc"])), *p["mlp_proj"])
        self.length = end
        return _linear(_normalize(x[-1]), *self.lm_head)  # (vocab,)

    def _step(self, token: int) -> np.ndarray:
        """feed() for one token, the usual case while generating: the same arithmetic on vectors, not (1, n)
        matrices, which takes a third fewer numpy calls (each costs about as much as its arithmetic here)."""
        position = self.length
        if position >= self.block_size:
            raise ValueError(f"Cannot run a token after {position}: the block size is only {self.block_size}.")
        nh, C = self.n_head, self.n_embd
        end = position + 1
        x = self.wte[token] + self.wpe[position]  # (C,)
        for layer, p in enumerate(self.layers):
            q, k, v = _linear(_normalize_vector(x), *p["c_attn"]).reshape(3, nh, C // nh)  # each (nh, hs)
            keys, values = self.keys[layer, :, :end], self.values[layer, :, :end]  # (nh, end, hs)
            keys[:, position], values[:, position] = k, v
            scores = np.matmul(keys, q[:, :, None])[:, :, 0]  # (nh, end)
            weights = np.exp(scores - np.maximum.reduce(scores, axis=-1, keepdims=True))
            weights /= np.add.reduce(weights, axis=-1, keepdims=True)
            y = np.matmul(weights[:, None, :], values).reshape(C)  # (C,): the heads side by side
            x = x + _linear(y, *p["attn_proj"])
            x = x + _linear(_gelu(_linear(_normalize_vector(x), *p["c_fc"])), *p["mlp_proj"])
        self.length = end
        return _linear(_normalize_vector(x), *self.lm_head)  # (vocab,)
