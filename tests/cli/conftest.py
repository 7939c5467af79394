"""What the command-line tests share: the commands run in this process (offline, under a time limit) or as real
processes, and the catalogue of hostile files."""

from __future__ import annotations

import contextlib
import io
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.ddpm.__main__ import main as ddpm_main
from engine.gpt.__main__ import main as gpt_main
from engine.sae.__main__ import main as sae_main
from tests.hostile_files import make_catalogue

ROOT = Path(__file__).resolve().parents[2]
MAINS = {"sae": sae_main, "gpt": gpt_main, "ddpm": ddpm_main}
SECONDS = 30  # far beyond any check; a hang is the only way to reach it


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No downloads and empty data, cache and runs folders: no command can get as far as a real training.

    For a whole module: `pytestmark = pytest.mark.usefixtures("offline")`."""
    monkeypatch.setenv("DLLAB_OFFLINE", "1")
    monkeypatch.setenv("DLLAB_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setenv("DLLAB_CACHE", str(tmp_path / "no-cache"))
    monkeypatch.setenv("DLLAB_RUNS_DIR", str(tmp_path / "runs"))


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory) -> tuple[dict[str, Path], Path]:
    """tests/hostile_files.py's catalogue, made fresh for each module: (the catalogue by name, the marker file that must never appear)."""
    return make_catalogue(tmp_path_factory.mktemp("hostile"))


class Hang(BaseException):
    """Raised by the alarm: a BaseException, so no `except Exception` (or OSError) in the code under test swallows it."""


@contextlib.contextmanager
def time_limit(seconds: int = SECONDS):
    def give_up(signum, frame):
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_main(lab: str, argv: list[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `python -m engine.<lab> *argv`, run in this process under a time limit."""
    out, err = io.StringIO(), io.StringIO()
    with time_limit(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = MAINS[lab](argv)
        except SystemExit as exit:  # argparse's usage errors and --help
            code = exit.code
    return code, out.getvalue(), err.getvalue()


def problem(lab: str, argv: list[str]) -> str | None:
    """What is wrong with how the command ended, or None when it ended as a person should see it."""
    code, _, err = run_main(lab, argv)
    if code not in (0, 2):
        return f"exit {code}"
    if code == 2 and (err.count("\n") != 1 or not err.startswith("error: ")):
        return f"stderr is not one line: {err[-300:]!r}"
    if "Traceback" in err:
        return "a traceback"
    return None


def interrupted_after_first_step(lab: str, *args: str) -> tuple[subprocess.Popen, str, str]:
    """`python -m engine.<lab> *args` sent SIGINT (Ctrl-C) once it logs its first step: (the process, stdout, stderr)."""
    process = subprocess.Popen(
        [sys.executable, "-m", f"engine.{lab}", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    for line in process.stderr:  # the first logged step shows the loop is running
        if line.startswith("step"):
            break
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    return process, stdout, stderr
