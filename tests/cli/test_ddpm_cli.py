"""The diffusion lab's command line, end to end: train, sample to PNG / NPY / GIF, export, the classifier;
every mistake exits 2 with one line, never a traceback; Ctrl-C stops training cleanly."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.ddpm.__main__ import main
from tests.cli.conftest import interrupted_after_first_step

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine.ddpm", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddpm") / "run"
    trained = run_cli("train", "--preset", "tiny", "--toy", "256", "--out", str(out))
    assert trained.returncode == 0, trained.stderr
    assert "done: val loss" in trained.stdout and "after 16 steps, 2.00 epochs" in trained.stdout
    return out


def test_train_writes_last_and_best_with_the_command_in_the_card(run_folder):
    card = json.loads((run_folder / "last.json").read_text())
    assert card["command"] == f"python -m engine.ddpm train --preset tiny --toy 256 --out {run_folder}"
    assert (run_folder / "best.safetensors").exists()


def test_a_resumed_runs_card_keeps_every_command_that_made_it(run_folder, tmp_path, capsys):
    copy = tmp_path / "run"
    copy.mkdir()
    for name in ("last.json", "last.safetensors", "best.json", "best.safetensors"):
        (copy / name).write_bytes((run_folder / name).read_bytes())
    assert main(["train", "--resume", str(copy), "--toy", "256", "--epochs", "3"]) == 0
    assert "after 24 steps, 3.00 epochs" in capsys.readouterr().out
    card = json.loads((copy / "last.json").read_text())
    assert card["command"] == f"python -m engine.ddpm train --preset tiny --toy 256 --out {run_folder} && python -m engine.ddpm train --resume {copy} --toy 256 --epochs 3"


def test_sample_writes_a_grid_an_array_and_the_animation(run_folder, tmp_path):
    from PIL import Image

    png, npy, gif = tmp_path / "samples.png", tmp_path / "samples.npy", tmp_path / "denoise.gif"
    sampled = run_cli(
        "sample", "--checkpoint", str(run_folder), "--out", str(png), "--out", str(npy), "--out", str(gif),
        "--n", "12", "--sampler", "ddim", "--steps", "8", "--seed", "3", "--guidance", "3",
    )
    assert sampled.returncode == 0, sampled.stderr
    assert "12 samples, ddim with 8 steps (eta 1), digits 0-9 in turn, guidance 3, seed 3" in sampled.stdout
    array = np.load(npy)
    assert array.shape == (12, 28, 28) and array.dtype == np.float32 and 0 <= array.min() and array.max() <= 1
    assert Image.open(png).format == "PNG"
    animation = Image.open(gif)
    assert animation.format == "GIF" and animation.n_frames == 8

    again = tmp_path / "again.npy"
    assert run_cli("sample", "--checkpoint", str(run_folder), "--out", str(again), "--n", "12", "--steps", "8", "--seed", "3", "--guidance", "3").returncode == 0
    assert np.array_equal(np.load(again), array)  # seeded


def test_sample_one_digit_with_the_ddpm_sampler_in_process(run_folder, tmp_path, capsys):
    code = main(["sample", "--checkpoint", str(run_folder), "--out", str(tmp_path / "sevens.npy"), "--n", "2", "--sampler", "ddpm", "--digit", "7", "--guidance", "1.5"])
    assert code == 0
    assert "2 samples, ddpm with 1000 steps, digit 7, guidance 1.5" in capsys.readouterr().out


def test_export_then_sample_from_the_exported_checkpoint(run_folder, tmp_path):
    exported = run_cli("export", "--checkpoint", str(run_folder), "--out", str(tmp_path / "ddpm_mnist"))
    assert exported.returncode == 0, exported.stderr and "EMA weights only" in exported.stdout
    sampled = run_cli("sample", "--checkpoint", str(tmp_path / "ddpm_mnist"), "--out", str(tmp_path / "s.png"), "--n", "4", "--steps", "3")
    assert sampled.returncode == 0, sampled.stderr


@pytest.mark.parametrize(
    "args, words",
    [
        (["--digit", "12"], "error: digit must be between 0 and 9, got 12"),
        (["--steps", "0"], "error: DDIM needs between 1 and 1000 steps"),
        (["--sampler", "ddpm", "--steps", "50"], "error: The DDPM sampler runs all T = 1000 steps"),
        (["--unconditional", "--guidance", "2"], "error: Guidance (2) needs a class-conditional model"),
    ],
)
def test_sampling_mistakes_exit_2_with_one_line(run_folder, tmp_path, capsys, args, words):
    code = main(["sample", "--checkpoint", str(run_folder), "--out", str(tmp_path / "s.png"), *args])
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.count("\n") == 1


def test_guidance_without_a_conditional_model_exits_2(tmp_path):
    out = tmp_path / "plain"
    trained = run_cli("train", "--preset", "tiny", "--toy", "256", "--no-conditional", "--epochs", "1", "--out", str(out))
    assert trained.returncode == 0, trained.stderr
    guided = run_cli("sample", "--checkpoint", str(out), "--out", str(tmp_path / "s.png"), "--guidance", "3")
    assert guided.returncode == 2 and "needs a class-conditional model" in guided.stderr and "Traceback" not in guided.stderr
    digit = run_cli("sample", "--checkpoint", str(out), "--out", str(tmp_path / "s.png"), "--digit", "4")
    assert digit.returncode == 2 and "trained without labels, so it cannot be asked for a digit (4)" in digit.stderr
    plain = run_cli("sample", "--checkpoint", str(out), "--out", str(tmp_path / "s.png"), "--n", "3", "--steps", "2")
    assert plain.returncode == 0 and "no label, guidance 1" in plain.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["--width", "10"], "is 10 channels, which is not divisible by the 8 GroupNorm groups"),
        (["--epochs", "0"], "epochs must be between 1 and 1000, got 0"),
        (["--channel-mults", "1,2,2,2"], "use at most 3 levels"),
    ],
)
def test_bad_training_settings_exit_2(args, words, capsys):
    code = main(["train", "--toy", "64", *args])
    err = capsys.readouterr().err
    assert code == 2 and words in err and "Traceback" not in err


def test_missing_mnist_offline_says_where_to_put_it(tmp_path):
    env = {"DLLAB_OFFLINE": "1", "DLLAB_DATA_DIR": str(tmp_path / "empty"), "DLLAB_CACHE": str(tmp_path / "cache")}
    out = run_cli("train", "--preset", "tiny", "--out", str(tmp_path / "run"), env=env)
    assert out.returncode == 2
    assert "mnist/MNIST/raw/train-images-idx3-ubyte.gz" in out.stderr and "DLLAB_DATA_DIR" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_corrupt_checkpoint_exits_2(run_folder, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "best.json").write_text((run_folder / "best.json").read_text())
    (broken / "best.safetensors").write_bytes(b"not a safetensors file")
    code = main(["sample", "--checkpoint", str(broken), "--out", str(tmp_path / "s.png")])
    err = capsys.readouterr().err
    assert code == 2 and "does not match its card" in err
    code = main(["sample", "--checkpoint", str(tmp_path / "absent"), "--out", str(tmp_path / "s.png")])
    assert code == 2 and "No checkpoint card" in capsys.readouterr().err


def test_an_unknown_output_kind_exits_2(run_folder, tmp_path, capsys):
    assert main(["sample", "--checkpoint", str(run_folder), "--out", str(tmp_path / "s.jpg")]) == 2
    assert "must end in .png (a grid), .npy" in capsys.readouterr().err


def test_classifier_train_then_score_an_array(run_folder, tmp_path):
    clf = tmp_path / "classifier"
    trained = run_cli("classifier", "train", "--toy", "300", "--epochs", "1", "--out", str(clf))
    assert trained.returncode == 0, trained.stderr and "test accuracy" in trained.stdout
    samples = tmp_path / "samples.npy"
    assert run_cli("sample", "--checkpoint", str(run_folder), "--out", str(samples), "--n", "10", "--steps", "4", "--classifier", str(clf)).returncode == 0
    scored = run_cli("classifier", "score", "--samples", str(samples), "--classifier", str(clf), "--digit", "3")
    assert scored.returncode == 0, scored.stderr
    assert "of 10 samples recognised with confidence > 0.9" in scored.stdout and "read as the digit asked for" in scored.stdout


def test_ctrl_c_stops_training_cleanly_and_keeps_the_checkpoint(tmp_path):
    process, stdout, stderr = interrupted_after_first_step(
        "ddpm", "train", "--preset", "tiny", "--toy", "256", "--epochs", "500", "--out", str(tmp_path / "run"),
    )
    assert process.returncode == 0, stderr
    assert stdout.startswith("stopped:")
    card = json.loads((tmp_path / "run" / "last.json").read_text())
    assert 0 < card["metrics"]["step"] < 500 * 8


def test_sample_without_out_writes_samples_png_here(run_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "--checkpoint", str(run_folder), "--n", "2", "--steps", "2"]) == 0
    assert (tmp_path / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_init_from_fine_tunes_a_new_run_from_a_checkpoints_weights(run_folder, tmp_path):
    out = tmp_path / "tuned"
    tuned = run_cli("train", "--init-from", str(run_folder), "--toy", "256", "--epochs", "1", "--label-dropout", "0.5", "--out", str(out))
    assert tuned.returncode == 0, tuned.stderr
    assert "after 8 steps, 1.00 epochs" in tuned.stdout  # a new run: its own steps, from 0
    card = json.loads((out / "last.json").read_text())
    assert card["config"]["label_dropout"] == 0.5 and card["config"]["width"] == 8  # the source's settings, with the override
    assert card["started_from"]["command"].endswith(f"--out {run_folder}")
    mismatch = run_cli("train", "--init-from", str(run_folder), "--preset", "cpu", "--toy", "256", "--out", str(tmp_path / "x"))
    assert mismatch.returncode == 2 and "fine-tuning keeps the model" in mismatch.stderr and "Traceback" not in mismatch.stderr


def test_record_keeps_the_players_first_digits_beside_a_checkpoint(run_folder, tmp_path):
    made = run_cli("record", "--checkpoint", str(run_folder), "--out", str(tmp_path / "player"))
    assert made.returncode == 0, made.stderr
    assert "frames of 16 digits" in made.stdout
    card = json.loads((tmp_path / "player.json").read_text())
    best = json.loads((run_folder / "best.json").read_text())
    assert card["drawn_from_sha256"] == best["weights_sha256"] and card["command"].startswith("python -m engine.ddpm record")


@pytest.mark.data
def test_sweep_prints_each_guidance_and_records_it_in_the_card(run_folder, tmp_path):
    swept = run_cli("sweep", "--checkpoint", str(run_folder), "--n", "20", "--steps", "3", "--guidance", "unconditional,2", "--record")
    assert swept.returncode == 0, swept.stderr
    assert "real training digits" in swept.stdout and "unconditional" in swept.stdout and "guidance 2" in swept.stdout
    recorded = json.loads((run_folder / "best.json").read_text())["guidance_sweep"]
    assert [row["guidance"] for row in recorded["rows"]] == [None, 2.0] and recorded["sampler"] == "ddim, 3 steps"
    assert recorded["command"].startswith("python -m engine.ddpm sweep")


@pytest.mark.parametrize("args, words", [
    (["sweep", "--n", "5"], "--n must be between 10"),
    (["sweep", "--guidance", "1,two"], "'two'"),
    (["record", "--checkpoint", "/nonexistent/run"], "No checkpoint card"),
])
def test_sweep_and_record_mistakes_exit_2_with_one_line(args, words, capsys):
    try:
        code = main(args)
    except SystemExit as exit:  # argparse's own checks leave through SystemExit
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.count("\n") == 1
