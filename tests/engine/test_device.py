import pytest
import torch

from engine.core.device import configure_threads, describe_device
from engine.core.errors import ConfigError


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_dllab_threads_sets_torchs_threads_and_the_sidebar_says_so(monkeypatch, restore_threads):
    monkeypatch.setenv("DLLAB_THREADS", "1")
    assert configure_threads() == 1 == torch.get_num_threads()
    assert describe_device(torch.device("cpu")) == "CPU (1 thread)"


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_thread_count_is_explained(monkeypatch, restore_threads, value):
    monkeypatch.setenv("DLLAB_THREADS", value)
    with pytest.raises(ConfigError, match="DLLAB_THREADS must be a positive whole number"):
        configure_threads()


def test_without_dllab_threads_torch_keeps_its_own_choice(monkeypatch, restore_threads):
    monkeypatch.delenv("DLLAB_THREADS", raising=False)
    threads = torch.get_num_threads()
    assert configure_threads() == threads
