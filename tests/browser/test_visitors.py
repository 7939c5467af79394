"""Visitors on one public server, in Chromium: each owns their runs, a full server queues, a reload reattaches.

One server in public mode with a single training slot (DLLAB_PUBLIC=1, DLLAB_MAX_JOBS=1), a GPT
iteration limit high enough for the run that holds the slot, and its own runs folder. Each visitor
is a separate browser context, so a separate Streamlit session with its own `?visitor=` token,
driven in turn from this one thread. The runs are the GPT page's Tiny preset on a little pasted
text: a second or two, except the one that holds the slot until its visitor stops it.
"""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import open_at, paste_text, screenshot, serve_lab, set_number
from tests.texts import rhymes

TIMEOUT = 30_000
EXCEPTION = '[data-testid="stException"]'


@pytest.fixture(scope="module")
def public_url(tmp_path_factory):
    env = {"DLLAB_PUBLIC": "1", "DLLAB_MAX_JOBS": "1", "DLLAB_GPT_MAX_ITERS": "100000"}  # Bob's run must outlast the queue's checks
    with serve_lab(tmp_path_factory.mktemp("runs"), env=env) as url:
        yield url


@pytest.fixture
def visit(browser, public_url):
    """`visit()` opens the GPT page as a new visitor: a browser context of their own, closed after the test."""
    contexts = []

    def open_page():
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = open_at(context.new_page(), f"{public_url}/shakespeare_gpt", "Shakespeare GPT")
        expect(page).to_have_url(re.compile(r"[?&]visitor=[\w-]{22,}"), timeout=TIMEOUT)  # the token a reload keeps
        return page

    yield open_page
    for context in contexts:
        for page in context.pages:
            expect(page.locator(EXCEPTION)).to_have_count(0)
        context.close()


def press_train(page, max_iters: int | None = None):
    """Tiny preset on the pasted rhymes, `max_iters` if given, then Train."""
    page.get_by_text("Tiny (seconds, for trying things)").click()
    expect(page.get_by_label("Width · n_embd", exact=True)).to_have_value("32", timeout=TIMEOUT)
    if max_iters is not None:
        set_number(page, "Iterations · max_iters", max_iters)
    paste_text(page, rhymes())
    expect(page.get_by_text("the pasted text: 1,200 characters, 21 distinct")).to_be_visible(timeout=TIMEOUT)
    page.get_by_role("button", name="Train", exact=True).click()


def finished_run(page) -> str:
    """Wait for the page's result and return its run folder's name (from "Kept in `.../<name>`")."""
    success = page.get_by_text(re.compile(r"Best val loss [\d.]+ nats/char"))
    expect(success).to_be_visible(timeout=60_000)
    return re.search(r"Kept in .*?([^/\\]+?)\.?$", success.inner_text().strip()).group(1)


def script_idle(page):
    """Wait until the page's script run has ended (Streamlit's running indicator is gone)."""
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT)


def generate_from_choices(page) -> list[str]:
    """The options of the "Generate from" box, read from its open list.

    The list opens on a press of its button, which a page still settling after a run can swallow;
    the arrow key on the focused box opens it too, so each is tried in turn."""
    page.bring_to_front()  # only the page in front has the focus the list needs
    script_idle(page)
    field = page.get_by_role("combobox", name="Generate from")
    options = page.get_by_role("option")
    for attempt in range(4):
        if attempt % 2:
            page.locator('[data-testid="stSelectbox"]', has=field).get_by_role("button", name="Open").click()
        else:
            field.focus()
            field.press("ArrowDown")
        try:
            expect(options.first).to_be_visible(timeout=5000)
            break
        except AssertionError:
            if attempt == 3:
                raise
    choices = options.all_inner_texts()
    page.keyboard.press("Escape")
    return choices


def shows_only_own_run(page, own: str, others: list[str]):
    """The runs table, the plot's choice and "Generate from" list this visitor's run and nobody else's."""
    expect(page.locator('[data-testid="stMultiSelect"]', has_text=own)).to_be_visible(timeout=TIMEOUT)  # Runs to plot
    for other in others:
        expect(page.get_by_text(other)).to_have_count(0)  # nowhere on the page: table, plot, downloads, resume
    choices = generate_from_choices(page)
    assert any(own in choice for choice in choices) and not any(other in choice for other in others for choice in choices), choices


def test_visitors_own_their_runs_wait_their_turn_and_find_their_job_after_a_reload(visit):
    # Bob starts a long one, which holds the only slot until he stops it.
    bob = visit()
    press_train(bob, max_iters=100_000)
    expect(bob.get_by_text(re.compile(r"Training · iteration"))).to_be_visible(timeout=TIMEOUT)

    # (b) Carol presses Train on a full server: she waits, first in the queue, and may cancel.
    carol = visit()
    press_train(carol)
    expect(carol.get_by_text("Waiting for a free slot")).to_be_visible(timeout=TIMEOUT)
    expect(carol.get_by_text(re.compile(r"place 1\b"))).to_be_visible()
    expect(carol.get_by_role("button", name="Cancel")).to_be_visible()
    running_now = carol.locator('[data-testid="stSidebar"] [data-testid="stCaptionContainer"]', has_text="Training now")
    expect(running_now).to_have_text("Training now: 1 of 1 slots in use; 1 waiting for a slot.")  # counts, never whose
    screenshot(carol, "visitors_waiting")

    # (c) Bob reloads: a new session for the same visitor finds his job, live, with Stop.
    token = re.search(r"visitor=([\w-]+)", bob.url).group(1)
    bob.reload()
    assert token in bob.url
    expect(bob.get_by_role("button", name="Stop")).to_be_visible(timeout=TIMEOUT)
    status = bob.get_by_text(re.compile(r"Training · iteration [\d,]+ of 100,000"))
    expect(status).to_be_visible(timeout=TIMEOUT)
    expect(bob.locator('[data-testid="stPlotlyChart"]', has_text="Loss while training").first).to_be_visible(timeout=TIMEOUT)
    before = status.inner_text()
    expect(status).not_to_have_text(before, timeout=TIMEOUT)  # still live after the reload
    screenshot(bob, "visitors_reloaded_running")

    # (b) Bob stops; the slot frees and Carol's job starts by itself and runs to its result.
    bob.get_by_role("button", name="Stop").click()
    expect(bob.get_by_text(re.compile(r"stopped at iteration [\d,]+"))).to_be_visible(timeout=TIMEOUT)
    bobs = finished_run(bob)
    carols = finished_run(carol)
    expect(carol.get_by_text("Waiting for a free slot")).to_have_count(0)
    screenshot(carol, "visitors_waited_then_trained")

    # (a) Each sees only their own run: both pages were drawn again when their run ended, after both runs existed.
    assert bobs != carols
    shows_only_own_run(bob, bobs, [carols])
    shows_only_own_run(carol, carols, [bobs])
    screenshot(bob, "visitors_own_runs")
