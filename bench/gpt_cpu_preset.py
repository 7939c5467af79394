"""nanoGPT's CPU recipe run in full, as its README does: the val loss at iteration 2000 and the wall time.

    DLLAB_DATA_DIR=../shared/data python -m bench.gpt_cpu_preset               # about two minutes per seed
    DLLAB_DATA_DIR=../shared/data python -m bench.gpt_cpu_preset --seeds 1337 1 2

Prints, per seed: the val loss as the training loop estimates it (20 batches of 12 x 64, as nanoGPT does),
the loss over the whole validation split (111,540 characters, which the 20 batches sample), and the
seconds for the whole run with its evaluations; beside nanoGPT's 1.8857 in 98.6 s on this lab's 2 cores.
The 20-batch figure moves by a few hundredths between seeds, so the whole-split loss is the one to compare.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from engine.core.device import describe_device, pick_device
from engine.core.jobs import SilentReporter
from engine.gpt.data import load_shakespeare, prepare_text
from engine.gpt.train import CPU, REFERENCE_VAL_LOSS, split_loss, train

NANOGPT_SECONDS = 98.6  # nanoGPT's train.py with the CPU recipe on this lab's 2 cores, evaluations included


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[CPU.seed], help="one run per seed (default %(default)s)")
    parser.add_argument("--data-dir", type=Path, help="a folder holding shakespeare/input.txt")
    args = parser.parse_args()

    print(f"device: {describe_device(pick_device('cpu'))}; torch {torch.__version__}")
    data = prepare_text(load_shakespeare(args.data_dir), "tiny Shakespeare")
    reference = REFERENCE_VAL_LOSS["cpu"]
    for seed in args.seeds:
        config = replace(CPU, seed=seed, device="cpu")
        report = SilentReporter()
        started = time.perf_counter()
        result = train(config, data, report)
        seconds = time.perf_counter() - started
        last = [row for row in report.metrics if "val_loss" in row][-1]
        whole = split_loss(result.model, data.val)
        print(
            f"seed {seed}: iteration {last['step']}  val loss {last['val_loss']:.4f} (20 batches; nanoGPT {reference})  "
            f"whole val split {whole:.4f}  best {result.best_val_loss:.4f} at {result.best_iter}  "
            f"{seconds:.1f} s for the run (nanoGPT {NANOGPT_SECONDS} s, ratio {NANOGPT_SECONDS / seconds:.2f}x)"
        )


if __name__ == "__main__":
    main()
