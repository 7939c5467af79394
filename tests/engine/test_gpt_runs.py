"""Run folders (record, list, resume, compare), the inference-only export, and the estimates shown before a run."""

import json
import math
import os
import shlex
from dataclasses import replace

import pytest
import torch

from engine.core.checkpoints import read_card
from engine.core.errors import CheckpointError, ConfigError, DataError
from engine.core.jobs import SilentReporter
from engine.gpt.__main__ import main
from engine.gpt.checkpoint import checkpoint_in, load_model, restore_training
from engine.gpt.data import prepare_text
from engine.gpt.estimate import StepTime, count_params, estimate_memory, eta_seconds, flops_per_iter, time_iterations
from engine.gpt.model import GPT
from engine.gpt.runs import (
    RunRecorder, cli_command, config_changes, export_checkpoint, iteration_ms, list_runs, measured_ms_per_iter, new_run_folder,
    read_history, read_run, resume_config, run_text, train_run,
)
from engine.gpt.train import CPU, GPU, PRESETS, TINY
from tests import torch_threads
from tests.texts import rhymes


@pytest.fixture(autouse=True)
def one_torch_thread():
    """On two shared cores torch's two threads wait on each other; one keeps these runs to a fraction of a second."""
    with torch_threads.one_torch_thread():
        yield


@pytest.fixture
def data():
    return prepare_text(rhymes(), "rhymes")


@pytest.fixture
def finished(finished_gpt_run):
    return finished_gpt_run  # tests/conftest.py: the command line's export test reads it too


# --- estimates -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("bias", [False, True])
def test_parameter_counts_match_the_model(name, bias):
    config = replace(PRESETS[name], bias=bias)
    model = GPT(config.model_config(65))
    counted = count_params(config, 65)
    assert counted.non_embedding == model.get_num_params() and counted.total == model.get_num_params(non_embedding=False)


def test_parameter_counts_are_nanogpts_figures():
    assert count_params(CPU, 65).non_embedding == 795_904  # nanoGPT prints "number of parameters: 0.80M"
    assert round(count_params(GPU, 65).non_embedding / 1e6, 2) == 10.65  # ... and 10.65M for its GPU config
    assert count_params(CPU, 65).total == 804_096


def test_flops_follow_nanogpts_estimate_and_scale_with_the_batch():
    N, L, H, Q, T = 795_904, 4, 4, 32, 64
    assert flops_per_iter(CPU, 65) == (6 * N + 12 * L * H * Q * T) * T * 12
    assert flops_per_iter(replace(CPU, batch_size=24), 65) == 2 * flops_per_iter(CPU, 65)
    assert flops_per_iter(replace(CPU, gradient_accumulation_steps=3), 65) == 3 * flops_per_iter(CPU, 65)


def test_memory_counts_16_bytes_per_parameter_and_grows_with_the_batch():
    memory = estimate_memory(CPU, 65)
    assert memory.parameters == 16 * 804_096
    bigger = estimate_memory(replace(CPU, batch_size=24), 65)
    assert bigger.parameters == memory.parameters and bigger.activations > 1.9 * memory.activations
    assert estimate_memory(CPU, 65, bytes_per_value=2).activations < memory.activations


def test_eta_counts_iterations_and_evaluations():
    config = replace(CPU, max_iters=1000, eval_interval=250, eval_iters=30)
    # 1000 iterations of 10 ms, and 5 evaluations of 2 x 30 forward passes at a third of an iteration each
    assert eta_seconds(config, 10.0) == pytest.approx((1000 * 10 + 5 * 60 * 10 / 3) / 1000)
    assert eta_seconds(config, 10.0, from_iter=1000) == pytest.approx(60 * 10 / 3 / 1000)


def test_step_time_passes_through_both_timings():
    fitted = StepTime.fit((TINY, 5.0), (CPU, 50.0))
    assert fitted.ms_per_iter(TINY, 65) == pytest.approx(5.0) and fitted.ms_per_iter(CPU, 65) == pytest.approx(50.0)
    assert fitted.ms_per_iter(GPU, 65) > 50.0 and fitted.overhead_ms > 0


def test_time_iterations_measures_real_steps():
    assert 0 < time_iterations(TINY, 21, steps=1) < 10_000


# --- run folders -----------------------------------------------------------------------------------------------


