"""Fixtures shared by the engine's test modules."""

import pytest

from engine.core.jobs import SilentReporter
from engine.ddpm.train import TINY, train


@pytest.fixture(scope="module")
def train_tiny_ddpm(tmp_path_factory):
    """`train_tiny_ddpm(data, command)` trains the DDPM's tiny preset on `data` into a new run folder, recording
    `command` in its card: (the result, its SilentReporter, the folder)."""

    def run(data, command: str):
        folder = tmp_path_factory.mktemp("ddpm") / "run"
        report = SilentReporter()
        return train(TINY, data, report, out=folder, command=command), report, folder

    return run
