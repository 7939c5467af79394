"""The diffusion page in Chromium: the reverse-diffusion player plays frames in the browser, and t scrubs the forward process.

The app gets its own server, with DLLAB_RUNS_DIR in a temporary folder and one torch thread; the page opens on
the shipped checkpoint, straight at its address, as a shared link does.
"""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import open_at, screenshot, serve_lab

TIMEOUT = 30_000


@pytest.fixture(scope="module")
def diffusion_url(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    with serve_lab(runs) as url:
        yield url


@pytest.fixture
def diffusion_page(own_page, diffusion_url):
    page = open_at(own_page, f"{diffusion_url}/diffusion", "Diffusion: digits from noise")
    expect(player(page).locator("#play")).to_be_visible(timeout=60_000)
    return page


PLAYER = '[data-testid="stIFrame"]'


def player(page):
    """The player's own page, inside its iframe."""
    return page.frame_locator(PLAYER).first


def no_exceptions(page):
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def player_state(page) -> dict:
    """The player's title and its slider's position, as the page in its iframe shows them."""
    frame = page.locator(PLAYER).first.element_handle().content_frame()
    return frame.evaluate(
        """() => {
            const slider = document.getElementById('step');
            return {title: document.getElementById('title').textContent, active: Number(slider.value), frames: Number(slider.max) + 1};
        }"""
    )


def test_the_player_plays_the_reverse_process_in_the_browser(diffusion_page):
    page = diffusion_page
    no_exceptions(page)
    start = player_state(page)
    expect(page.get_by_text("drawn by python -m engine.ddpm record when this lab was built")).to_be_visible()  # the kept recording: nothing drawn
    assert start["frames"] == 50 and start["active"] == 0 and "step 1 of 50 · t = 1,000" in start["title"]
    screenshot(page, "diffusion")
    player(page).get_by_role("button", name="Play").click()
    page.wait_for_timeout(1500)
    playing = player_state(page)
    assert playing["active"] > 0 and playing["title"] != start["title"]  # frames advance without a rerun
    page.wait_for_timeout(1000)
    assert player_state(page)["active"] > playing["active"]
    player(page).get_by_role("button", name="Pause").click()
    page.wait_for_timeout(500)
    paused = player_state(page)
    page.wait_for_timeout(1000)
    assert player_state(page)["active"] == paused["active"]  # paused stays put
    no_exceptions(page)
    page.locator(PLAYER).first.scroll_into_view_if_needed()
    screenshot(page, "diffusion_playing")


def test_the_player_s_digits_download_as_an_animated_gif_and_a_png_grid(diffusion_page):
    page = diffusion_page
    for button, name, signature in (("GIF", "denoising.gif", b"GIF89a"), ("Grid (PNG)", "samples.png", b"\x89PNG")):
        with page.expect_download(timeout=TIMEOUT) as download:
            page.get_by_role("button", name=button).click()
        assert download.value.suggested_filename == name
        content = open(download.value.path(), "rb").read()
        assert content.startswith(signature), content[:16]
    no_exceptions(page)


@pytest.mark.data  # the forward process needs a real digit
def test_scrubbing_t_updates_the_noisy_digit_and_the_marker(diffusion_page):
    page = diffusion_page
    slider = page.get_by_role("slider", name=re.compile("Timestep t"))
    slider.focus()
    for _ in range(5):
        slider.press("ArrowRight")
    expect(page.get_by_text(re.compile(r"x₀ \(a \d\) and x_t at t = 255"))).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text("t = 255: ᾱ = ")).to_be_visible(timeout=TIMEOUT)
    no_exceptions(page)


@pytest.mark.data  # training needs MNIST
def test_a_short_run_shows_its_loss_and_samples_live_and_stops(diffusion_page):
    page = diffusion_page
    expect(page.get_by_text("Time to train")).to_be_visible(timeout=TIMEOUT)  # measured before pressing Train
    # the first run goes on below the estimate (and the server's warm-up after it): a click in it is lost in the rerun
    expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=TIMEOUT)
    page.get_by_text("Tiny (a few hundred digits, for trying things)").click()
    expect(page.get_by_label("Width · width", exact=True)).to_have_value("8", timeout=TIMEOUT)
    epochs = page.get_by_label("Epochs · epochs", exact=True)
    epochs.fill("500")
    epochs.press("Enter")
    expect(epochs).to_have_value("500", timeout=TIMEOUT)
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.locator('[data-testid="stPlotlyChart"]', has_text="Loss while training")).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text(re.compile(r"Samples after epoch \d+"))).to_be_visible(timeout=TIMEOUT)
    page.wait_for_timeout(2000)
    no_exceptions(page)
    screenshot(page, "diffusion_training")
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_text(re.compile(r"stopped at step [\d,]+"))).to_be_visible(timeout=TIMEOUT)
    expect(page.locator('[data-testid="stPlotlyChart"]', has_text="Loss of your run")).to_be_visible(timeout=TIMEOUT)
    no_exceptions(page)
    screenshot(page, "diffusion_stopped")
