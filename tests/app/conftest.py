from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import engine.ddpm.checkpoint as ddpm_checkpoint
import engine.gpt.checkpoint as gpt_checkpoint
from tests import torch_threads

ROOT = Path(__file__).resolve().parents[2]
# A lab's name -> (its folder in DLLAB_RUNS_DIR, the module whose SHIPPED_CHECKPOINT its page reads, that checkpoint's name)
LABS = {
    "ddpm": ("ddpm", ddpm_checkpoint, "ddpm_mnist"),
    "gpt": ("gpt", gpt_checkpoint, "gpt_shakespeare"),
}


@pytest.fixture(scope="module")
def one_torch_thread():
    """For a test module that trains models: `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    with torch_threads.one_torch_thread():
        yield


@pytest.fixture
def app():
    """The whole app (navigation, sidebar) on its home page."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    return at



# A page's test module names its lab with a `lab` fixture ("ddpm" or "gpt", a key of LABS) and a `tiny_checkpoint`
# fixture (the path, without suffix, of a small exported model); these fixtures then serve that lab.


@pytest.fixture
def runs_dir(lab, tmp_path, monkeypatch):
    """Every run in a temporary DLLAB_RUNS_DIR: the lab's own folder in it."""
    monkeypatch.setenv("DLLAB_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs" / LABS[lab][0]


@pytest.fixture
def shipped(lab, tiny_checkpoint, monkeypatch):
    """The tiny checkpoint stands for the shipped one, so the page is tested the same with or without the real one."""
    monkeypatch.setattr(LABS[lab][1], "SHIPPED_CHECKPOINT", tiny_checkpoint)
    return tiny_checkpoint


@pytest.fixture
def no_shipped(lab, tmp_path, monkeypatch):
    """A copy of the lab without its shipped checkpoint."""
    monkeypatch.setattr(LABS[lab][1], "SHIPPED_CHECKPOINT", tmp_path / "nowhere" / LABS[lab][2])
