"""Where a process stands under torchrun, read from its environment; settings that cannot be shared refused before any
process group starts (two processes training together are tested end to end in tests/cli/test_distributed.py)."""

from dataclasses import replace

import pytest

from engine.core.distributed import QuietReporter, World, world_from_environment
from engine.core.errors import ConfigError
from engine.core.jobs import SilentReporter
from engine.ddpm.data import toy_shapes
from engine.ddpm.train import TINY as DDPM_TINY
from engine.ddpm.train import train as train_ddpm
from engine.gpt.data import prepare_text
from engine.gpt.train import TINY as GPT_TINY
from engine.gpt.train import train as train_gpt
from tests.texts import rhymes


@pytest.fixture
def rank_0_of(monkeypatch):
    def place(size: int) -> None:
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv("LOCAL_RANK", "0")
        monkeypatch.setenv("WORLD_SIZE", str(size))

    return place


def test_without_torchrun_a_process_is_a_world_of_one(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    world = world_from_environment()
    assert world == World() and world.is_main and not world.distributed


def test_torchruns_variables_place_the_process(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert world_from_environment() == World(rank=3, local_rank=1, size=4)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ConfigError, match="RANK"):
        world_from_environment()


def test_another_rank_reports_nothing_but_hears_its_own_stop():
    report = SilentReporter()
    quiet = World(rank=1, size=2).reporter(report)
    quiet.metric(1, loss=2.0)
    quiet.snapshot("sample", "text")
    assert isinstance(quiet, QuietReporter) and report.metrics == [] and report.snapshots == {}
    report.stop_requested = True
    assert quiet.stop_requested
    assert World(rank=0, size=2).reporter(report) is report


def test_the_gpt_refuses_accumulation_steps_the_processes_cannot_share(rank_0_of):
    rank_0_of(2)
    with pytest.raises(ConfigError, match=r"gradient_accumulation_steps \(3\) must be divisible by the number of processes \(2\)"):
        train_gpt(replace(GPT_TINY, gradient_accumulation_steps=3, device="cpu"), prepare_text(rhymes(), "rhymes"), SilentReporter())


def test_the_ddpm_refuses_a_batch_the_processes_cannot_share(rank_0_of):
    rank_0_of(3)
    with pytest.raises(ConfigError, match=r"batch size \(32\) must be divisible by the number of processes \(3\)"):
        train_ddpm(replace(DDPM_TINY, device="cpu"), toy_shapes(256), SilentReporter())