def test_a_run_records_its_settings_history_text_and_end(finished):
    info = json.loads((finished / "run.json").read_text())
    assert info["state"] == "done" and info["iterations"] == 60 and info["config"]["n_embd"] == 32
    assert info["data"]["name"] == "rhymes" and info["device"] == "cpu" and info["sample"]
    assert (finished / "text.txt").read_text() == rhymes()
    history = read_history(finished)
    assert [row["step"] for row in history if "val_loss" in row] == [0, 20, 40, 60]
    assert all({"loss", "lr", "ms_per_iter", "tokens_per_s"} <= set(row) for row in history if "loss" in row)
    run = read_run(finished)
    assert run.state == "done" and run.resumable and run.best_iter == 60 and run.params.non_embedding == count_params(TINY, 21).non_embedding
    assert run.best_val_loss == pytest.approx(info["best_val_loss"]) and run.command == "python -m engine.gpt train --preset tiny"


def test_the_recorder_passes_everything_on(tmp_path):
    inner = SilentReporter(stop_after=2)
    recorder = RunRecorder(inner, tmp_path)
    recorder.metric(0, loss=2.5)
    recorder.snapshot("sample", "abc")
    recorder.progress(1, 10)
    assert not recorder.stop_requested
    recorder.metric(1, loss=2.0)
    assert recorder.stop_requested and inner.snapshots == {"sample": "abc"} and inner.done_total == (1, 10)
    assert read_history(tmp_path) == [{"step": 0, "loss": 2.5}, {"step": 1, "loss": 2.0}]


def test_a_torn_history_line_is_skipped(tmp_path):
    (tmp_path / "history.jsonl").write_text('{"step": 0, "loss": 3.0}\n{"step": 10, "lo')
    assert read_history(tmp_path) == [{"step": 0, "loss": 3.0}]


def test_a_stopped_run_resumes_from_its_checkpoint_with_one_history(tmp_path, data):
    folder = tmp_path / "run"
    long = replace(TINY, max_iters=200, lr_decay_iters=200)
    began = f"python -m engine.gpt train --preset tiny --max-iters 200 --lr-decay-iters 200 --out {folder}"
    stopped = train_run(long, data, SilentReporter(stop_after=12, stop_grace=math.inf), folder, text=rhymes(), command=began)
    run = read_run(folder)
    assert stopped.stopped and run.state == "stopped" and run.resumable
    start = run.best_iter
    resumed = train_run(resume_config(run, start + 25), run_text(run), SilentReporter(), folder, resume=True)
    assert resumed.iterations == start + 25 and not resumed.stopped
    evaluations = [row["step"] for row in read_history(folder) if "val_loss" in row]
    assert evaluations == sorted(set(evaluations)) and evaluations[-1] == start + 25
    after = read_run(folder)
    assert after.state == "done" and after.iterations == start + 25 and after.config.max_iters == start + 25
    resumed_by = f"python -m engine.gpt train --resume {folder} --max-iters {start + 25}"
    assert read_card(checkpoint_in(folder))["command"] == f"{began} && {resumed_by}"  # the card says how the whole run was made


def test_resuming_needs_iterations_left_and_a_checkpoint(tmp_path, finished, data):
    with pytest.raises(ConfigError, match=r"max_iters \(60\) must be beyond the checkpoint's iteration \(60\)"):
        train_run(TINY, data, SilentReporter(), finished, resume=True)
    empty = tmp_path / "empty"
    stopped_at_once = SilentReporter()
    stopped_at_once.stop_requested = True  # only iteration 0 is evaluated, and it is never saved
    train_run(TINY, data, stopped_at_once, empty, text=rhymes())
    assert not read_run(empty).resumable
    with pytest.raises(CheckpointError, match="has no checkpoint yet"):
        train_run(replace(TINY, max_iters=100), data, SilentReporter(), empty, resume=True)


def test_a_run_on_other_text_without_its_copy_cannot_resume_here(finished):
    (finished / "text.txt").unlink()
    with pytest.raises(DataError, match=r"not kept in its folder.*--resume"):
        run_text(read_run(finished))


def test_a_failed_run_says_why(tmp_path, data):
    with pytest.raises(DataError):
        train_run(replace(TINY, block_size=500), data, SilentReporter(), tmp_path / "failed", text=rhymes())
    run = read_run(tmp_path / "failed")
    assert run.state == "failed" and "too short for block_size 500" in run.error


