"""What the three command lines share: a parser whose mistakes are one line, one way a run ends, and what
training from a terminal needs (a flag per setting, checkpoints checked before minutes of work, Ctrl-C).

Whatever a person types, a command exits 0, or 2 with exactly one line on stderr: argparse's usage
errors (shortened to their message), a `LabError`'s message, or the system's word for a file that
could not be written or memory that ran out. A traceback would mean a bug in the lab.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import fields
from pathlib import Path
from typing import Callable, NoReturn, TypeVar

from engine.core.checkpoints import card_path, read_card, resumed_command, weights_path
from engine.core.errors import CheckpointError, ConfigError, LabError
from engine.core.files import check_readable, check_writable
from engine.core.jobs import ConsoleReporter

Result = TypeVar("Result")


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


def command_line(module: str, argv: list[str] | None) -> str:
    """The command as a person would type it again, for a checkpoint's card: `python -m engine.<lab> ...`."""
    return f"python -m {module} " + shlex.join(argv if argv is not None else sys.argv[1:])


def whole_numbers(text: str) -> tuple[int, ...]:
    """argparse's type for a tuple setting, such as the U-Net's channel multipliers: 1,2,2."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, such as 1,2,2; got {text!r}") from None


def config_arguments(parser: argparse.ArgumentParser, config_class: type, presets: dict) -> None:
    """One --flag per field of a lab's frozen training config; unset flags keep the preset's (or the resumed run's) value."""
    group = parser.add_argument_group("settings", "each overrides the preset's value, or the resumed run's")
    for field in fields(config_class):
        flag = "--" + field.name.replace("_", "-")
        example = getattr(config_class(), field.name)
        values = ", ".join(f"{name}: {getattr(preset, field.name)}" for name, preset in presets.items())
        if isinstance(example, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=values)
        elif isinstance(example, tuple):
            group.add_argument(flag, type=whole_numbers, default=None, metavar="N,N,...", help=values)
        else:
            group.add_argument(flag, type=type(example), default=None, metavar=type(example).__name__.upper(), help=values)


def flags_given(args: argparse.Namespace, config_class: type) -> dict:
    """The fields of `config_class` that a flag of the same name set: what overrides a preset, a resumed run's settings
    or the defaults."""
    return {f.name: value for f in fields(config_class) if (value := getattr(args, f.name, None)) is not None}


def train_command(commands, help: str, presets: dict):
    """The `train` subcommand with what every lab's starts with: a --preset, or a run to --resume, not both."""
    parser = commands.add_parser("train", help=help)
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--preset", choices=list(presets), help="settings to start from (default cpu)")
    start.add_argument("--resume", type=path_argument, help="a run folder or checkpoint to continue, with its settings")
    return parser


def config_in_card(checkpoint: Path, config_class: type, start: Path):
    """The training settings a checkpoint's card holds (to resume the run, or fine-tune its weights); `start` is
    the path the person gave."""
    card = read_card(checkpoint)
    try:
        return config_class.from_dict(card["config"])
    except (KeyError, TypeError, ConfigError) as error:
        raise CheckpointError(f"The checkpoint at {start} has no usable training settings ({error}).") from None


def command_resuming(checkpoint: Path, command: str) -> str:
    """The command for the card of a run that `command` resumes from `checkpoint`: the whole run's history."""
    return resumed_command(read_card(checkpoint).get("command"), command)


def check_readable_pair(checkpoint: Path) -> Path:
    """A checkpoint a --checkpoint or --resume names, its two files checked to be regular files, so reading them ends."""
    check_readable(card_path(checkpoint))
    check_readable(weights_path(checkpoint))
    return checkpoint


def check_writable_pair(checkpoint: Path) -> None:
    """Before minutes of work: can both files of the checkpoint be written?"""
    check_writable(weights_path(checkpoint))
    check_writable(card_path(checkpoint))


def train_in_console(reporter: ConsoleReporter, train: Callable[[], Result]) -> Result | None:
    """Run a training loop from a terminal: the first Ctrl-C stops it cleanly (it keeps what it has), a second one
    interrupts, except under torchrun, whose agent passes the terminal's Ctrl-C on as a second SIGINT. Afterwards the
    process leaves the group it joined under torchrun, and gets None on a rank other than 0: rank 0 alone says how the
    run went, and saved it."""
    from engine.core.distributed import is_main_process, leave, under_torchrun  # torch: the sparse autoencoder's CLI does without

    ended_normally = False
    try:
        with reporter.ctrl_c_stops(again_interrupts=not under_torchrun()):
            result = train()
        reporter.close()
        ended_normally = True
    finally:
        leave(together=ended_normally)  # the process group training may have started under torchrun
    return result if is_main_process() else None
