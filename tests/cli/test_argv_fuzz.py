"""Argument lists for every command, made of its real flags with hostile values: exit 0 or 2 with one line, under a time limit.

The values are the tester's: huge whole numbers, inf, nan, -0, empty text, unicode, /dev/zero, /dev/urandom,
a FIFO, a folder, a missing file. Offline with empty data folders, no command can get as far as training.
"""

from __future__ import annotations

import os
from dataclasses import fields
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.ddpm.train import DDPMTrainConfig
from engine.gpt.train import GPTTrainConfig
from tests.cli.conftest import problem

pytestmark = pytest.mark.usefixtures("offline")


def flags_of(config) -> list[str]:
    return ["--" + field.name.replace("_", "-") for field in fields(config)]


SAE_FLAGS = ["--patch-size", "--hidden", "--patches", "--rho", "--beta", "--lam", "--seed", "--source", "--images", "--data-dir"]
COMMANDS = {
    ("sae", "train"): SAE_FLAGS + ["--iterations", "--out", "--filters-png"],
    ("sae", "gradcheck"): SAE_FLAGS + ["--examples", "--epsilon"],
    ("gpt", "train"): ["--preset", "--resume", "--out", "--data-dir", "--text-file"] + flags_of(GPTTrainConfig),
    ("gpt", "sample"): ["--checkpoint", "--prompt", "--max-new-tokens", "--temperature", "--top-k", "--top-p", "--seed", "--device"],
    ("gpt", "export"): ["--checkpoint", "--out"],
    ("ddpm", "train"): ["--preset", "--resume", "--out", "--data-dir", "--toy"] + flags_of(DDPMTrainConfig),
    ("ddpm", "sample"): ["--checkpoint", "--out", "--n", "--sampler", "--steps", "--eta", "--digit", "--unconditional", "--guidance",
                         "--seed", "--device", "--gif-frames", "--score", "--classifier"],
    ("ddpm", "export"): ["--checkpoint", "--out"],
    ("ddpm", "classifier train"): ["--out", "--epochs", "--seed", "--data-dir", "--toy"],
    ("ddpm", "classifier score"): ["--samples", "--classifier", "--digit"],
}
NUMBERS = ["99999999999999999999999", "-99999999999999999999999", "inf", "-inf", "nan", "-0", "1e308", "-1", "0x10", "1_0", "١٢"]
TEXTS = ["", " ", "ü✓\u202e", "\n", "a" * 300, "--", "-"]


@pytest.fixture(scope="module")
def special_paths(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("argv")
    os.mkfifo(folder / "pipe")
    return ["/dev/zero", "/dev/urandom", str(folder / "pipe"), str(folder), str(folder / "missing.png"), "/proc/nope/x"]


@pytest.mark.parametrize("command", list(COMMANDS), ids=" ".join)
def test_hostile_argv_exits_0_or_2_with_one_line(command, special_paths, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default output folder is tried here, not in the repository
    lab, words = command
    values = st.sampled_from(NUMBERS + TEXTS + special_paths)
    pairs = st.lists(st.tuples(st.sampled_from(COMMANDS[command]), values), min_size=1, max_size=3)

    @settings(max_examples=25, deadline=timedelta(seconds=60), suppress_health_check=list(HealthCheck), database=None)
    @given(pairs)
    def check(chosen):
        argv = words.split() + [part for flag, value in chosen for part in (flag, value)]
        assert problem(lab, argv) is None, argv

    check()