def test_runs_are_listed_newest_first_with_cli_folders_and_interrupted_runs(tmp_path, monkeypatch, finished, data):
    monkeypatch.setenv("DLLAB_RUNS_DIR", str(tmp_path / "runs"))
    first = new_run_folder("tiny")
    second = new_run_folder("tiny")
    assert first.parent == tmp_path / "runs" / "gpt" and first != second and first.name.endswith("-tiny")
    train_run(TINY, data, SilentReporter(), first, text=rhymes())
    cli = tmp_path / "runs" / "gpt" / "from_the_cli"  # what `python -m engine.gpt train --out` leaves: the checkpoint only
    cli.mkdir()
    export = export_checkpoint(finished, cli)  # into a folder: <folder>/model
    (cli.parent / "not_a_run").mkdir()
    interrupted = second / "run.json"
    interrupted.write_text(json.dumps({"state": "running", "pid": 2**22 + 12345, "config": json.loads((first / "run.json").read_text())["config"]}))
    os.utime(first / "run.json", (0, 0))
    os.utime(first / "model.json", (0, 0))
    runs = list_runs()
    assert [run.name for run in runs][-1] == first.name
    by_name = {run.name: run for run in runs}
    assert set(by_name) == {first.name, second.name, "from_the_cli"}
    assert by_name["from_the_cli"].state == "saved" and by_name["from_the_cli"].has_checkpoint and not by_name["from_the_cli"].resumable
    assert export == cli / "model.safetensors"
    assert by_name[second.name].state == "interrupted" and not by_name[second.name].has_checkpoint


def test_config_changes_and_the_cli_command_that_repeats_a_run(tmp_path, data):
    changes = config_changes(replace(TINY, bias=True, device="cuda"))
    assert changes["n_layer"] == (4, 2) and changes["bias"] == (False, True) and "device" not in changes
    assert config_changes(replace(CPU, compile=False)) == {}
    command = cli_command(replace(TINY, max_iters=30, lr_decay_iters=30, bias=True), tmp_path / "again", tmp_path / "text.txt")
    assert command.startswith("python -m engine.gpt train --preset cpu --n-layer 2 --n-head 2") and "--bias" in command
    (tmp_path / "text.txt").write_text(rhymes())
    assert main(shlex.split(command)[3:]) == 0
    assert json.loads((tmp_path / "again" / "model.json").read_text())["config"]["max_iters"] == 30


def test_iteration_time_prefers_a_timing_then_a_recorded_run_then_an_estimate(tmp_path, finished):
    runs = [read_run(finished)]
    fitted = StepTime(overhead_ms=1.0, ms_per_gflop=100.0)
    recorded = measured_ms_per_iter(TINY, "cpu", runs)
    assert recorded is not None and recorded[1] == "done"
    assert iteration_ms(TINY, 21, "cpu", runs, fitted, timed=3.0) == (3.0, "measured just now for these settings on this CPU")
    ms, basis = iteration_ms(replace(TINY, max_iters=500), 21, "cpu", runs, fitted)  # same shape, other length
    assert ms == recorded[0] and basis.startswith("measured: the median of run done")
    ms, basis = iteration_ms(replace(TINY, n_embd=64), 21, "cpu", runs, fitted)
    assert ms == fitted.ms_per_iter(replace(TINY, n_embd=64), 21) and basis.startswith("estimated from FLOPs")
    assert measured_ms_per_iter(TINY, "cuda", runs) is None


# --- export ----------------------------------------------------------------------------------------------------


def test_export_keeps_the_model_and_drops_adams_moments(tmp_path, finished, data):
    out = tmp_path / "shipped" / "gpt_shakespeare"
    weights = export_checkpoint(finished, out)
    assert weights == out.with_suffix(".safetensors")
    assert weights.stat().st_size < 0.5 * (finished / "model.safetensors").stat().st_size
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["optimizer_step"] is None and not any(name.startswith("adam.") for name in card["tensors"])
    assert card["command"] == "python -m engine.gpt train --preset tiny" and card["exported_from"].endswith("model.safetensors")
    original, _, _ = load_model(finished)
    exported, tokenizer, _ = load_model(out)
    idx = torch.tensor([tokenizer.encode("the cat")])
    assert torch.equal(original(idx)[0], exported(idx)[0])
    model = GPT(TINY.model_config(tokenizer.vocab_size))
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")
    with pytest.raises(CheckpointError, match="can be sampled from, not resumed"):
        restore_training(out, model, optimizer, data)
