"""nanoGPT's train.py, written out plainly: the baseline the GPT engine is measured against.

karpathy/nanoGPT's train.py (the CPU recipe in its README: no compile, float32 on the CPU, no DDP),
step for step: seed torch's global generator; build the model and AdamW; draw the first batch;
then per iteration set the learning rate (warmup, cosine decay), every eval_interval estimate both
losses over eval_iters batches per split, forward, draw the next batch, backward, clip, step. Every
batch comes from torch's global generator in that order, as nanoGPT's get_batch draws it:
torch.randint for the window starts, windows stacked from the split's array.

The model is engine.gpt.model.GPT, whose modules, initialisation and forward pass follow nanoGPT's
model.py. Both halves are checked by the figure: with seed 1337 this loop reaches nanoGPT's own
val loss at iteration 2000 on this machine, 1.8857 (python -m bench.gpt_cpu_preset prints it).
Nothing here reports progress, saves checkpoints or samples text: it is the bare recipe, timed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.gpt.data import CharData
from engine.gpt.model import GPT
from engine.gpt.train import GPTTrainConfig


@dataclass
class ReferenceRun:
    evaluations: dict[int, tuple[float, float]] = field(default_factory=dict)  # iteration -> (train loss, val loss)
    losses: list[float] = field(default_factory=list)  # the training loss at each iteration
    ms_per_iter: list[float] = field(default_factory=list)  # each iteration's time, evaluations left out
    seconds: float = 0.0  # the whole run, evaluations included
    model: GPT | None = None


def train_like_nanogpt(config: GPTTrainConfig, data: CharData) -> ReferenceRun:
    """nanoGPT's training loop with `config`'s settings, on the CPU."""
    splits = {"train": data.train.numpy().astype(np.uint16), "val": data.val.numpy().astype(np.uint16)}  # as prepare.py writes them
    block_size, batch_size = config.block_size, config.batch_size

    def get_batch(split: str):
        array = splits[split]
        ix = torch.randint(len(array) - block_size, (batch_size,))
        x = torch.stack([torch.from_numpy(array[i : i + block_size].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(array[i + 1 : i + 1 + block_size].astype(np.int64)) for i in ix])
        return x, y

    def get_lr(it: int) -> float:
        if it < config.warmup_iters:
            return config.learning_rate * (it + 1) / (config.warmup_iters + 1)
        if it > config.lr_decay_iters:
            return config.min_lr
        ratio = (it - config.warmup_iters) / (config.lr_decay_iters - config.warmup_iters)
        return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (config.learning_rate - config.min_lr)

    torch.manual_seed(config.seed)
    model = GPT(config.model_config(data.tokenizer.vocab_size))
    # nanoGPT's configure_optimizers: weight decay on the matrices only; on the CPU, torch's default AdamW
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, betas=(config.beta1, config.beta2))

    @torch.no_grad()
    def estimate_loss() -> dict[str, float]:
        model.eval()
        out = {}
        for split in ("train", "val"):
            losses = torch.zeros(config.eval_iters)
            for k in range(config.eval_iters):
                X, Y = get_batch(split)
                _, loss = model(X, Y)
                losses[k] = loss.item()
            out[split] = losses.mean().item()
        model.train()
        return out

    run = ReferenceRun(model=model)
    started = time.perf_counter()
    X, Y = get_batch("train")
    iter_num = 0
    while True:
        lr = get_lr(iter_num) if config.decay_lr else config.learning_rate
        for group in optimizer.param_groups:
            group["lr"] = lr
        if iter_num % config.eval_interval == 0:
            losses = estimate_loss()
            run.evaluations[iter_num] = (losses["train"], losses["val"])
        if iter_num >= config.max_iters:  # nanoGPT takes one more step after this evaluation, which changes nothing reported
            break
        t0 = time.perf_counter()
        for _ in range(config.gradient_accumulation_steps):
            _, loss = model(X, Y)
            loss = loss / config.gradient_accumulation_steps
            X, Y = get_batch("train")
            loss.backward()
        if config.grad_clip != 0.0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        run.losses.append(loss.item() * config.gradient_accumulation_steps)  # nanoGPT's log_interval=1 reads it every iteration
        run.ms_per_iter.append(1000 * (time.perf_counter() - t0))
        iter_num += 1
    run.seconds = time.perf_counter() - started
    model.eval()
    return run
