"""The fast preset against nanoGPT's CPU recipe: the same quality, in how much of its time?

    DLLAB_DATA_DIR=../shared/data python -m bench.gpt_time_to_quality               # about four minutes on 2 cores
    DLLAB_DATA_DIR=../shared/data python -m bench.gpt_time_to_quality --repeats 3   # alternating order, with the spread

Each repeat runs two whole processes, one after the other, as a person would type them:
`python -m engine.gpt train --preset cpu --out DIR` (nanoGPT's CPU recipe) and the same with `--preset fast`,
and times each from start to exit (Python's start, the imports, reading the text, the evaluations, the text
samples and the checkpoint saves all count). The order alternates between repeats, so a machine whose speed
drifts favours neither. Then each run's checkpoint, the one `engine.gpt sample --checkpoint DIR` reads, is
measured the same way: the loss over the whole validation split (split_loss: 111,540 characters, each
predicted once), not the 20-batch estimate the runs print.

The goal (issue 18): fast's loss no worse than the recipe's, in at most 0.7 of its time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.machine import describe_machine
from engine.gpt.checkpoint import find_checkpoint, load_model
from engine.gpt.data import load_shakespeare, prepare_text
from engine.gpt.train import PRESETS, split_loss

TIME_GOAL = 0.7  # at most this share of the recipe's wall time


def timed_run(preset: str, out: Path, data_dir: Path | None) -> float:
    """Seconds for `python -m engine.gpt train --preset PRESET --out OUT` on the CPU, start to exit."""
    command = [sys.executable, "-m", "engine.gpt", "train", "--preset", preset, "--out", str(out), "--device", "cpu"]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    started = time.perf_counter()
    finished = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ)
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{finished.stderr[-2000:]}")
    return seconds


def whole_val_loss(folder: Path, val: torch.Tensor) -> float:
    model, _, _ = load_model(find_checkpoint(folder))
    with torch.no_grad():
        return split_loss(model, val)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="pairs of runs, the order alternating (default %(default)s)")
    parser.add_argument("--data-dir", type=Path, help="a folder holding shakespeare/input.txt")
    args = parser.parse_args()

    print(f"machine: {describe_machine()}; {torch.get_num_threads()} threads")
    for name in ("cpu", "fast"):
        preset = PRESETS[name]
        print(f"{name:>4}: {preset.n_layer} layers, {preset.n_head} heads, {preset.n_embd} wide, block {preset.block_size}, "
              f"batch {preset.batch_size}, {preset.max_iters:,} iterations, learning rate {preset.learning_rate:g}")
    val = prepare_text(load_shakespeare(args.data_dir), "tiny Shakespeare").val
    seconds: dict[str, list[float]] = {"cpu": [], "fast": []}
    losses: dict[str, list[float]] = {"cpu": [], "fast": []}
    with tempfile.TemporaryDirectory(prefix="time_to_quality_") as scratch:
        for repeat in range(args.repeats):
            order = ("cpu", "fast") if repeat % 2 == 0 else ("fast", "cpu")
            for name in order:
                out = Path(scratch) / f"{name}_{repeat}"
                seconds[name].append(timed_run(name, out, args.data_dir))
                losses[name].append(whole_val_loss(out, val))
                print(f"repeat {repeat + 1}, {name:>4}: {seconds[name][-1]:6.1f} s, whole val split loss {losses[name][-1]:.4f}", flush=True)
    ratios = [fast / cpu for fast, cpu in zip(seconds["fast"], seconds["cpu"])]
    for name in ("cpu", "fast"):
        print(f"{name:>4}: median {statistics.median(seconds[name]):.1f} s ({min(seconds[name]):.1f} to {max(seconds[name]):.1f}), "
              f"whole val loss median {statistics.median(losses[name]):.4f} ({min(losses[name]):.4f} to {max(losses[name]):.4f})")
    ratio = statistics.median(ratios)
    print(f"time, fast / cpu: median {ratio:.2f} ({min(ratios):.2f} to {max(ratios):.2f}) over {len(ratios)} pair(s)")
    quality_met = all(fast <= cpu for fast, cpu in zip(losses["fast"], losses["cpu"]))
    print(f"goal: fast's whole val loss no worse than the recipe's, in every pair: {'met' if quality_met else 'MISSED'}")
    print(f"goal: at most {TIME_GOAL}x the recipe's time: {'met' if ratio <= TIME_GOAL else 'MISSED'} ({ratio:.2f}x)")


if __name__ == "__main__":
    main()
