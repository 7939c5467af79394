"""The GPT's command line: train and sample end to end in a subprocess; mistakes exit 2 with a message, never a traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.gpt.__main__ import main
from tests.texts import rhymes

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.gpt", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "rhymes.txt"
    path.write_text(rhymes())
    return path


def test_train_tiny_then_sample_end_to_end(text_file, tmp_path):
    out = tmp_path / "run"
    trained = run("train", "--preset", "tiny", "--text-file", str(text_file), "--out", str(out), "--max-iters", "40", "--lr-decay-iters", "40")
    assert trained.returncode == 0, trained.stderr
    assert "best val loss" in trained.stdout and "model.safetensors" in trained.stdout
    assert (out / "model.safetensors").exists() and (out / "model.json").exists()

    sampled = run("sample", "--checkpoint", str(out), "--prompt", "the ", "--max-new-tokens", "30", "--seed", "1")
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stdout.startswith("the ") and len(sampled.stdout.rstrip("\n")) >= 4 + 25

    outside = run("sample", "--checkpoint", str(out), "--prompt", "QUEEN:")
    assert outside.returncode == 2
    assert "outside the model's vocabulary: ':', 'E', 'N', 'Q', 'U'" in outside.stderr
    assert "Traceback" not in outside.stderr


def test_the_fast_preset_leaves_a_checkpoint_that_sample_reads(text_file, tmp_path):
    out = tmp_path / "fast"
    trained = run("train", "--preset", "fast", "--text-file", str(text_file), "--out", str(out), "--max-iters", "20", "--lr-decay-iters", "20",
                  "--warmup-iters", "5", "--eval-interval", "10", "--eval-iters", "2", "--sample-chars", "0")
    assert trained.returncode == 0, trained.stderr
    sampled = run("sample", "--checkpoint", str(out), "--prompt", "the ", "--max-new-tokens", "20", "--seed", "1")
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stdout.startswith("the ") and len(sampled.stdout.rstrip("\n")) >= 4 + 15


def test_a_config_error_exits_2_with_the_message(text_file):
    result = run("train", "--preset", "tiny", "--text-file", str(text_file), "--n-embd", "30", "--n-head", "4")
    assert result.returncode == 2
    assert "error: n_embd (30) must be divisible by n_head (4)" in result.stderr
    assert "Traceback" not in result.stderr


def test_resume_continues_a_run_in_process(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--text-file", str(text_file), "--out", str(out), "--max-iters", "20", "--lr-decay-iters", "20"]) == 0
    assert main(["train", "--resume", str(out), "--text-file", str(text_file), "--max-iters", "40", "--lr-decay-iters", "40"]) == 0
    assert "40 iterations" in capsys.readouterr().out
    card = json.loads((out / "model.json").read_text())
    assert card["command"] == (f"python -m engine.gpt train --preset tiny --text-file {text_file} --out {out} --max-iters 20 --lr-decay-iters 20 && "
                               f"python -m engine.gpt train --resume {out} --text-file {text_file} --max-iters 40 --lr-decay-iters 40")


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "--preset", "tiny", "--text-file", "{tmp}/nowhere.txt"], "Cannot read"),
        (["train", "--preset", "tiny", "--text-file", "{tmp}/empty.txt"], "empty.txt is empty"),
        (["train", "--preset", "tiny", "--text-file", "{tmp}/short.txt"], "too short for block_size 16"),
        (["train", "--resume", "{tmp}/no-run"], "No checkpoint card"),
        (["sample", "--checkpoint", "{tmp}/no-run"], "No checkpoint card"),
    ],
)
def test_mistakes_exit_2_with_a_message(tmp_path, capsys, argv, words):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "short.txt").write_text("to be or not to be\n" * 3)
    assert main([arg.format(tmp=tmp_path) for arg in argv]) == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["train", "--preset", "huge"], ["train", "--preset", "tiny", "--resume", "x"]])  # a bare "sample" now draws from the shipped model (issue 8)
def test_malformed_arguments_exit_2_with_usage(capsys, argv):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_sample_without_a_checkpoint_uses_the_shipped_model(tmp_path, monkeypatch, capsys, text_file):
    import engine.gpt.__main__ as cli
    from engine.gpt.runs import export_checkpoint

    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--text-file", str(text_file), "--out", str(run), "--max-iters", "20", "--lr-decay-iters", "20"]) == 0
    monkeypatch.setattr(cli, "SHIPPED_CHECKPOINT", export_checkpoint(run, tmp_path / "shipped" / "gpt_shakespeare").with_suffix(""))
    capsys.readouterr()
    assert main(["sample", "--max-new-tokens", "10", "--seed", "1"]) == 0  # no --checkpoint
    assert len(capsys.readouterr().out) >= 10  # ten new characters (some may be newlines), from the shipped model


def test_export_from_the_command_line(tmp_path, finished_gpt_run, capsys):
    assert main(["export", "--checkpoint", str(finished_gpt_run), "--out", str(tmp_path / "small")]) == 0
    assert "no optimizer state" in capsys.readouterr().out and (tmp_path / "small.safetensors").exists()
    assert main(["export", "--checkpoint", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "No checkpoint card" in capsys.readouterr().err
