"""Fixtures shared by more than one layer of tests (engine and cli; browser and deploy); helper modules' asserts rewritten."""

import pytest

from engine.core.jobs import SilentReporter
from engine.gpt.data import prepare_text
from engine.gpt.runs import train_run
from engine.gpt.train import TINY
from tests import torch_threads
from tests.browser.server import CHROMIUM_ARGS, chromium_executable
from tests.texts import rhymes

pytest.register_assert_rewrite("tests.checkpoint_labs")  # its asserts get pytest's messages, as a test module's do


@pytest.fixture
def finished_gpt_run(tmp_path):
    """A tiny GPT trained on the rhymes to its end, Adam's state kept, as `python -m engine.gpt train --preset tiny`
    leaves it: its run folder."""
    folder = tmp_path / "done"
    with torch_threads.one_torch_thread():
        train_run(TINY, prepare_text(rhymes(), "rhymes"), SilentReporter(), folder, text=rhymes(), command="python -m engine.gpt train --preset tiny")
    return folder


# The browser tests and the container test drive Chromium the same way: the same browser, found the same way.


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    executable = chromium_executable()
    print(f"\nbrowser tests use {'Chromium at ' + executable if executable else 'Playwright’s own Chromium'}")
    launch = {**browser_type_launch_args, "args": CHROMIUM_ARGS}
    if executable:
        launch["executable_path"] = executable
    return launch


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}
