"""nanoGPT's CPU recipe run in full by the engine and by nanoGPT's own loop, in one run: val loss and speed.

    DLLAB_DATA_DIR=../shared/data python -m bench.gpt_cpu_preset               # about four minutes per seed
    DLLAB_DATA_DIR=../shared/data python -m bench.gpt_cpu_preset --seeds 1337 1 2

Per seed, two full runs of the CPU preset (2000 iterations, evaluations every 250): engine.gpt.train, the
loop the app and the CLI drive (reporting every iteration, a text sample at each evaluation), and
bench/nanogpt_reference.py, nanoGPT's train.py written out plainly. Printed for each: the val loss at
iteration 2000 as the loop estimates it (20 batches of 12 x 64), the loss over the whole validation split
(111,540 characters), the median milliseconds per iteration (evaluations left out) with tokens per second,
and the seconds for the whole run. nanoGPT's README figure on this lab's machine: 1.8857 at iteration 2000
with seed 1337, about 36 ms/iter, 98.6 s for the run. The 20-batch figure moves by a few hundredths
between seeds; for the same seed the two loops draw the same batches, so their figures should agree.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from bench.machine import describe_machine
from bench.nanogpt_reference import train_like_nanogpt
from engine.core.jobs import SilentReporter
from engine.gpt.data import load_shakespeare, prepare_text
from engine.gpt.train import CPU, REFERENCE_VAL_LOSS, split_loss, train

NANOGPT_SECONDS = 98.6  # nanoGPT's train.py with the CPU recipe on this lab's 2 cores, evaluations included


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[CPU.seed], help="one pair of runs per seed (default %(default)s)")
    parser.add_argument("--data-dir", type=Path, help="a folder holding shakespeare/input.txt")
    args = parser.parse_args()

    print(f"machine: {describe_machine()}; {torch.get_num_threads()} threads")
    data = prepare_text(load_shakespeare(args.data_dir), "tiny Shakespeare")
    reference = REFERENCE_VAL_LOSS["cpu"]
    print(f"nanoGPT's README on this machine: val loss {reference} at iteration 2000 (seed 1337), {NANOGPT_SECONDS} s")
    tokens = CPU.tokens_per_iter
    for seed in args.seeds:
        config = replace(CPU, seed=seed, device="cpu", log_interval=1)
        report = SilentReporter()
        started = time.perf_counter()
        result = train(config, data, report)
        engine_seconds = time.perf_counter() - started
        engine_val = [row for row in report.metrics if "val_loss" in row][-1]["val_loss"]
        engine_ms = statistics.median(row["ms_per_iter"] for row in report.metrics if "ms_per_iter" in row)
        engine_whole = split_loss(result.model, data.val)

        plain = train_like_nanogpt(config, data)
        plain_ms = statistics.median(plain.ms_per_iter)
        plain_whole = split_loss(plain.model, data.val)

        for label, val, whole, ms, seconds in (
            ("engine.gpt.train     ", engine_val, engine_whole, engine_ms, engine_seconds),
            ("nanoGPT's loop, plain", plain.evaluations[config.max_iters][1], plain_whole, plain_ms, plain.seconds),
        ):
            print(f"seed {seed} {label}: val loss at 2000 {val:.4f} (20 batches)  whole val split {whole:.4f}  "
                  f"{ms:.1f} ms/iter ({tokens / (ms / 1000):,.0f} tokens/s)  {seconds:.1f} s for the run")
        print(f"seed {seed}: engine throughput / nanoGPT loop's = {plain_ms / engine_ms:.2f}x per iteration, "
              f"{plain.seconds / engine_seconds:.2f}x for the whole run (target: at least 1.00x)")


if __name__ == "__main__":
    main()
