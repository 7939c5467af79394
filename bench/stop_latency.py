"""How long Stop takes: from job.stop() to the job's end, pressed in each phase of a run the page starts.

    DLLAB_DATA_DIR=../shared/data python -m bench.stop_latency            # about a minute
    DLLAB_DATA_DIR=../shared/data python -m bench.stop_latency --repeats 5

Runs go through the app's own path (engine.core.jobs.JobBoard, the loops the pages start) on tiny
Shakespeare and MNIST. Stop is pressed once the loop names the phase asked for: the GPU recipe's first
evaluation (400 batches of 64 x 256 on the CPU, minutes long), its training steps, and the DDPM's
training and its validation. Before this change a stop ran the final evaluation to its end (44 s for
the CPU preset on a loaded machine). Target: within 1 s, 2 s at most on two loaded cores.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

from bench.machine import describe_machine
from engine.core.jobs import JobBoard, JobState
from engine.gpt.data import load_shakespeare, prepare_text
from engine.gpt.train import GPU, train as train_gpt


def wait_for_phase(job, words: str, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while words not in str(job.view().snapshots.get("phase", "")) and time.monotonic() < deadline:
        if job.state.finished:
            raise RuntimeError(f"{job.name} ended before its phase said {words!r}")
        time.sleep(0.01)


def stop_seconds(board: JobBoard, name: str, run, phase: str, after: float = 0.0) -> float:
    job = board.submit(name, run)
    wait_for_phase(job, phase)
    time.sleep(after)
    pressed = time.monotonic()
    job.stop()
    state = job.wait(600)
    if state not in (JobState.STOPPED, JobState.DONE):
        raise RuntimeError(f"{name} ended {state.value}: {job.view().error}")
    return time.monotonic() - pressed


def cases():
    data = prepare_text(load_shakespeare(), "tiny Shakespeare")
    gpu = replace(GPU, device="cpu", compile=False)
    yield "GPT GPU recipe, in its first evaluation", lambda report: train_gpt(gpu, data, report), "estimating", 0.5
    quick_eval = replace(gpu, eval_iters=2, eval_interval=1000)
    yield "GPT GPU recipe, between training steps", lambda report: train_gpt(quick_eval, data, report), "training", 3.0
    try:
        from engine.ddpm.data import load_mnist
        from engine.ddpm.train import PRESETS, train as train_ddpm
    except ImportError:
        return
    digits = load_mnist()
    cpu = replace(PRESETS["cpu"], device="cpu")
    yield "DDPM CPU recipe, while training", lambda report: train_ddpm(cpu, digits, report), "training", 1.0
    one_epoch = replace(PRESETS["tiny"], device="cpu", val_images=10_000)
    yield "DDPM tiny, in its validation (10,000 images)", lambda report: train_ddpm(one_epoch, digits, report), "validation loss", 0.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(describe_machine())
    board = JobBoard(max_running=1)
    for name, run, phase, after in cases():
        times = [stop_seconds(board, name, run, phase, after) for _ in range(args.repeats)]
        print(f"{name}: stop took median {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}, n={len(times)})")


if __name__ == "__main__":
    main()
