"""The folder settings as the container uses them: a list tried in order, /data first when a Space has it."""

import os

import pytest

from engine.core import settings


@pytest.fixture
def clean(monkeypatch):
    for name in ("DLLAB_RUNS_DIR", "DLLAB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def listed(*folders) -> str:
    return os.pathsep.join(str(folder) for folder in folders)


def test_the_first_writable_folder_of_a_list_is_used(clean, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    # No persistent storage: /data is not there, and even root must not make it, so HOME holds everything.
    absent = "/dllab-no-such-top-folder"
    assert not os.path.exists(absent)
    clean.setenv("DLLAB_RUNS_DIR", listed(f"{absent}/dllab/runs", home / "dllab" / "runs"))
    clean.setenv("DLLAB_CACHE", listed(f"{absent}/dllab/cache", home / ".cache" / "dllab"))
    assert settings.runs_dir() == home / "dllab" / "runs"
    assert settings.cache_dir() == home / ".cache" / "dllab"
    # A Space with persistent storage mounts /data: it comes first.
    storage = tmp_path / "data"
    storage.mkdir()
    clean.setenv("DLLAB_RUNS_DIR", listed(storage / "dllab" / "runs", home / "dllab" / "runs"))
    clean.setenv("DLLAB_CACHE", listed(storage / "dllab" / "cache", home / ".cache" / "dllab"))
    assert settings.runs_dir() == storage / "dllab" / "runs"
    assert settings.cache_dir() == storage / "dllab" / "cache"


def test_when_no_folder_of_a_list_is_writable_the_last_is_named(clean):
    clean.setenv("DLLAB_CACHE", listed("/dllab-no-such-a/cache", "/dllab-no-such-b/cache"))
    assert str(settings.cache_dir()) == "/dllab-no-such-b/cache"


def test_one_folder_is_used_as_named_even_before_it_exists(clean, tmp_path):
    clean.setenv("DLLAB_RUNS_DIR", str(tmp_path / "a" / "b"))
    assert settings.runs_dir() == tmp_path / "a" / "b"
