"""Run folders, the same for every lab: DLLAB_RUNS_DIR/<lab>/<date-time>-<label>/.

A run folder holds the lab's checkpoints (the lab's checkpoint.py writes them) and two files this
module reads and writes for every lab:

    run.json        what the run is: who started it (a visitor's token), when, its settings and state
    history.jsonl   every metric row as it arrived, one JSON object per line

Everything here is read defensively: a run folder is whatever is on disk, and one broken folder
must never break a page for anyone. Readers return empty values for what they cannot use, and
listings skip a folder they cannot read with a note naming it.

In public mode (engine.core.settings.public_mode) a visitor sees only the runs they own; on a
private machine every run is visible. A disk quota removes the oldest runs of visitors long gone
first, never a run that is training.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from engine.core import settings
from engine.core.checkpoints import write_atomically
from engine.core.errors import DataError
from engine.core.jobs import STOP_GRACE, JobBoard, Reporter

RUN_FILE, HISTORY_FILE = "run.json", "history.jsonl"
MAX_RUN_FILE_BYTES = 1 << 20  # run.json holds settings and a short sample: far below this
MAX_HISTORY_BYTES = 64 << 20  # a million-iteration run logged every 10 iterations stays under this
MAX_EXPORT_BYTES = 512 << 20  # what a download of one run may hold
GONE_AFTER_SECONDS = 3600.0  # a visitor whose runs have not changed for this long, and who has no job, has left

RunT = TypeVar("RunT")


def lab_runs_dir(lab: str) -> Path:
    return settings.runs_dir() / lab


def new_run_folder(lab: str, label: str, owner: str = "") -> Path:
    """An empty run folder DLLAB_RUNS_DIR/<lab>/<date-time>-<label>, made now, with run.json naming its owner."""
    root = lab_runs_dir(lab)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"Could not make the runs folder {root} ({error.strerror}): set DLLAB_RUNS_DIR to a writable folder.") from None
    for n in range(1, 1000):
        folder = root / (f"{stamp}-{label}" if n == 1 else f"{stamp}-{label}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        write_json(folder / RUN_FILE, {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "owner": owner})
        return folder
    raise DataError(f"Could not make a new run folder under {root}.")


def write_json(path: Path, values: dict) -> None:
    write_atomically(Path(path), json.dumps(values, indent=2).encode())


def read_bounded_text(path: Path, limit: int) -> str | None:
    """A regular file's text, or None when it is missing, not a regular file, too big or not UTF-8."""
    try:
        if not path.is_file() or path.stat().st_size > limit:
            return None
        with open(path, "rb") as file:
            data = file.read(limit + 1)
        return data.decode("utf-8") if len(data) <= limit else None
    except (OSError, UnicodeDecodeError):
        return None


def read_json(path: Path) -> dict:
    """A JSON object from `path`, or {} when there is none that can be used."""
    text = read_bounded_text(Path(path), MAX_RUN_FILE_BYTES)
    if text is None:
        return {}
    try:
        values = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return {}
    return values if isinstance(values, dict) else {}


def number(value: Any) -> float | None:
    """A finite number from a file, or None (a string, a bool, NaN or anything else is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def whole(value: Any) -> int | None:
    found = number(value)
    return int(found) if found is not None and found == int(found) else None


def text(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def read_history(folder: Path) -> list[dict[str, float]]:
    """The metric rows a run recorded, in order. A line that is not an object of finite numbers with a
    whole `step` (a torn last line, a hand-edited file) is skipped."""
    content = read_bounded_text(Path(folder) / HISTORY_FILE, MAX_HISTORY_BYTES)
    rows: list[dict[str, float]] = []
    for line in (content or "").splitlines():
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if not isinstance(row, dict) or whole(row.get("step")) is None:
            continue
        values = {key: number(value) for key, value in row.items() if isinstance(key, str) and key != "step"}
        rows.append({"step": whole(row["step"]), **{key: value for key, value in values.items() if value is not None}})
    return rows


class RunRecorder:
    """A Reporter that appends each metric row to the run's history.jsonl and passes everything on to `inner`."""

    def __init__(self, inner: Reporter, folder: Path):
        self.inner = inner
        self.path = Path(folder) / HISTORY_FILE
        self.sample = ""

    @property
    def stop_requested(self) -> bool:
        return self.inner.stop_requested

    @property
    def stop_requested_at(self) -> float | None:
        return getattr(self.inner, "stop_requested_at", None)

    @property
    def stop_grace(self) -> float:
        return getattr(self.inner, "stop_grace", STOP_GRACE)

    def metric(self, step: int, **values: float) -> None:
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps({"step": step, **{k: float(v) for k, v in values.items()}}) + "\n")
        self.inner.metric(step, **values)

    def snapshot(self, name: str, value: Any) -> None:
        if name == "sample":
            self.sample = value
        self.inner.snapshot(name, value)

    def progress(self, done: int, total: int) -> None:
        self.inner.progress(done, total)


