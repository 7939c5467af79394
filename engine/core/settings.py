"""Every setting the lab reads from its environment, in one place, each checked when it is read.

A setting is read when it is asked for (not at import), so a test can change it with monkeypatch.
A bad value raises `ConfigError` naming the variable and what it accepts.

Where things are written. The app may run from a read-only folder as an unprivileged user whose
HOME is empty (a container, a Hugging Face Space), so every folder the lab writes has a default
that works there:

    DLLAB_RUNS_DIR   a person's runs          runs/ in the working folder if it is writable,
                                              else $HOME/.local/share/dllab/runs, else <tmp>/dllab/runs
    DLLAB_CACHE      downloaded datasets      $HOME/.cache/dllab if HOME is writable, else <tmp>/dllab/cache

Either may name several folders separated by ':' (';' on Windows), tried in order: the first that
is writable, or can be made inside an existing writable folder other than /, is used, else the last.
The container names /data first (a Hugging Face Space's persistent storage, when it has some), then
a folder in HOME.

How a shared server behaves:

    SPACE_ID / DLLAB_PUBLIC=1   public mode: each visitor sees only their own runs (Hugging Face sets SPACE_ID)
    DLLAB_MAX_JOBS              trainings that run at once; more wait in a queue (default 2)
    DLLAB_IDLE_STOP_S           in public mode, a job nobody has watched for this long is stopped and kept (600)
    DLLAB_JOB_SECONDS           in public mode, the longest one training may run, in seconds (1800)
    DLLAB_RUNS_QUOTA_MB         in public mode, the most disk all runs may take; the oldest runs of
                                visitors long gone are removed first (2000)
    DLLAB_GPT_MAX_ITERS         in public mode, the most GPT iterations a run may ask for (5000, the GPU recipe's)
    DLLAB_DDPM_MAX_EPOCHS       in public mode, the most DDPM epochs a run may ask for (5, the shipped recipe's)
    DLLAB_THREADS / CPU_CORES   CPU threads torch may use (CPU_CORES is what a Space declares)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from engine.core.errors import ConfigError


def _text(name: str) -> str:
    return os.environ.get(name, "").strip()


def _positive_number(name: str, default: float, whole: bool = True) -> float:
    value = _text(name)
    if not value:
        return default
    try:
        number = int(value) if whole else float(value)
    except ValueError:
        number = None
    if number is None or not number > 0 or number == float("inf"):
        kind = "a positive whole number" if whole else "a positive number"
        raise ConfigError(f"{name} must be {kind}, not {value!r}.")
    return number


def _writable(folder: Path) -> bool:
    """True if `folder` exists and a file can be made in it, or it can be made in an existing folder other than /."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    if probe != folder and probe.parent == probe:
        return False  # a new top-level folder (root may make /data on a server that has none) is never what was meant
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def _named_folder(name: str) -> Path | None:
    """The folder a setting names: the first of its list that is writable, else the last (whose error will then say why)."""
    value = _text(name)
    if not value:
        return None
    folders = [Path(entry.strip()).expanduser() for entry in value.split(os.pathsep) if entry.strip()]
    if not folders:
        return None
    return next((folder for folder in folders if _writable(folder)), folders[-1])


def _home() -> Path | None:
    home = _text("HOME")
    return Path(home) if home and _writable(Path(home)) else None


def runs_dir() -> Path:
    """Where a person's runs go (see the module's docstring)."""
    named = _named_folder("DLLAB_RUNS_DIR")
    if named is not None:
        return named
    if _writable(Path.cwd()):
        return Path("runs")
    home = _home()
    if home is not None:
        return home / ".local" / "share" / "dllab" / "runs"
    return Path(tempfile.gettempdir()) / "dllab" / "runs"


def cache_dir() -> Path:
    """Where downloaded datasets are kept (see the module's docstring)."""
    named = _named_folder("DLLAB_CACHE")
    if named is not None:
        return named
    home = _home()
    if home is not None:
        return home / ".cache" / "dllab"
    return Path(tempfile.gettempdir()) / "dllab" / "cache"


def data_dir() -> Path | None:
    """The folder named by DLLAB_DATA_DIR that holds the datasets offline, if any."""
    value = _text("DLLAB_DATA_DIR")
    return Path(value).expanduser() if value else None


def offline() -> bool:
    return bool(_text("DLLAB_OFFLINE")) and _text("DLLAB_OFFLINE") != "0"


def public_mode() -> bool:
    """True on a Hugging Face Space (SPACE_ID is set) or with DLLAB_PUBLIC=1: visitors see only their own runs."""
    return bool(_text("SPACE_ID")) or _text("DLLAB_PUBLIC") == "1"


def max_jobs() -> int:
    return int(_positive_number("DLLAB_MAX_JOBS", 2))


def idle_stop_seconds() -> float:
    return _positive_number("DLLAB_IDLE_STOP_S", 600.0, whole=False)


def job_seconds() -> float:
    return _positive_number("DLLAB_JOB_SECONDS", 1800.0, whole=False)


def runs_quota_bytes() -> int:
    return int(_positive_number("DLLAB_RUNS_QUOTA_MB", 2000.0, whole=False) * 1024 * 1024)


STEP_LIMITS = {  # lab -> (variable, default in public mode, the config's name for it)
    "gpt": ("DLLAB_GPT_MAX_ITERS", 5000, "max_iters"),
    "ddpm": ("DLLAB_DDPM_MAX_EPOCHS", 5, "epochs"),
}


def check_step_limit(lab: str, steps: int) -> None:
    """In public mode, refuse a run longer than this server's limit for the lab, naming the limit and its variable."""
    variable, default, name = STEP_LIMITS[lab]
    if not public_mode():
        return
    limit = int(_positive_number(variable, default))
    if steps > limit:
        raise ConfigError(f"{name} ({steps:,}) is above this shared server's limit of {limit:,} ({variable}); run longer ones on your own machine.")


def cpu_threads() -> int | None:
    """The CPU threads torch may use: DLLAB_THREADS, else a Space's CPU_CORES, else None (torch decides)."""
    for name in ("DLLAB_THREADS", "CPU_CORES"):
        if _text(name):
            return int(_positive_number(name, 1))
    return None
