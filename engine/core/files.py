"""Reading a person's files with a bound, and checking that an output can be written before the work starts.

`stat` says 0 bytes for /dev/zero, /dev/urandom and a named pipe (FIFO), so a size check before a plain
`read_bytes()` lets the first grow until memory runs out and the others block for ever. `read_bounded`
opens without blocking, refuses anything that is not a regular file, and reads at most one byte more
than its limit, so whatever the path names, the read ends. `check_writable` finds out before minutes of
training whether the output path can be written at all.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from engine.core.errors import ConfigError, DataError

BLOCK = 1 << 20


def size_text(size: int) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size:,} bytes"


def limit_text(limit: int) -> str:
    return f"{limit // 2**20} MB" if limit >= 2**20 and limit % 2**20 == 0 else size_text(limit)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "a named pipe, not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a file"
    return "not a regular file"


def _open_regular(path: Path) -> int:
    """A file descriptor of `path` opened for reading, checked to be a regular file; DataError otherwise."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer would otherwise wait for one
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise DataError(f"Cannot read {path}: {error.strerror}.") from None
    except ValueError:  # a path holding a NUL character
        raise DataError(f"Cannot read {path!r}: a file name cannot hold a NUL character.") from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise DataError(f"Cannot read {path}: it is {_kind(mode)}.")
    return descriptor


def read_bounded(path: str | Path, limit: int, what: str | None = None) -> bytes:
    """The bytes of the regular file at `path`, or DataError if it is not one, cannot be read, or holds more than `limit` bytes.

    `what` names the file in messages (default: its name).
    """
    path = Path(path)
    name = what or path.name or str(path)
    descriptor = _open_regular(path)
    try:
        size = os.fstat(descriptor).st_size
        if size > limit:
            raise DataError(f"{name} is {size_text(size)}; the limit is {limit_text(limit)}.")
        chunks, total = [], 0
        while total <= limit:  # the size said may be stale: stop one byte past the limit whatever it said
            try:
                chunk = os.read(descriptor, min(BLOCK, limit + 1 - total))
            except OSError as error:
                raise DataError(f"Cannot read {path}: {error.strerror}.") from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise DataError(f"{name} is more than {limit_text(limit)}; the limit is {limit_text(limit)}.")
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def check_readable(path: str | Path) -> None:
    """DataError unless `path` is missing or a regular file that can be opened: what a loader may read without hanging."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return  # missing: the loader says so in its own words
    if not stat.S_ISREG(mode):
        raise DataError(f"Cannot read {path}: it is {_kind(mode)}.")
    os.close(_open_regular(path))


def _existing_ancestor(path: Path) -> Path:
    probe = path
    while True:
        try:
            probe.lstat()
            return probe
        except FileNotFoundError:
            if probe.parent == probe:
                return probe
            probe = probe.parent


def check_writable(path: str | Path, what: str = "--out", folder: bool = False) -> Path:
    """Refuse, before any work, an output path that cannot be written; returns it.

    `path` may not exist yet: its missing folders will be made, so the nearest folder that exists must
    accept a new file (tried for real: as root, `os.access` says yes even for /proc). An existing
    path must be a folder when `folder` is set, else a regular file that can be replaced.
    """
    path = Path(path)
    try:
        existing = _existing_ancestor(path.absolute())
        mode = existing.stat().st_mode
    except (OSError, ValueError) as error:
        raise ConfigError(f"{what} {path} cannot be written: {getattr(error, 'strerror', None) or error}.") from None
    if existing == path.absolute():
        if folder and not stat.S_ISDIR(mode):
            raise ConfigError(f"{what} {path} must be a folder, but it is a file.")
        if not folder and not stat.S_ISREG(mode):
            raise ConfigError(f"{what} {path} cannot be written: it is {_kind(mode)}.")
        parent = path.absolute() if folder else path.absolute().parent
    else:
        if not stat.S_ISDIR(mode):
            raise ConfigError(f"{what} {path} cannot be written: {existing} is a file, so no folder can be made inside it.")
        parent = existing
    try:
        handle, probe = tempfile.mkstemp(dir=parent, prefix=".dllab-write-check-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise ConfigError(f"{what} {path} cannot be written: {parent} does not accept new files ({error.strerror}).") from None
    return path
