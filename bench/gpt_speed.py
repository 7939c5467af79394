"""How fast the character-level GPT trains and generates on this machine. Prints figures; asserts nothing.

    DLLAB_DATA_DIR=../shared/data python bench/gpt_speed.py        # about a minute on 2 cores
    python bench/gpt_speed.py --iters 100 --tokens 300 --big-tokens 0

1. Training: --iters iterations of the CPU preset on tiny Shakespeare through engine.gpt.train, the
   real loop, logging every iteration; ms/iter and tokens/s as the loop reports them, leaving out
   the first 10 as warm-up. Beside it, in the same run, nanoGPT's train.py loop written out plainly
   (bench/nanogpt_reference.py: random batch, forward, backward, clip, AdamW step; nothing else) on the
   same model. nanoGPT's README quotes about 36 ms/iter for these settings on this lab's 2 cores.
   bench/gpt_cpu_preset.py runs both for the whole 2000 iterations.
2. Generation from the model just trained: --tokens characters with the key/value cache
   (sample.generate) and with nanoGPT's full recompute (sample.generate_full_recompute), same seed;
   ms per character each, and the ratio (target 5x). Both must write the same first block_size - 1
   characters, where they compute the same thing.
   On the CPU the cached steps run in numpy (engine/gpt/decode.py): a 128-wide model's one-token
   step is a few dozen tiny operations, and numpy dispatches each about five times faster than torch.
3. The same at the GPU preset's model shape (6 layers, 384 wide, block 256; untrained, on this
   device), --big-tokens characters: there the cache saves more arithmetic, so its gain grows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import torch  # noqa: E402

from bench.nanogpt_reference import train_like_nanogpt  # noqa: E402
from engine.core.device import describe_device, pick_device  # noqa: E402
from engine.core.jobs import SilentReporter  # noqa: E402
from engine.gpt.data import load_shakespeare, prepare_text  # noqa: E402
from engine.gpt.model import GPT  # noqa: E402
from engine.gpt.sample import generate, generate_full_recompute  # noqa: E402
from engine.gpt.train import CPU, GPU, train  # noqa: E402

NANOGPT_MS_PER_ITER = 36  # nanoGPT's train.py, CPU settings, on this lab's 2-core machine


def time_training(data, iters: int, device: str):
    config = replace(CPU, max_iters=iters, eval_interval=10 * iters, log_interval=1, sample_chars=0, device=device)
    report = SilentReporter()
    result = train(config, data, report)
    rows = [row for row in report.metrics if "ms_per_iter" in row][10:]
    ms = [row["ms_per_iter"] for row in rows]
    return result, statistics.median(ms), statistics.mean(ms), config.tokens_per_iter


def time_plain_loop(data, iters: int) -> float:
    """Median ms/iter of nanoGPT's loop (on the CPU), first 10 iterations left out."""
    run = train_like_nanogpt(replace(CPU, max_iters=iters, eval_interval=10 * iters), data)
    return statistics.median(run.ms_per_iter[10:])


def time_generation(model: GPT, data, tokens: int, device) -> tuple[float, float, bool]:
    settings = dict(prompt="", max_new_tokens=tokens, temperature=0.8, top_k=200, seed=1337, device=device)
    started = time.perf_counter()
    cached = "".join(generate(model, data.tokenizer, **settings))
    cached_seconds = time.perf_counter() - started
    started = time.perf_counter()
    full = generate_full_recompute(model, data.tokenizer, **settings)
    full_seconds = time.perf_counter() - started
    same = min(tokens, model.config.block_size - 1)
    return cached_seconds, full_seconds, cached[:same] == full[:same]


def print_generation(label: str, tokens: int, cached: float, full: float, agree: bool) -> None:
    print(
        f"{label}: {tokens} characters  cached {1000 * cached / tokens:.2f} ms/char ({cached:.2f} s)  "
        f"full recompute {1000 * full / tokens:.2f} ms/char ({full:.2f} s)  ratio {full / cached:.1f}x  "
        f"(target 5x; first block agrees: {'yes' if agree else 'NO'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=200, help="training iterations to time (default %(default)s)")
    parser.add_argument("--tokens", type=int, default=500, help="characters to generate with the CPU preset (default %(default)s)")
    parser.add_argument("--big-tokens", type=int, default=400, help="characters at the GPU preset's shape; 0 skips (default %(default)s)")
    parser.add_argument("--device", default="cpu", help="device to run on (default %(default)s)")
    parser.add_argument("--data-dir", type=Path, help="a folder holding shakespeare/input.txt")
    args = parser.parse_args()

    device = pick_device(args.device)
    print(f"device: {describe_device(device)}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    data = prepare_text(load_shakespeare(args.data_dir), "tiny Shakespeare")

    result, median_ms, mean_ms, tokens_per_iter = time_training(data, args.iters, args.device)
    print(
        f"training, CPU preset ({result.model.get_num_params() / 1e6:.2f}M parameters, {tokens_per_iter} tokens/iter): "
        f"{args.iters} iterations, median {median_ms:.1f} ms/iter (mean {mean_ms:.1f}), "
        f"{tokens_per_iter / (median_ms / 1000):,.0f} tokens/s"
    )
    plain_ms = time_plain_loop(data, args.iters)
    print(
        f"training, nanoGPT's loop (bench/nanogpt_reference.py), same model: median {plain_ms:.1f} ms/iter, "
        f"{tokens_per_iter / (plain_ms / 1000):,.0f} tokens/s; the engine's loop runs at {plain_ms / median_ms:.2f}x its speed "
        f"(nanoGPT's README quotes ~{NANOGPT_MS_PER_ITER} ms/iter on this lab's machine, measured on another day)"
    )

    if args.tokens:
        print_generation("generation, CPU preset", args.tokens, *time_generation(result.model, data, args.tokens, device))
    if args.big_tokens:
        torch.manual_seed(0)
        big = GPT(GPU.model_config(data.tokenizer.vocab_size)).to(device).eval()
        label = f"generation, GPU preset's shape ({big.get_num_params() / 1e6:.2f}M, block {big.config.block_size})"
        print_generation(label, args.big_tokens, *time_generation(big, data, args.big_tokens, device))


if __name__ == "__main__":
    main()
