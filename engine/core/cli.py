"""What the three command lines share: a parser whose mistakes are one line, and one way a run ends.

Whatever a person types, a command exits 0, or 2 with exactly one line on stderr: argparse's usage
errors (shortened to their message), a `LabError`'s message, or the system's word for a file that
could not be written or memory that ran out. A traceback would mean a bug in the lab.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, NoReturn

from engine.core.errors import LabError


def one_line(text: str) -> str:
    """A message as one line: a path or value with a line break in it must not start another."""
    return " ".join(str(text).split())


def path_argument(text: str) -> Path:
    """argparse's type for a path: an empty one or one holding a NUL character is a usage error, not a traceback later."""
    if not text.strip():
        raise argparse.ArgumentTypeError("a path cannot be empty")
    if "\0" in text:
        raise argparse.ArgumentTypeError("a path cannot hold a NUL character")
    return Path(text)


class CommandParser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (argparse's own adds the whole usage); --help still shows it."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {one_line(message)} (usage: {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def run_command(command: Callable[[], int]) -> int:
    """Run a parsed command; a person's mistake, an unwritable file or too little memory exits 2 with one line."""
    try:
        return command()
    except LabError as error:
        message = str(error)
    except OSError as error:  # a disk that filled up or a file that vanished while the command ran
        name = f" {error.filename}" if error.filename else ""
        message = f"Cannot use{name}: {error.strerror or error}."
    except MemoryError:
        message = "This machine ran out of memory for that; try smaller settings."
    print(f"error: {one_line(message)}", file=sys.stderr)
    return 2
