"""Settings from the environment: checked when read, with folders that work from a read-only app folder and an empty HOME."""

from pathlib import Path

import pytest

from engine.core import settings
from engine.core.errors import ConfigError


@pytest.fixture
def clean(monkeypatch):
    for name in ("DLLAB_RUNS_DIR", "DLLAB_CACHE", "SPACE_ID", "DLLAB_PUBLIC", "DLLAB_MAX_JOBS", "DLLAB_THREADS", "CPU_CORES"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_named_folders_win(clean, tmp_path):
    clean.setenv("DLLAB_RUNS_DIR", str(tmp_path / "r"))
    clean.setenv("DLLAB_CACHE", str(tmp_path / "c"))
    assert settings.runs_dir() == tmp_path / "r" and settings.cache_dir() == tmp_path / "c"


def test_a_read_only_working_folder_and_home_fall_back_to_the_temporary_folder(clean, tmp_path, monkeypatch):
    clean.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(settings, "_writable", lambda folder: False)
    assert settings.runs_dir().parts[-2:] == ("dllab", "runs") and settings.cache_dir().parts[-2:] == ("dllab", "cache")
    assert not str(settings.runs_dir()).startswith(str(tmp_path))


def test_an_empty_home_holds_the_runs_when_the_working_folder_is_read_only(clean, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    clean.setenv("HOME", str(home))
    monkeypatch.setattr(settings, "_writable", lambda folder: Path(folder) == home or home in Path(folder).parents)
    assert settings.runs_dir() == home / ".local" / "share" / "dllab" / "runs"
    assert settings.cache_dir() == home / ".cache" / "dllab"


def test_public_mode_follows_a_space_or_the_switch(clean):
    assert not settings.public_mode()
    clean.setenv("DLLAB_PUBLIC", "1")
    assert settings.public_mode()
    clean.delenv("DLLAB_PUBLIC")
    clean.setenv("SPACE_ID", "teacher/lab")
    assert settings.public_mode()


def test_a_spaces_cpu_cores_sets_the_threads_unless_dllab_threads_does(clean):
    assert settings.cpu_threads() is None
    clean.setenv("CPU_CORES", "2")
    assert settings.cpu_threads() == 2
    clean.setenv("DLLAB_THREADS", "1")
    assert settings.cpu_threads() == 1


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "inf", "nan"])
def test_a_bad_number_is_refused_naming_the_variable(clean, value):
    clean.setenv("DLLAB_MAX_JOBS", value)
    with pytest.raises(ConfigError, match=f"DLLAB_MAX_JOBS must be a positive whole number, not '{value}'"):
        settings.max_jobs()
