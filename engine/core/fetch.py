"""Finding a dataset file: an explicit folder, `DLLAB_DATA_DIR`, the cache, then a download.

Each file the lab needs is a `RemoteFile`: its path inside a data folder, where to download it,
and its sha256. `resolve` looks in that order and returns the first copy whose checksum is right;
a download streams into a temporary file in the cache (`DLLAB_CACHE`, default ~/.cache/dllab),
is checked, then moved into place atomically. With nothing found and no network, `DataError`
says which file is missing and where to put it. `DLLAB_OFFLINE=1` turns downloads off.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.core import settings
from engine.core.errors import DataError

Progress = Callable[[int, int], None]  # (bytes so far, total bytes)


@dataclass(frozen=True)
class RemoteFile:
    path: str  # inside a data folder, e.g. "natural_images/olshausen_raw_tif/01.tif"
    url: str
    sha256: str
    size: int


data_dir = settings.data_dir
cache_dir = settings.cache_dir


_verified: dict[tuple[str, float, int], str] = {}


def sha256_of(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_mtime, stat.st_size)
    if key not in _verified:
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        _verified[key] = digest.hexdigest()
    return _verified[key]


def candidates(file: RemoteFile, folder: str | Path | None = None) -> list[Path]:
    """Where `resolve` looks, in order."""
    places = [Path(folder).expanduser()] if folder else []
    if data_dir():
        places.append(data_dir())
    places.append(cache_dir())
    return [place / file.path for place in places]


def find_local(file: RemoteFile, folder: str | Path | None = None) -> Path | None:
    """The first local copy with the right checksum, or None. Never touches the network."""
    for path in candidates(file, folder):
        if path.is_file() and path.stat().st_size == file.size and sha256_of(path) == file.sha256:
            return path
    return None


def resolve(file: RemoteFile, folder: str | Path | None = None, progress: Progress | None = None) -> Path:
    """A verified local path to `file`, downloading it into the cache if no copy is found."""
    found = find_local(file, folder)
    if found:
        return found
    wrong = [str(p) for p in candidates(file, folder) if p.is_file()]
    try:
        return download(file, progress)
    except DataError as error:
        looked = ", ".join(str(p) for p in candidates(file, folder))
        note = f" A copy with the wrong checksum was found at {', '.join(wrong)}." if wrong else ""
        raise DataError(
            f"{error} The lab looked for {file.path} in: {looked}.{note} Put the file in one of "
            f"those places, or set DLLAB_DATA_DIR to a folder that holds it (see README, 'Data')."
        ) from None


def download(file: RemoteFile, progress: Progress | None = None) -> Path:
    if settings.offline():
        raise DataError(f"{file.path} is not on this machine and downloads are off (DLLAB_OFFLINE is set).")
    target = cache_dir() / file.path
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    digest = hashlib.sha256()
    done = 0
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(file.url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or file.size)
            for block in iter(lambda: response.read(1 << 16), b""):
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress:
                    progress(done, total)
        if digest.hexdigest() != file.sha256:
            raise DataError(f"The download of {file.path} from {file.url} has the wrong checksum; it was discarded.")
        os.replace(temporary, target)
        return target
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        raise DataError(f"Could not download {file.path} from {file.url} ({getattr(error, 'reason', error)}).") from None
    finally:
        Path(temporary).unlink(missing_ok=True)
