"""The real app under its start command (`python serve.py`), driven by Playwright in Chromium.

Debian's Chromium (/usr/bin/chromium) is used where it is installed, else Playwright's own
(`python -m playwright install chromium`). Screenshots go to artifacts/ (ignored by git).
"""

from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.server import ROOT, serve_app

ARTIFACTS = ROOT / "artifacts"
TIMEOUT = 30_000  # ms for a step to show in the browser: two shared cores run the server, Chromium and any training


@contextmanager
def serve_lab(runs: Path, env: dict | None = None):
    """A fresh server whose runs live in `runs`, with torch on one thread (the two cores are shared with Chromium).

    `env` adds to its environment (public mode: {"DLLAB_PUBLIC": "1", "DLLAB_MAX_JOBS": "1"})."""
    ARTIFACTS.mkdir(exist_ok=True)
    with serve_app(env={"DLLAB_RUNS_DIR": str(runs), "OMP_NUM_THREADS": "1", **(env or {})}) as url:
        yield url


@pytest.fixture(scope="session")
def app_url():
    ARTIFACTS.mkdir(exist_ok=True)
    with serve_app() as url:
        yield url


@pytest.fixture(scope="session")
def base_url(app_url):
    return app_url


def screenshot(page, name: str) -> Path:
    """A full-length picture of the page: Streamlit scrolls inside its own container, so grow the viewport."""
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight || 1000")
    page.set_viewport_size({"width": 1400, "height": min(max(height + 50, 1000), 6000)})
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1400, "height": 1000})
    return path


@pytest.fixture
def own_page(browser):
    """A page in a browser context of its own (a new visitor, at the tests' window size), closed after the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()


def open_at(page, url: str, heading: str):
    """Go straight to `url`, as a shared link does, and wait for the page's heading."""
    page.goto(url)
    expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=TIMEOUT)
    return page


def set_number(page, label, value):
    """Type `value` into the number field labelled `label` and wait until the field shows it."""
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    expect(field).to_have_value(str(value), timeout=TIMEOUT)


def paste_text(page, text: str):
    """On the GPT page: choose "Paste text", type `text` and apply it (Ctrl+Enter)."""
    page.get_by_text("Paste text").click()
    box = page.get_by_label("Your text")
    box.fill(text)
    box.press("Control+Enter")
