from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.core.jobs import board
from tests import torch_threads

ROOT = Path(__file__).resolve().parents[2]


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


def wait_for_job(at, prefix):
    """AppTest does not tick fragments: wait for the job's thread, then rerun the page once."""
    job = board.get(at.session_state[f"{prefix}_job_id"])
    job.wait(120)
    at.run()
    return job
