"""Both trainers under torchrun, two CPU processes talking through gloo: they train the weights one process trains on
the same batches, a stop on one rank ends both, and their checkpoint samples and resumes in one process."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from engine.ddpm.__main__ import main as ddpm_main
from engine.gpt.__main__ import main as gpt_main
from tests.texts import rhymes

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on two cores: one thread each
# The GPT's step is two micro-batches of 4, which two processes share; the DDPM's batch of 32 is cut in two halves.
GPT_SETTINGS = ["--preset", "tiny", "--max-iters", "20", "--lr-decay-iters", "20", "--gradient-accumulation-steps", "2", "--batch-size", "4"]
DDPM_SETTINGS = ["--preset", "tiny", "--toy", "256", "--epochs", "1"]
# Measured: the GPT's weights are the same to the bit, the DDPM's within 1e-6 after 8 steps (with its Adam state);
# a batch drawn or shared wrongly moves them by about the learning rate, 3e-3.
GPT_TOLERANCE = 1e-5
DDPM_TOLERANCE = 1e-4


def one_process(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)


def two_processes(module: str, *args: str) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", module]
    return subprocess.run([*launcher, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)


def largest_difference(a: Path, b: Path) -> float:
    first, second = load_file(a), load_file(b)
    assert sorted(first) == sorted(second)
    return max((first[name].double() - second[name].double()).abs().max().item() for name in first)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "rhymes.txt"
    path.write_text(rhymes())
    return path


@pytest.fixture(scope="module")
def gpt_runs(tmp_path_factory, text_file) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("gpt")
    alone = one_process("engine.gpt", "train", *GPT_SETTINGS, "--text-file", str(text_file), "--out", str(folder / "one"))
    assert alone.returncode == 0, alone.stderr
    shared = two_processes("engine.gpt", "train", *GPT_SETTINGS, "--text-file", str(text_file), "--out", str(folder / "two"))
    assert shared.returncode == 0, shared.stderr
    assert shared.stdout.count("done: best val loss") == 1, shared.stdout  # rank 0 alone says how it went
    return folder / "one", folder / "two"


@pytest.fixture(scope="module")
def ddpm_runs(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("ddpm")
    alone = one_process("engine.ddpm", "train", *DDPM_SETTINGS, "--out", str(folder / "one"))
    assert alone.returncode == 0, alone.stderr
    shared = two_processes("engine.ddpm", "train", *DDPM_SETTINGS, "--out", str(folder / "two"))
    assert shared.returncode == 0, shared.stderr
    assert shared.stdout.count("done: val loss") == 1 and "after 8 steps" in shared.stdout, shared.stdout
    return folder / "one", folder / "two"


def test_two_gpt_processes_train_the_weights_of_one(gpt_runs):
    one, two = gpt_runs
    assert largest_difference(one / "model.safetensors", two / "model.safetensors") <= GPT_TOLERANCE


def test_two_ddpm_processes_train_the_weights_of_one(ddpm_runs):
    one, two = ddpm_runs
    assert largest_difference(one / "last.safetensors", two / "last.safetensors") <= DDPM_TOLERANCE


def test_a_gpt_checkpoint_of_two_processes_samples_and_resumes_in_one(gpt_runs, text_file, tmp_path, capsys):
    one, two = gpt_runs
    assert gpt_main(["sample", "--checkpoint", str(two), "--prompt", "the ", "--max-new-tokens", "20", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("the ")
    # resumed in one process, the run of two goes on as the run of one does: its batch stream was saved too
    for name, folder in (("one", one), ("two", two)):
        shutil.copytree(folder, tmp_path / name)
        resumed = ["train", "--resume", str(tmp_path / name), "--text-file", str(text_file), "--max-iters", "40", "--lr-decay-iters", "40"]
        assert gpt_main(resumed) == 0
        assert "40 iterations" in capsys.readouterr().out
    assert largest_difference(tmp_path / "one" / "model.safetensors", tmp_path / "two" / "model.safetensors") <= GPT_TOLERANCE


def test_a_ddpm_checkpoint_of_two_processes_samples_and_resumes_in_one(ddpm_runs, tmp_path, capsys):
    one, two = ddpm_runs
    grid = tmp_path / "x.png"
    assert ddpm_main(["sample", "--checkpoint", str(two), "--out", str(grid), "--n", "4", "--steps", "5", "--seed", "1"]) == 0
    assert grid.read_bytes().startswith(b"\x89PNG")
    for name, folder in (("one", one), ("two", two)):
        shutil.copytree(folder, tmp_path / name)
        assert ddpm_main(["train", "--resume", str(tmp_path / name), "--toy", "256", "--epochs", "2"]) == 0
        assert "after 16 steps" in capsys.readouterr().out
    assert largest_difference(tmp_path / "one" / "last.safetensors", tmp_path / "two" / "last.safetensors") <= DDPM_TOLERANCE


def worker_of_rank(launcher: subprocess.Popen, rank: int) -> int:
    """The pid of the launcher's worker process that torchrun gave `rank` (Linux: read from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environment = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == launcher.pid and f"RANK={rank}".encode() in environment:
            return int(entry.name)
    raise AssertionError(f"no worker of rank {rank} under the launcher {launcher.pid}")


def test_ctrl_c_on_one_rank_stops_both_at_the_same_step(text_file, tmp_path):
    out = tmp_path / "run"
    launcher_args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "engine.gpt"]
    settings = [*GPT_SETTINGS[:2], "--gradient-accumulation-steps", "2", "--max-iters", "100000", "--lr-decay-iters", "100000"]
    with open(tmp_path / "stdout", "w") as stdout, open(tmp_path / "stderr", "w") as stderr:
        launcher = subprocess.Popen([*launcher_args, "train", *settings, "--text-file", str(text_file), "--out", str(out)],
                                    cwd=ROOT, env=ENV, stdout=stdout, stderr=stderr)
        try:
            deadline = time.monotonic() + 120
            while not (out / "model.json").exists():  # the first checkpoint (iteration 20): both ranks are training
                assert launcher.poll() is None and time.monotonic() < deadline, (tmp_path / "stderr").read_text()
                time.sleep(0.2)
            os.kill(worker_of_rank(launcher, 1), signal.SIGINT)  # rank 1's Ctrl-C: rank 0 hears of it by the all-reduce
            assert launcher.wait(timeout=120) == 0, (tmp_path / "stderr").read_text()
        finally:
            if launcher.poll() is None:
                launcher.kill()
    printed = (tmp_path / "stdout").read_text()
    assert printed.count("stopped: best val loss") == 1, printed  # rank 0 stopped too, and said so
    assert "saved" in printed and (out / "model.safetensors").exists()
