"""A character-level GPT, read top to bottom like nanoGPT's model.py.

References:
1) karpathy/nanoGPT, model.py: the structure and the names (wte, wpe, c_attn, c_proj, n_embd ...).
2) OpenAI's GPT-2 (Radford et al. 2019, "Language Models are Unsupervised Multitask Learners"):
   LayerNorm before each sub-block, a final LayerNorm, and the residual projections initialised with
   std 0.02 / sqrt(2 * n_layer) so the residual stream's variance does not grow with depth.
3) Vaswani et al. 2017, "Attention Is All You Need": scaled dot-product attention, softmax(QK^T / sqrt(d)) V.
4) huggingface/transformers' GPT-2: "past key values", a cache of every layer's keys and values.

Added to nanoGPT's model: that cache (`KVCache`). `forward_cached(idx, cache)` runs only the new
tokens, attending to the cached keys and values of the tokens before them, and adds theirs to the
cache; generating a character then costs one token's work instead of the whole context's.

No I/O, no training, no sampling here: train.py and sample.py own those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.nn import functional as F

from engine.core.config import check_fields, spec
from engine.core.errors import ConfigError

MAX_LAYERS = 48
MAX_HEADS = 64
MAX_EMBD = 4096
MAX_BLOCK_SIZE = 4096
MAX_VOCAB = 65_536


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias; PyTorch's cannot drop only the bias."""

    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, input):
        return F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)


class KVCache:
    """Every layer's keys and values for up to block_size tokens, written in place as tokens arrive.

    The buffers are allocated once, so a new token costs a write of its own keys and values rather
    than a copy of the whole cache (as growing it with torch.cat would).
    """

    def __init__(self, config: "GPTConfig", batch_size: int = 1, device=None, dtype=torch.float32):
        shape = (config.n_layer, batch_size, config.n_head, config.block_size, config.n_embd // config.n_head)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)  # (n_layer, B, nh, block_size, hs)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0  # tokens cached: the position of the next one

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Write k, v (B, nh, T, hs) after the cached tokens; returns the layer's keys and values (B, nh, length + T, hs)."""
        end = self.length + k.size(2)
        self.keys[layer, :, :, self.length : end] = k
        self.values[layer, :, :, self.length : end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: "GPTConfig"):
        super().__init__()
        # key, query, value projections for all heads, in one batched matrix
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = config.dropout  # applied inside scaled_dot_product_attention
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd

    def forward(self, x, cache: KVCache | None = None, layer: int = 0):
        """x (B, T, C) -> y (B, T, C). With a cache, x follows the cached tokens and its keys and values are added."""
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # each (B, T, C)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        if cache is not None:
            k, v = cache.store(layer, k, v)  # (B, nh, T_past + T, hs)
        T_all = k.size(2)
        # Which keys each query may see. Without a cache it is the usual causal triangle. One new token
        # after a cache may see every key. Several new tokens after a cache see the cache and the
        # triangle among themselves: query i sits at position T_past + i.
        mask, is_causal = None, False
        if T_all == T:
            is_causal = T > 1
        elif T > 1:
            mask = torch.ones(T, T_all, dtype=torch.bool, device=x.device).tril(diagonal=T_all - T)  # (T, T_all)
        dropout_p = self.attn_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): the heads' outputs side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: "GPTConfig"):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LN transformer block (GPT-2): x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: "GPTConfig"):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, cache: KVCache | None = None, layer: int = 0):
        x = x + self.attn(self.ln_1(x), cache, layer)
        x = x + self.mlp(self.ln_2(x))
        return x


@dataclass(frozen=True)
class GPTConfig:
    block_size: int = field(default=256, metadata=spec(1, MAX_BLOCK_SIZE, unit="characters"))  # the longest context, in characters
    vocab_size: int = field(default=65, metadata=spec(2, MAX_VOCAB))  # tiny Shakespeare has 65 distinct characters
    n_layer: int = field(default=6, metadata=spec(1, MAX_LAYERS))
    n_head: int = field(default=6, metadata=spec(1, MAX_HEADS))
    n_embd: int = field(default=384, metadata=spec(1, MAX_EMBD))
    dropout: float = field(default=0.0, metadata=spec(0, 1, below=True, label="dropout is a probability and"))
    bias: bool = False  # biases in Linears and LayerNorms; nanoGPT's Shakespeare configs go without

    def validate(self) -> "GPTConfig":
        check_fields(self)
        if self.n_embd % self.n_head != 0:
            raise ConfigError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): each head gets n_embd / n_head dimensions."
            )
        return self


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config.validate()
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying (Press & Wolf 2017): the output layer reads with the input embedding's matrix.
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        # GPT-2's scaled init of the projections that write into the residual stream
        for name, parameter in self.named_parameters():
            if name.endswith("c_proj.weight"):
                torch.nn.init.normal_(parameter, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def get_num_params(self, non_embedding: bool = True) -> int:
        """Parameters in the model. The non-embedding count leaves out the position embeddings; the token
        embeddings stay in, because through weight tying they are also the output layer (nanoGPT's count)."""
        n_params = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n_params -= self.transformer.wpe.weight.numel()
        return n_params

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def _transformer(self, idx, cache: KVCache | None):
        """idx (B, T), following the cached tokens if any -> final hidden states (B, T, n_embd)."""
        B, T = idx.size()
        offset = 0 if cache is None else cache.length
        if offset + T > self.config.block_size:
            raise ValueError(f"Cannot run {T} tokens after {offset}: the block size is only {self.config.block_size}.")
        pos = torch.arange(offset, offset + T, dtype=torch.long, device=idx.device)  # (T,)
        tok_emb = self.transformer.wte(idx)  # (B, T, n_embd)
        pos_emb = self.transformer.wpe(pos)  # (T, n_embd), broadcast over the batch
        x = self.transformer.drop(tok_emb + pos_emb)
        for layer, block in enumerate(self.transformer.h):
            x = block(x, cache, layer)
        if cache is not None:
            cache.length += T
        return self.transformer.ln_f(x)

    def forward(self, idx, targets=None):
        """idx (B, T) -> (logits, loss). With targets (B, T): logits (B, T, vocab) and the mean cross-entropy;
        without: the next-token logits only, (B, 1, vocab), and loss None."""
        x = self._transformer(idx, None)
        if targets is not None:
            logits = self.lm_head(x)  # (B, T, vocab)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        else:
            logits = self.lm_head(x[:, [-1], :])  # (B, 1, vocab): the list [-1] keeps the time dimension
            loss = None
        return logits, loss

    def forward_cached(self, idx, cache: KVCache):
        """idx (B, T), the tokens after those in `cache` -> next-token logits (B, 1, vocab); their keys and
        values join the cache. Positions continue from the cache's length, which with T must not pass block_size."""
        x = self._transformer(idx, cache)
        return self.lm_head(x[:, [-1], :])  # (B, 1, vocab)

    def configure_optimizers(self, weight_decay: float, learning_rate: float, betas: tuple[float, float], device_type: str):
        """AdamW with weight decay on the matrices (>= 2-D: Linears, embeddings) and none on gains and biases."""
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        # On CUDA the fused kernel is one launch for all parameters instead of several per tensor. On the CPU
        # the multi-tensor (foreach) form: the same arithmetic as nanoGPT's default, bit for bit (so its
        # reference runs can be met exactly), with a tenth less time per step; the CPU's fused kernel rounds differently.
        if device_type == "cuda":
            return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=True)
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, foreach=True)
