"""Every path a command line takes, given every file of the hostile catalogue: exit 0 or 2 with one line, never a
traceback, never a hang, never an unpickling; the engine's upload decoders likewise; and a good action after.

The commands run in this process through their `main(argv)`, offline with empty data folders, so none of
them can start a real training: each ends at a check, or at the missing dataset. A few run as real
processes, where a hang or a traceback would show as the person sees it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.core.errors import DataError
from engine.gpt.data import decode_text, read_text_file
from engine.sae.images import decode_image
from tests.cli.conftest import ROOT, problem, run_main, time_limit

pytestmark = pytest.mark.usefixtures("offline")

TINY_SAE = ["--patches", "10", "--hidden", "1"]  # an image that decodes trains for an instant

# Every flag that takes a path, in a command that ends before any training; {} is where the hostile path goes.
PATH_FLAGS = {
    "sae train --images": ["train", "--source", "upload", "--images", "{}", *TINY_SAE, "--iterations", "1", "--out", "{tmp}/run"],
    "sae gradcheck --images": ["gradcheck", "--source", "upload", "--images", "{}", *TINY_SAE, "--examples", "2"],
    "sae train --data-dir": ["train", "--data-dir", "{}"],
    "sae train --out": ["train", "--out", "{}"],
    "sae train --filters-png": ["train", "--filters-png", "{}"],
    "gpt train --text-file": ["train", "--preset", "tiny", "--text-file", "{}"],
    "gpt train --resume": ["train", "--resume", "{}"],
    "gpt train --data-dir": ["train", "--data-dir", "{}"],
    "gpt train --out": ["train", "--out", "{}"],
    "gpt sample --checkpoint": ["sample", "--checkpoint", "{}", "--max-new-tokens", "1"],
    "gpt export --checkpoint": ["export", "--checkpoint", "{}", "--out", "{tmp}/exported"],
    "gpt export --out": ["export", "--checkpoint", "{tmp}/no-checkpoint", "--out", "{}"],
    "ddpm train --resume": ["train", "--resume", "{}"],
    "ddpm train --data-dir": ["train", "--data-dir", "{}"],
    "ddpm train --out": ["train", "--out", "{}"],
    "ddpm sample --checkpoint": ["sample", "--checkpoint", "{}", "--out", "{tmp}/s.png", "--n", "1", "--steps", "1"],
    "ddpm sample --out": ["sample", "--out", "{}", "--n", "0"],
    "ddpm sample --classifier": ["sample", "--classifier", "{}", "--out", "{tmp}/s.png", "--n", "1", "--steps", "1"],
    "ddpm export --checkpoint": ["export", "--checkpoint", "{}", "--out", "{tmp}/exported"],
    "ddpm export --out": ["export", "--checkpoint", "{tmp}/no-checkpoint", "--out", "{}"],
    "ddpm classifier train --out": ["classifier", "train", "--out", "{}"],
    "ddpm classifier train --data-dir": ["classifier", "train", "--data-dir", "{}"],
    "ddpm classifier score --samples": ["classifier", "score", "--samples", "{}"],
    "ddpm classifier score --classifier": ["classifier", "score", "--samples", "{good_npy}", "--classifier", "{}"],
}


@pytest.fixture(scope="module")
def good_npy(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("good") / "samples.npy"
    np.save(path, np.random.default_rng(0).random((4, 28, 28)).astype(np.float32))
    return path


@pytest.mark.parametrize("flag", list(PATH_FLAGS))
def test_every_path_flag_refuses_every_hostile_file_in_one_line(flag, hostile_files, good_npy, tmp_path):
    catalogue, marker = hostile_files
    lab, template = flag.split()[0], PATH_FLAGS[flag]
    failures = {}
    for name, path in catalogue.items():
        argv = [part.format(path, tmp=tmp_path, good_npy=good_npy) for part in template]
        if (found := problem(lab, argv)) is not None:
            failures[name] = found
    assert not failures, f"{flag}: {failures}"
    assert not marker.exists(), "a pickle was loaded"


def test_the_refusals_say_what_is_wrong(hostile_files, tmp_path):
    catalogue, _ = hostile_files
    expectations = [
        ("gpt", ["train", "--preset", "tiny", "--text-file", str(catalogue["/dev/zero"])], "it is a device, not a file"),
        ("gpt", ["train", "--preset", "tiny", "--text-file", str(catalogue["fifo"])], "it is a named pipe, not a file"),
        ("gpt", ["train", "--preset", "tiny", "--text-file", str(catalogue["huge.txt"])], "huge.txt is 21.0 MB; the limit is 20 MB"),
        ("gpt", ["train", "--preset", "tiny", "--text-file", str(catalogue["latin1.txt"])], "is not UTF-8 text"),
        ("gpt", ["sample", "--checkpoint", str(catalogue["fifo"])], "it is a named pipe, not a file"),
        ("gpt", ["sample", "--checkpoint", str(catalogue["zero link"])], "it is a device, not a file"),
        ("sae", ["train", "--source", "upload", "--images", str(catalogue["/dev/urandom"])], "it is a device, not a file"),
        ("sae", ["train", "--source", "upload", "--images", str(catalogue["folder"])], "it is a folder, not a file"),
        ("sae", ["train", "--source", "upload", "--images", str(catalogue["bomb.png"])], "bomb.png declares an enormous size (a decompression bomb)"),
        ("sae", ["train", "--source", "upload", "--images", str(catalogue["flat.png"])], "flat.png is one flat shade (every pixel is 7)"),
        ("sae", ["train", "--source", "upload", "--images", str(catalogue["nan.tif"])], "nan.tif has pixels that are not numbers"),
        ("sae", ["train", "--out", "/proc/nope/x"], "--out /proc/nope/x.safetensors cannot be written"),
        ("ddpm", ["sample", "--out", "/proc/nope/x.png"], "--out /proc/nope/x.png cannot be written"),
        ("gpt", ["export", "--checkpoint", "checkpoints/gpt_shakespeare", "--out", "/proc/nope/x"], "cannot be written"),
        ("ddpm", ["classifier", "score", "--samples", str(catalogue["binary.txt"])], "binary.txt is not a NumPy array file (.npy)"),
        ("ddpm", ["classifier", "score", "--samples", str(catalogue["pickle.npy"])], "holds object values, not numbers"),
        ("ddpm", ["classifier", "score", "--samples", str(catalogue["nan.npy"])], "2,352 pixel values are not numbers (NaN or infinity)"),
        ("ddpm", ["classifier", "score", "--samples", str(catalogue["lying.npy"])], "is truncated or corrupt"),
        ("ddpm", ["train", "--toy", "0"], "the number of toy shapes must be between 1 and 10,000, got 0"),
        ("ddpm", ["train", "--toy", "100000000"], "got 100000000"),
        ("ddpm", ["train", "--toy", "-5"], "got -5"),
        ("sae", ["train", "--text"], "unrecognized arguments: --text (usage: python -m engine.sae --help)"),
    ]
    for lab, argv, words in expectations:
        code, _, err = run_main(lab, argv)
        assert code == 2 and words in err and err.count("\n") == 1, (argv, err)


def test_upload_decoders_give_an_image_or_a_clear_message(hostile_files):
    catalogue, marker = hostile_files
    readable = {name: path for name, path in catalogue.items() if path.is_file() and not path.is_symlink()}
    decoded = set()
    for name, path in readable.items():
        data = path.read_bytes()
        for decode in (decode_image, decode_text):
            with time_limit():
                try:
                    decode(data, name)
                    decoded.add((decode.__name__, name))
                except DataError as error:
                    assert name in str(error) and "\n" not in str(error)
    assert {name for kind, name in decoded if kind == "decode_image"} == {"cmyk.jpg", "sixteen_bit.png", "palette.png", "one_bit.png"}
    assert not marker.exists()
    # the next good action still works
    assert decode_image(catalogue["palette.png"].read_bytes(), "palette.png").shape == (40, 40)
    assert read_text_file(ROOT / "README.md").split("---\n", 2)[-1].lstrip().startswith("# Deep Learning Lab")  # after the Space's front matter


def test_a_good_action_works_after_the_hostile_ones(hostile_files, good_npy):
    code, out, err = run_main("ddpm", ["classifier", "score", "--samples", str(good_npy)])
    assert code == 0 and "of 4 samples recognised" in out, err
    code, out, err = run_main("gpt", ["sample", "--checkpoint", "checkpoints/gpt_shakespeare", "--max-new-tokens", "3", "--seed", "1"])
    assert code == 0 and len(out) >= 3, err


@pytest.mark.parametrize("lab, argv", [
    ("gpt", ["train", "--preset", "tiny", "--text-file", "{fifo}"]),
    ("sae", ["train", "--source", "upload", "--images", "/dev/zero"]),
    ("ddpm", ["classifier", "score", "--samples", "{fifo}"]),
])
def test_as_a_real_process_no_hang_and_no_traceback(lab, argv, hostile_files):
    catalogue, _ = hostile_files
    argv = [part.format(fifo=catalogue["fifo"]) for part in argv]
    done = subprocess.run([sys.executable, "-m", f"engine.{lab}", *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "named pipe" in done.stderr or "device" in done.stderr, done.stderr
