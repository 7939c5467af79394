"""Start the real app with its start command (`python serve.py`, as the container does) on a free port, for browser tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--disable-quic",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_app(timeout: float = 60.0, env: dict | None = None):
    """Yield the URL of a running app; the server is stopped on exit."""
    port = free_port()
    command = [
        sys.executable, "serve.py", "--server.headless", "true", "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    log = open(ROOT / "artifacts" / f"server-{port}.log", "wb") if (ROOT / "artifacts").is_dir() else subprocess.DEVNULL
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, timeout)
        yield url
    finally:
        stop(process)


def wait_healthy(url: str, process: subprocess.Popen, timeout: float, name: str = "streamlit") -> None:
    """Return once the server at `url` says it is healthy; RuntimeError if `process` exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {process.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not become healthy within {timeout:.0f} s")
        time.sleep(0.3)


def stop(process: subprocess.Popen) -> None:
    """Terminate a server, killing it if it has not ended within 10 s."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def chromium_executable() -> str | None:
    """Debian's Chromium where it is installed, else None (Playwright's own browser, if installed)."""
    for path in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(path).exists():
            return path
    return None
