"""The Shakespeare GPT page in Chromium: a live loss chart while a short run trains, and text that streams.

The page gets its own server, with DLLAB_RUNS_DIR in a temporary folder (seeded with one tiny run to
generate from) so the runs it makes do not land among a person's own, and with one torch thread:
two shared cores run the server, the browser and the training.
"""

import re

import pytest
from playwright.sync_api import expect

from engine.core.jobs import SilentReporter
from engine.gpt.data import prepare_text
from engine.gpt.runs import train_run
from engine.gpt.train import TINY
from tests.browser.conftest import paste_text, screenshot, serve_lab, set_number
from tests.torch_threads import one_torch_thread
from tests.texts import rhymes

TIMEOUT = 30_000


@pytest.fixture(scope="module")
def gpt_url(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    with one_torch_thread():
        train_run(TINY, prepare_text(rhymes(), "rhymes"), SilentReporter(), runs / "gpt" / "seeded-tiny", text=rhymes())
    with serve_lab(runs) as url:
        yield url


@pytest.fixture
def gpt_page(own_page, gpt_url):
    """The page reached as a person does, from its card on the home page."""
    page = own_page
    page.goto(gpt_url)
    card_link = page.get_by_role("link", name="Open the Shakespeare GPT lab")
    expect(card_link).to_be_visible(timeout=TIMEOUT)
    card_link.click()
    expect(page.get_by_role("heading", name="Shakespeare GPT")).to_be_visible(timeout=TIMEOUT)
    expect(page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first).to_be_visible(timeout=TIMEOUT)
    return page


def no_exceptions(page):
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def val_points(page) -> int:
    """How many validation-loss points the live chart holds (read from plotly's own data)."""
    return page.evaluate(
        """() => {
            const chart = [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')]
                .find(c => (c.layout?.title?.text || '').includes('Loss while training'));
            const trace = chart?.data?.find(t => t.name === 'val loss (evaluation)');
            return trace ? trace.x.length : 0;
        }"""
    )


def test_a_short_run_draws_a_live_loss_chart_and_stops(gpt_page):
    page = gpt_page
    expect(page.locator('[data-testid="stDataFrame"] canvas').first).to_be_visible(timeout=TIMEOUT)
    page.wait_for_timeout(500)  # the runs table draws on its canvas just after
    no_exceptions(page)
    screenshot(page, "shakespeare_gpt")
    page.get_by_text("Tiny (seconds, for trying things)").click()
    expect(page.get_by_label("Width · n_embd", exact=True)).to_have_value("32", timeout=TIMEOUT)
    set_number(page, "Iterations · max_iters", 100000)
    paste_text(page, rhymes())
    expect(page.get_by_text("the pasted text: 1,200 characters, 21 distinct")).to_be_visible(timeout=TIMEOUT)
    page.get_by_role("button", name="Train", exact=True).click()

    expect(page.locator('[data-testid="stPlotlyChart"]', has_text="Loss while training")).to_be_visible(timeout=TIMEOUT)
    first = val_points(page)
    page.wait_for_timeout(3000)
    assert val_points(page) > first  # the chart grew while the run went on
    expect(page.get_by_text(re.compile(r"What the model writes at iteration [\d,]+"))).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text("Learning rate now")).to_be_visible()
    no_exceptions(page)
    screenshot(page, "shakespeare_gpt_training")

    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_text(re.compile(r"stopped at iteration [\d,]+"))).to_be_visible(timeout=TIMEOUT)
    expect(page.locator('[data-testid="stPlotlyChart"]', has_text="Loss of your run")).to_be_visible(timeout=TIMEOUT)
    no_exceptions(page)
    screenshot(page, "shakespeare_gpt_stopped")


def test_generated_text_streams_into_the_page(gpt_page):
    page = gpt_page
    set_number(page, "New characters", 1500)
    page.get_by_label("Prompt", exact=True).fill("the cat ")
    page.get_by_label("Prompt", exact=True).press("Enter")
    page.get_by_role("button", name="Generate", exact=True).click()
    lengths = page.evaluate(
        """async () => {
            const lengths = [];
            const started = performance.now();
            while (performance.now() - started < 40000) {
                const text = [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
                    .map(e => e.innerText).find(t => t.startsWith('the cat'));
                lengths.push(text ? text.length : 0);
                const captions = [...document.querySelectorAll('[data-testid="stCaptionContainer"]')].map(e => e.innerText);
                if (captions.some(c => c.includes('1,500 new characters'))) break;
                await new Promise(resolve => setTimeout(resolve, 15));
            }
            return lengths;
        }"""
    )
    growing = sorted(set(length for length in lengths if length > 0))
    assert len(growing) >= 3, f"the text appeared in {len(growing)} step(s): {growing[:10]}"
    assert growing[-1] > 1000  # HTML folds runs of spaces, so a little under 1,508
    expect(page.get_by_text(re.compile(r"1,500 new characters in [\d.]+ s \([\d,]+ characters/s\)"))).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_role("button", name="Download the text")).to_be_visible()
    no_exceptions(page)
    screenshot(page, "shakespeare_gpt_generated")
