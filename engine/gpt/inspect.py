"""One prompt's trip through a GPT, every intermediate kept: the traced forward pass the transformer page draws.

References:
1) Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits": the residual stream as the
   sum of what the embedding and every attention head and MLP write into it; a head's write is its
   output times its slice of the attention's output matrix.
2) nostalgebraist 2020, "interpreting GPT: the logit lens": unembed the stream after each layer (through
   the final LayerNorm and the output layer) to see the model's guess take shape.
3) Vaswani et al. 2017: scaled dot-product attention, softmax(QK^T / sqrt(d_head)) V.

The pass follows `model.GPT` step by step (pre-LN blocks, causal attention, exact GELU, tied output
layer), with attention written out so its weights can be kept:

    (1) x_i = wte[token_i] + wpe[i]                                the embedding starts position i's stream
    (2) q_i, k_i, v_i = W_Q ln_1(x_i), W_K ln_1(x_i), W_V ln_1(x_i)  split into heads of d_head numbers
    (3) A_h[i, j] = softmax over j <= i of q_i . k_j / sqrt(d_head)  head h's attention; each row sums to 1
    (4) head_h(i) = W_O[:, head h's columns] sum_j A_h[i, j] v_j     what head h writes into the stream
    (5) x_i <- x_i + sum_h head_h(i) (+ W_O's bias)                  the first add
    (6) x_i <- x_i + W_down gelu(W_up ln_2(x_i))                     the MLP and the second add
    (7) logits_i = W_E ln_f(x_i)                                     unembed: the output layer is wte (weight tying)
    (8) p_i = softmax(logits_i / temperature)

Matrices are (out, in), as torch stores them. (7) applied to the stream after every layer is the logit
lens. Everything comes back as numpy arrays in a frozen `Trace`, which the page renders without
computing anything of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import torch

from engine.core.errors import DataError
from engine.gpt.model import GPT

STAGE_KINDS = ("embed", "attention", "attention_add", "mlp", "mlp_add", "unembed", "softmax")


@dataclass(frozen=True)
class Trace:
    """Every intermediate of one forward pass. L layers, T positions, C = n_embd, H heads, M = MLP width, V = vocabulary."""

    tokens: tuple[str, ...]  # the prompt's tokens as text, one per position
    ids: np.ndarray  # (T,) their ids
    vocabulary: tuple[str, ...]  # id -> text
    n_head: int
    d_head: int
    token_embedding: np.ndarray  # (T, C) wte rows of the tokens
    position_embedding: np.ndarray  # (T, C) wpe rows of the positions
    embedding: np.ndarray  # (T, C) their sum: the stream before layer 1, (1)
    resid_pre: np.ndarray  # (L, T, C) the stream entering each layer
    attn_input: np.ndarray  # (L, T, C) ln_1 of it
    q: np.ndarray  # (L, H, T, d_head)
    k: np.ndarray  # (L, H, T, d_head)
    v: np.ndarray  # (L, H, T, d_head)
    attn_scores: np.ndarray  # (L, H, T, T) q k^T / sqrt(d_head); -inf where a query would look ahead
    attention: np.ndarray  # (L, H, T, T) the attention weights, (3): row = query position, column = key position
    head_outputs: np.ndarray  # (L, H, T, C) each head's write into the stream, (4)
    attn_bias: np.ndarray  # (L, C) c_proj's bias (zeros without biases)
    attn_out: np.ndarray  # (L, T, C) the attention's whole write: sum of the heads + bias
    resid_mid: np.ndarray  # (L, T, C) the stream after the attention's add, (5)
    mlp_input: np.ndarray  # (L, T, C) ln_2 of it
    mlp_pre: np.ndarray  # (L, T, M) the up-projection, before GELU
    mlp_hidden: np.ndarray  # (L, T, M) after GELU
    mlp_out: np.ndarray  # (L, T, C) the down-projection: the MLP's write
    resid_post: np.ndarray  # (L, T, C) the stream after the MLP's add, (6)
    final_norm: np.ndarray  # (T, C) ln_f of the last layer's stream
    lens_logits: np.ndarray  # (L + 1, T, V) (7) applied after the embedding (row 0) and after each layer
    lens_probs: np.ndarray  # (L + 1, T, V) their softmax
    logits: np.ndarray  # (T, V) the model's logits at each position (= lens_logits[-1])
    probs: np.ndarray  # (T, V) the next-token probabilities at each position

    @property
    def n_layer(self) -> int:
        return self.resid_pre.shape[0]

    @property
    def length(self) -> int:
        return len(self.tokens)

    @property
    def n_embd(self) -> int:
        return self.embedding.shape[1]

    @property
    def mlp_width(self) -> int:
        return self.mlp_hidden.shape[2]

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def step_names(self) -> list[str]:
        """Labels for the stream's writes in order: the embedding, then each layer's attention and MLP."""
        names = ["embedding"]
        for layer in range(1, self.n_layer + 1):
            names += [f"layer {layer} attention", f"layer {layer} MLP"]
        return names

    def step_writes(self) -> np.ndarray:
        """(2L + 1, T, C): what each step adds to the stream; their sum over steps is the final stream."""
        writes = [self.embedding]
        for layer in range(self.n_layer):
            writes += [self.attn_out[layer], self.mlp_out[layer]]
        return np.stack(writes)

    def step_norms(self) -> np.ndarray:
        """(2L + 1, T): the L2 norm of each step's write at each position."""
        return np.linalg.norm(self.step_writes(), axis=-1)

    def stream_norms(self) -> np.ndarray:
        """(2L + 1, T): the L2 norm of the stream after each step (embedding, after attention 1, after MLP 1, ...)."""
        return np.linalg.norm(np.cumsum(self.step_writes(), axis=0), axis=-1)

    def lens_names(self) -> list[str]:
        return ["after the embedding"] + [f"after layer {layer}" for layer in range(1, self.n_layer + 1)]

    def top_tokens(self, probs: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k likeliest tokens of one distribution (V,), most likely first: (text, probability)."""
        order = np.argsort(-probs, kind="stable")[:k]
        return [(self.vocabulary[i], float(probs[i])) for i in order]

    def lens_top(self, position: int, k: int = 5) -> list[list[tuple[str, float]]]:
        """For each row of the logit lens, the top k next-token guesses at `position`."""
        return [self.top_tokens(row[position], k) for row in self.lens_probs]


def tempered(logits: np.ndarray, temperature: float) -> np.ndarray:
    """(8): softmax(logits / temperature), as sample.sample_next draws it (without top-k or top-p)."""
    if not (temperature > 0 and math.isfinite(temperature)):
        raise DataError(f"The temperature must be above 0, got {temperature}.")
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    weights = np.exp(scaled)
    return weights / weights.sum(axis=-1, keepdims=True)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


def trace_block(block, x: torch.Tensor, causal: torch.Tensor) -> dict[str, torch.Tensor]:
    """One block's intermediates for the stream x (T, C), by the Trace field they fill; the stream after the
    block is "resid_post". `causal` (T, T) says which keys each query sees."""
    attn, mlp = block.attn, block.mlp
    T, C = x.shape
    H = attn.n_head
    hs = C // H
    kept = {"resid_pre": x}
    kept["attn_input"] = h_in = block.ln_1(x)  # (T, C)
    q, k, v = attn.c_attn(h_in).split(C, dim=1)  # (2) each (T, C)
    kept["q"] = q = q.view(T, H, hs).transpose(0, 1)  # (H, T, hs)
    kept["k"] = k = k.view(T, H, hs).transpose(0, 1)  # (H, T, hs)
    kept["v"] = v = v.view(T, H, hs).transpose(0, 1)  # (H, T, hs)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (H, T, T)
    kept["attn_scores"] = scores = scores.masked_fill(~causal, float("-inf"))
    kept["attention"] = pattern = torch.softmax(scores, dim=-1)  # (3) (H, T, T)
    w_proj = attn.c_proj.weight.view(C, H, hs)  # (C_out, H, hs): the columns that read each head
    kept["head_outputs"] = heads = torch.einsum("hti,chi->htc", pattern @ v, w_proj)  # (4) (H, T, C)
    kept["attn_bias"] = bias = attn.c_proj.bias if attn.c_proj.bias is not None else torch.zeros(C, device=x.device)
    kept["attn_out"] = attn_out = heads.sum(0) + bias  # (T, C)
    kept["resid_mid"] = x = x + attn_out  # (5)
    kept["mlp_input"] = m_in = block.ln_2(x)  # (T, C)
    kept["mlp_pre"] = pre = mlp.c_fc(m_in)  # (T, M)
    kept["mlp_hidden"] = hidden = mlp.gelu(pre)  # (T, M)
    kept["mlp_out"] = mlp_out = mlp.c_proj(hidden)  # (T, C)
    kept["resid_post"] = x + mlp_out  # (6)
    return kept


@torch.inference_mode()
def trace(model: GPT, ids: Sequence[int], vocabulary: Sequence[str]) -> Trace:
    """Run token ids (T,) through `model` (put in eval mode), keeping every intermediate. `vocabulary[i]` is token i as text.

    The MLP's width is read from its weights, so a model whose MLP is not 4 x n_embd (the toy) traces too.
    """
    config = model.config
    if len(ids) == 0:
        raise DataError("The prompt is empty: type at least one token for the model to read.")
    if len(ids) > config.block_size:
        raise DataError(f"The prompt has {len(ids)} tokens; this model reads at most {config.block_size} (its block_size).")
    if len(vocabulary) != config.vocab_size:
        raise DataError(f"The vocabulary has {len(vocabulary)} tokens; the model expects {config.vocab_size}.")
    model.eval()
    device = model.lm_head.weight.device
    idx = torch.as_tensor(list(ids), dtype=torch.long, device=device)  # (T,)
    T, C, H = len(ids), config.n_embd, config.n_head
    hs = C // H
    wte, wpe = model.transformer.wte, model.transformer.wpe

    tok = wte(idx).float()  # (T, C)
    pos = wpe(torch.arange(T, device=device)).float()  # (T, C)
    x = tok + pos  # (1)
    causal = torch.ones(T, T, dtype=torch.bool, device=device).tril()  # (T, T): query i sees keys 0..i
    layers: list[dict[str, torch.Tensor]] = []  # each layer's intermediates, by the Trace field they fill
    lens = [x]
    for block in model.transformer.h:
        kept = trace_block(block, x, causal)
        x = kept["resid_post"]
        layers.append(kept)
        lens.append(x)
    stream = torch.stack(lens)  # (L + 1, T, C)
    lens_logits = model.lm_head(model.transformer.ln_f(stream))  # (7) (L + 1, T, V)
    lens_probs = torch.softmax(lens_logits.float(), dim=-1)
    stacked = {name: _numpy(torch.stack([kept[name] for kept in layers])) for name in layers[0]}  # each (L, ...)
    return Trace(
        tokens=tuple(vocabulary[i] for i in ids),
        ids=np.asarray(ids, dtype=np.int64),
        vocabulary=tuple(vocabulary),
        n_head=H,
        d_head=hs,
        token_embedding=_numpy(tok),
        position_embedding=_numpy(pos),
        embedding=_numpy(tok + pos),
        final_norm=_numpy(model.transformer.ln_f(x)),
        lens_logits=_numpy(lens_logits),
        lens_probs=_numpy(lens_probs),
        logits=_numpy(lens_logits[-1]),
        probs=_numpy(lens_probs[-1]),
        **stacked,
    )


def trace_prompt(model: GPT, tokenizer, prompt: str) -> Trace:
    """Encode `prompt` with `tokenizer` (a data.CharTokenizer or a toy.WordTokenizer) and trace it.

    A DataError says what is wrong with a prompt the model cannot read: empty, longer than its context,
    or using tokens outside its vocabulary (named).
    """
    vocabulary = tokenizer.vocabulary if hasattr(tokenizer, "vocabulary") else tuple(tokenizer.chars)
    unit = getattr(tokenizer, "unit", "character")
    if prompt == "" or (unit == "word" and not prompt.split()):
        raise DataError(f"The prompt is empty: type at least one {unit} for the model to read.")
    ids = tokenizer.encode(prompt, what="The prompt")
    limit = model.config.block_size
    if len(ids) > limit:
        raise DataError(
            f"The prompt has {len(ids)} {unit}s; this model reads at most {limit} (its context, block_size). "
            f"Shorten it by {len(ids) - limit} {unit}{'s' if len(ids) - limit > 1 else ''}."
        )
    return trace(model, ids, vocabulary)


# The stages of the flow diagram, and the numbers each one shows.


@dataclass(frozen=True)
class Stage:
    kind: str  # one of STAGE_KINDS
    layer: int | None = None  # 0-based, for the per-layer kinds

    @property
    def key(self) -> str:
        return self.kind if self.layer is None else f"{self.kind}:{self.layer}"

    @property
    def label(self) -> str:
        names = {
            "embed": "Embedding", "attention": "Attention", "attention_add": "Add attention to the stream",
            "mlp": "MLP", "mlp_add": "Add MLP to the stream", "unembed": "Unembed (ln_f, then Wᴇᵀ)", "softmax": "Softmax",
        }
        return names[self.kind] if self.layer is None else f"Layer {self.layer + 1}: {names[self.kind]}"

    @classmethod
    def from_key(cls, key: str) -> "Stage":
        kind, _, layer = key.partition(":")
        return cls(kind, int(layer) if layer else None)


def stages(n_layer: int) -> list[Stage]:
    """embed -> (attention -> add -> MLP -> add) x layers -> unembed -> softmax."""
    flow = [Stage("embed")]
    for layer in range(n_layer):
        flow += [Stage("attention", layer), Stage("attention_add", layer), Stage("mlp", layer), Stage("mlp_add", layer)]
    return flow + [Stage("unembed"), Stage("softmax")]


class Numbers(NamedTuple):
    """One named array of a stage. `axis` says what its last dimension counts (a key of AXES)."""

    name: str
    values: np.ndarray
    axis: str


AXES = {
    "stream": "dimension of the residual stream",
    "head": "dimension of the head",
    "key": "key position (the token attended to)",
    "mlp": "MLP unit",
    "vocab": "token of the vocabulary",
}


def stage_numbers(trace: Trace, stage: Stage, position: int | None = None) -> list[Numbers]:
    """The traced numbers of one stage: at `position` (vectors), or for every position (rows = positions).

    Nothing is computed here; each array is a slice of the trace.
    """
    at = slice(None) if position is None else position
    layer, H = stage.layer, trace.n_head
    if stage.kind == "embed":
        return [Numbers("token embedding (its row of wte)", trace.token_embedding[at], "stream"),
                Numbers("position embedding (its row of wpe)", trace.position_embedding[at], "stream"),
                Numbers("their sum: the stream's start", trace.embedding[at], "stream")]
    if stage.kind == "attention":
        numbers = [Numbers("input: ln_1(stream)", trace.attn_input[layer, at], "stream")]
        for head in range(H):
            numbers += [Numbers(f"head {head + 1} {part}", values[layer, head, at], "head")
                        for part, values in (("query q", trace.q), ("key k", trace.k), ("value v", trace.v))]
        numbers += [Numbers(f"head {head + 1} attention weights", trace.attention[layer, head, at], "key") for head in range(H)]
        numbers += [Numbers(f"head {head + 1} output (its write)", trace.head_outputs[layer, head, at], "stream") for head in range(H)]
        return numbers + [Numbers("attention output: the heads' sum", trace.attn_out[layer, at], "stream")]
    if stage.kind == "attention_add":
        return [Numbers("stream before", trace.resid_pre[layer, at], "stream"), Numbers("+ attention output", trace.attn_out[layer, at], "stream"),
                Numbers("= stream after", trace.resid_mid[layer, at], "stream")]
    if stage.kind == "mlp":
        return [Numbers("input: ln_2(stream)", trace.mlp_input[layer, at], "stream"),
                Numbers("up-projection, before GELU", trace.mlp_pre[layer, at], "mlp"),
                Numbers("after GELU", trace.mlp_hidden[layer, at], "mlp"),
                Numbers("down-projection: the MLP's output", trace.mlp_out[layer, at], "stream")]
    if stage.kind == "mlp_add":
        return [Numbers("stream before", trace.resid_mid[layer, at], "stream"), Numbers("+ MLP output", trace.mlp_out[layer, at], "stream"),
                Numbers("= stream after", trace.resid_post[layer, at], "stream")]
    if stage.kind == "unembed":
        return [Numbers("final stream", trace.resid_post[-1, at], "stream"), Numbers("after ln_f", trace.final_norm[at], "stream"),
                Numbers("logits", trace.logits[at], "vocab")]
    if stage.kind == "softmax":
        return [Numbers("logits", trace.logits[at], "vocab"), Numbers("probabilities", trace.probs[at], "vocab")]
    raise ValueError(f"Unknown stage {stage.kind!r}.")


def stage_weights(model: GPT, stage: Stage) -> list[tuple[str, np.ndarray]]:
    """The parameters a stage uses, named, as (out, in) matrices and vectors: for showing a small model in full."""
    layer = None if stage.layer is None else model.transformer.h[stage.layer]
    C = model.config.n_embd
    if stage.kind == "embed":
        return [("wte: token embeddings (one row per token)", _numpy(model.transformer.wte.weight)),
                ("wpe: position embeddings (one row per position)", _numpy(model.transformer.wpe.weight))]
    if stage.kind == "attention":
        w = _numpy(layer.attn.c_attn.weight)  # (3C, C)
        found = [("ln_1 gain", _numpy(layer.ln_1.weight)), ("W_Q (rows: query dimensions of all heads)", w[:C]),
                 ("W_K", w[C : 2 * C]), ("W_V", w[2 * C :]), ("W_O: c_proj (columns: the heads' dimensions)", _numpy(layer.attn.c_proj.weight))]
        return found + _biases(("ln_1 bias", layer.ln_1.bias), ("c_attn bias", layer.attn.c_attn.bias), ("c_proj bias", layer.attn.c_proj.bias))
    if stage.kind == "mlp":
        found = [("ln_2 gain", _numpy(layer.ln_2.weight)), ("W_up: c_fc", _numpy(layer.mlp.c_fc.weight)),
                 ("W_down: c_proj", _numpy(layer.mlp.c_proj.weight))]
        return found + _biases(("ln_2 bias", layer.ln_2.bias), ("c_fc bias", layer.mlp.c_fc.bias), ("c_proj bias", layer.mlp.c_proj.bias))
    if stage.kind == "unembed":
        found = [("ln_f gain", _numpy(model.transformer.ln_f.weight)), ("W_E = wte (the output layer shares it)", _numpy(model.lm_head.weight))]
        return found + _biases(("ln_f bias", model.transformer.ln_f.bias))
    return []  # the adds and the softmax have no parameters


def _biases(*named) -> list[tuple[str, np.ndarray]]:
    return [(name, _numpy(value)) for name, value in named if value is not None]

