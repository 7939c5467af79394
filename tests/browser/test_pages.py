import re

from playwright.sync_api import expect

from tests.browser.conftest import screenshot

TIMEOUT = 30_000


def no_exceptions(page):
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def test_home_renders_with_each_lab(page):
    page.goto("/")
    expect(page.get_by_text("Deep Learning Lab").first).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_role("heading", name="Sparse autoencoder")).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text("Device:")).to_be_visible()
    for lab in ("Open the sparse autoencoder lab", "Open the Shakespeare GPT lab", "Open Inside the transformer", "Open the diffusion lab"):
        expect(page.get_by_role("link", name=lab)).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text("Drawn from pure noise by the shipped model")).to_be_visible(timeout=TIMEOUT)
    expect(page.locator('[data-testid="stCode"]').last).to_contain_text("unembed", timeout=TIMEOUT)
    page.wait_for_function("() => [...document.images].every(image => image.complete && image.naturalWidth > 0)", timeout=TIMEOUT)
    no_exceptions(page)
    screenshot(page, "home")


def iteration(page) -> int:
    text = page.get_by_text(re.compile(r"iteration [\d,]+ of 2,000")).first.inner_text()
    return int(re.search(r"iteration ([\d,]+) of", text).group(1).replace(",", ""))


def test_sparse_autoencoder_trains_live_and_stops(page):
    page.goto("/sparse_autoencoder")
    expect(page.get_by_text("Results — the shipped checkpoint")).to_be_visible(timeout=TIMEOUT)
    expect(page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first).to_be_visible(timeout=TIMEOUT)
    no_exceptions(page)
    screenshot(page, "sparse_autoencoder")

    page.get_by_text("Ten photographs shipped with scikit-image").click()
    for label, value in (("Hidden units", "100"), ("Patches", "20000"), ("L-BFGS iterations", "2000")):
        field = page.get_by_label(label, exact=True)
        field.fill(value)
        field.press("Enter")
        expect(field).to_have_value(value, timeout=TIMEOUT)
    expect(page.get_by_text("100 of the 20,000 normalised patches")).to_be_visible(timeout=TIMEOUT)
    page.get_by_role("button", name="Train", exact=True).click()

    live_curve = page.locator('[data-testid="stImage"]', has_text="Total cost and its three terms").locator("img")
    expect(live_curve).to_be_visible(timeout=TIMEOUT)
    first, first_curve = iteration(page), live_curve.get_attribute("src")
    page.wait_for_timeout(2500)
    expect(page.get_by_text(re.compile(r"iteration [\d,]+ of 2,000"))).not_to_have_text(re.compile(rf"iteration {first:,} of"), timeout=TIMEOUT)
    assert iteration(page) > first
    assert live_curve.get_attribute("src") != first_curve  # the curve was redrawn with the new iterations
    expect(page.get_by_role("progressbar")).to_be_visible()
    screenshot(page, "sparse_autoencoder_training")

    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_text("Results — your run")).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text("(stopped early)", exact=False)).to_be_visible()
    no_exceptions(page)
    screenshot(page, "sparse_autoencoder_stopped")


def test_an_upload_that_is_not_an_image_is_explained(page, tmp_path):
    fake = tmp_path / "holiday.png"
    fake.write_text("this is a shopping list, not a photograph")
    page.goto("/sparse_autoencoder")
    page.get_by_text("Your own images").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(fake))
    expect(page.get_by_text("holiday.png is not an image that can be read")).to_be_visible(timeout=TIMEOUT)
    no_exceptions(page)
    screenshot(page, "sparse_autoencoder_bad_upload")
