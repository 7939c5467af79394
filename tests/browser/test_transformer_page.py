"""The transformer page in Chromium: the flow diagram, an attention heatmap and the probability bars render,
clicking the diagram picks a stage, the temperature reshapes the bars, sampling appends to the prompt, the toy.

The app gets its own server, with DLLAB_RUNS_DIR in a temporary folder holding one tiny run (a 64-character context,
trained for a second on some Shakespeare), and one torch thread: two shared cores run the server, the browser
and the model. The page opens on the shipped checkpoint where there is one, else on that run; the checks hold
for either.
"""

import re
from dataclasses import replace

import pytest
from playwright.sync_api import expect

from engine.core.jobs import SilentReporter
from engine.gpt.data import prepare_text
from engine.gpt.train import TINY, train
from tests.browser.conftest import open_at, screenshot, serve_lab
from tests.torch_threads import one_torch_thread

TIMEOUT = 30_000
LINES = [
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n",
    "All:\nSpeak, speak.\n\n",
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n",
    "MENENIUS:\nWhy, masters, my good friends, mine honest neighbours, will you undo yourselves?\n\n",
]


@pytest.fixture(scope="module")
def transformer_url(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    config = replace(TINY, block_size=64, max_iters=60, eval_interval=20, eval_iters=2, sample_chars=0, device="cpu")
    with one_torch_thread():
        train(config, prepare_text("".join(LINES) * 12, "some Shakespeare"), SilentReporter(), out=runs / "gpt" / "tiny-shakespeare")
    with serve_lab(runs) as url:
        yield url


@pytest.fixture
def transformer_page(own_page, transformer_url):
    # Straight to the page's address on a fresh server, as a shared link does: app.py's frame must be there.
    page = open_at(own_page, f"{transformer_url}/inside_the_transformer", "Inside the transformer")
    expect(page.get_by_text("Device:")).to_be_visible(timeout=TIMEOUT)
    return page


def chart(page, title: str):
    return page.locator('[data-testid="stPlotlyChart"]', has_text=title)


def keyed(page, key: str):
    """The element a widget or chart with this key drew (Streamlit marks its container with st-key-<key>)."""
    return page.locator(f".st-key-{key}").last


def settle(page):
    """Wait until the script has finished its run (the 'Running…' status has gone)."""
    page.wait_for_timeout(300)
    expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=TIMEOUT)


def no_exceptions(page):
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def click_stage(page, x: float, y: float) -> None:
    """Click the diagram at data coordinates (x, y), where a stage's invisible click target sits."""
    diagram = keyed(page, "itt_diagram").locator(".js-plotly-plot")
    point = diagram.evaluate(
        """(gd, [x, y]) => { const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
                             return [xa._offset + xa.l2p(x), ya._offset + ya.l2p(y)]; }""", [x, y])
    box = diagram.bounding_box()
    page.mouse.click(box["x"] + point[0], box["y"] + point[1])


def test_the_page_draws_the_flow_attention_and_probabilities(transformer_page):
    page = transformer_page
    diagram = keyed(page, "itt_diagram")  # the shipped model's where there is one, else the tiny run's
    expect(diagram.locator(".js-plotly-plot")).to_be_visible(timeout=TIMEOUT)
    expect(diagram).to_contain_text("d_model")
    expect(diagram).to_contain_text("Attention")
    expect(diagram).to_contain_text("Softmax")
    attention = keyed(page, "itt_attention")
    expect(attention).to_contain_text("Layer 1, head 1", timeout=TIMEOUT)
    expect(attention.locator(".js-plotly-plot")).to_be_visible(timeout=TIMEOUT)
    bars = keyed(page, "itt_bars")
    expect(bars).to_contain_text("The next character after position", timeout=TIMEOUT)
    expect(bars.locator(".js-plotly-plot")).to_be_visible(timeout=TIMEOUT)
    expect(bars).to_contain_text("at temperature 1")
    no_exceptions(page)
    screenshot(page, "inside_the_transformer")

    click_stage(page, 2, 1)  # layer 1's MLP block
    expect(keyed(page, "itt_stage_numbers")).to_contain_text("Layer 1: MLP, at position", timeout=TIMEOUT)
    expect(page.get_by_role("combobox", name="Stage")).to_have_value("Layer 1: MLP")
    settle(page)

    slider = page.get_by_role("slider", name="Temperature")
    slider.focus()
    for _ in range(4):
        slider.press("ArrowLeft")
    expect(bars).to_contain_text("at temperature 0.8", timeout=TIMEOUT)
    settle(page)

    prompt = page.get_by_role("textbox", name="Prompt")
    before = prompt.input_value()
    page.get_by_role("button", name="Sample the next character").click()
    expect(page.get_by_text("Last sample:")).to_be_visible(timeout=TIMEOUT)
    assert len(prompt.input_value()) == len(before) + 1 and prompt.input_value().startswith(before)
    no_exceptions(page)


def test_a_prompt_outside_the_vocabulary_is_explained(transformer_page):
    page = transformer_page
    prompt = page.get_by_role("textbox", name="Prompt")
    prompt.fill("Speak, speak — now!")
    prompt.press("Control+Enter")
    expect(page.get_by_text(re.compile(r"character\(s\) outside the model's vocabulary: .*'—'"))).to_be_visible(timeout=TIMEOUT)
    no_exceptions(page)
    screenshot(page, "inside_the_transformer_bad_prompt")


def test_the_toy_prints_every_number(transformer_page):
    page = transformer_page
    page.get_by_role("combobox", name="Model").click()
    page.get_by_role("option", name="The toy").click()
    bars = chart(page, "The next word after position 2 'at'")
    expect(bars.locator(".js-plotly-plot")).to_be_visible(timeout=TIMEOUT)
    expect(bars).to_contain_text("Westwood")
    expect(chart(page, "W_V (4×4)").first).to_be_visible(timeout=TIMEOUT)
    no_exceptions(page)
    screenshot(page, "inside_the_transformer_toy")