def owner_of(folder: Path) -> str:
    return text(read_json(Path(folder) / RUN_FILE).get("owner"))


def visible_to(folder: Path, visitor: str | None) -> bool:
    """On a private machine every run is visible; in public mode only the visitor's own."""
    return not settings.public_mode() or (bool(visitor) and owner_of(folder) == visitor)


class RunList(list):
    """Runs, newest first, with `skipped`: one note for each folder that could not be read."""

    def __init__(self, runs: Iterable = (), skipped: list[str] | None = None):
        super().__init__(runs)
        self.skipped = skipped or []


def list_runs_of(root: Path, read_one: Callable[[Path], RunT | None], visitor: str | None = None) -> RunList:
    """`read_one(folder)` for every visible folder under `root`, newest first; a folder it cannot read is skipped with a note.

    `read_one` returns None for a folder that is not a run; anything it raises is that folder's problem alone.
    """
    runs, skipped = [], []
    try:
        folders = [path for path in Path(root).iterdir() if path.is_dir() and not path.name.startswith(".")]
    except OSError:
        return RunList()
    for folder in sorted(folders, key=newest_change, reverse=True):
        if not visible_to(folder, visitor):
            continue
        try:
            run = read_one(folder)
        except Exception as error:  # one unreadable folder is a note, not a broken page for everyone
            skipped.append(f"{folder.name} was skipped: it could not be read ({type(error).__name__}: {error}).")
            continue
        if run is not None:
            runs.append(run)
    return RunList(runs, skipped)


def newest_change(folder: Path) -> float:
    try:
        return max((path.stat().st_mtime for path in Path(folder).iterdir()), default=Path(folder).stat().st_mtime)
    except OSError:
        return 0.0


def folder_bytes(folder: Path) -> int:
    try:
        return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())
    except OSError:
        return 0


def enforce_quota(quota_bytes: int, active_owners: set[str], busy_folders: set[Path], now: float | None = None) -> list[Path]:
    """Remove whole run folders, oldest first, until all runs take at most `quota_bytes`; returns what was removed.

    Runs of visitors long gone go first (no job on the board and nothing of theirs changed for an hour),
    then the oldest of anyone else's. A folder in `busy_folders` (a job is writing it) is never removed.
    """
    now = time.time() if now is None else now
    root = settings.runs_dir()
    folders = [folder for lab in _subfolders(root) for folder in _subfolders(lab)]
    sizes = {folder: folder_bytes(folder) for folder in folders}
    total = sum(sizes.values())
    if total <= quota_bytes:
        return []
    last_seen: dict[str, float] = {}
    for folder in folders:
        owner = owner_of(folder)
        last_seen[owner] = max(last_seen.get(owner, 0.0), newest_change(folder))

    def gone(folder: Path) -> bool:
        owner = owner_of(folder)
        return owner not in active_owners and now - last_seen.get(owner, 0.0) > GONE_AFTER_SECONDS

    busy = {Path(folder).resolve() for folder in busy_folders}
    order = sorted((f for f in folders if f.resolve() not in busy), key=lambda f: (not gone(f), newest_change(f)))
    removed = []
    for folder in order:
        if total <= quota_bytes:
            break
        shutil.rmtree(folder, ignore_errors=True)
        total -= sizes[folder]
        removed.append(folder)
    return removed


def make_room(board: JobBoard) -> list[Path]:
    """In public mode, keep all runs within DLLAB_RUNS_QUOTA_MB before a new one starts; returns what was removed.

    The visitors with a job on the board are active, and the folders their jobs write are busy.
    """
    if not settings.public_mode():
        return []
    quota = settings.runs_quota_bytes()
    jobs = [job for job in board.all_jobs() if not job.state.finished]
    busy = {Path(job.info["folder"]) for job in jobs if isinstance(job.info.get("folder"), str)}
    removed = enforce_quota(quota, {job.owner for job in jobs}, busy)
    root = settings.runs_dir()
    if sum(folder_bytes(folder) for lab in _subfolders(root) for folder in _subfolders(lab)) > quota:
        raise DataError(f"This server's space for runs ({quota >> 20:,} MB) is full with trainings still running; try again when one ends.")
    return removed


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [path for path in Path(folder).iterdir() if path.is_dir()]
    except OSError:
        return []


def export_zip(folder: Path) -> bytes:
    """A run folder's files (checkpoints, cards, run.json, history) in one zip, to keep: nothing else is in it."""
    folder = Path(folder)
    # (a checkpoint save killed half-way leaves staged .next.* and hidden .tmp files: the loader reads them, a keeper need not)
    files = sorted(path for path in folder.iterdir() if path.is_file() and not path.name.startswith(".") and ".next." not in path.name)
    if sum(path.stat().st_size for path in files) > MAX_EXPORT_BYTES:
        raise DataError(f"{folder.name} holds more than {MAX_EXPORT_BYTES >> 20} MB, too much to download from the page; copy the folder instead.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, f"{folder.name}/{path.name}")
    return buffer.getvalue()
