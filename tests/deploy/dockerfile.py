"""Read the instructions of a Dockerfile: enough of its grammar for this project's own file.

Continuation lines are joined, comments and blank lines dropped; ENV's values are expanded the
way docker does ($NAME and ${NAME} from earlier ENV lines and the base image's PATH).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

BASE_IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # python:3.11-slim's PATH


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined."""
    result, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # docker drops comment lines inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        name, _, arguments = whole.partition(" ")
        result.append((name.upper(), arguments.strip()))
    return result


def arguments_of(dockerfile: Path, name: str) -> list[str]:
    return [arguments for instruction, arguments in instructions(dockerfile) if instruction == name]


def expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda match: env.get(match.group(1) or match.group(2), ""), value)


def env_of(dockerfile: Path) -> dict[str, str]:
    """Every variable the ENV lines set, in order, each expanded against what came before."""
    env, result = {"PATH": BASE_IMAGE_PATH}, {}
    for arguments in arguments_of(dockerfile, "ENV"):
        for pair in shlex.split(arguments):
            name, equals, value = pair.partition("=")
            assert equals, f"ENV {arguments!r}: only the NAME=value form is read here"
            env[name] = result[name] = expand(value, env)
    return result


def command_of(dockerfile: Path) -> list[str]:
    """The last CMD, which must be in exec form (a JSON array), so that signals reach the server itself."""
    cmd = arguments_of(dockerfile, "CMD")[-1]
    command = json.loads(cmd)
    assert isinstance(command, list) and all(isinstance(part, str) for part in command), cmd
    return command
