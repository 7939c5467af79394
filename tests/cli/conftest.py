"""What the command-line tests share."""

import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
