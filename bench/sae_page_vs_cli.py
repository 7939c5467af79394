"""Is training from the page as fast as from the command line? UFLDL's defaults, both ways, alternating.

    DLLAB_DATA_DIR=../shared/data python -m bench.sae_page_vs_cli [--repeats 3]

The CLI side runs `python -m engine.sae train`; the page side starts the real app under
`streamlit run`, opens the page in Chromium, presses Train and watches the live panel until the
result appears. Both report the optimiser's own wall time (the `seconds` of the result), which the
page prints as "400 L-BFGS iterations in X s". The browser and server share the machine's cores
with the training, as they do for a person on a laptop.
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile

from bench.machine import describe_machine
from tests.browser.server import CHROMIUM_ARGS, chromium_executable, serve_app


def cli_seconds() -> float:
    with tempfile.TemporaryDirectory() as folder:
        out = subprocess.run([sys.executable, "-m", "engine.sae", "train", "--out", f"{folder}/sae"], capture_output=True, text=True, check=True).stdout
    return float(re.search(r"iterations, ([\d.]+) s", out).group(1))


def page_seconds(page, url: str) -> float:
    page.goto(f"{url}/sparse_autoencoder")
    page.get_by_role("button", name="Train", exact=True).click()
    done = page.get_by_text(re.compile(r"L-BFGS iterations in [\d.]+ s")).first
    page.get_by_text("Results — your run").wait_for(timeout=120_000)
    return float(re.search(r"in ([\d.]+) s", done.inner_text()).group(1))


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    cli, app = [], []
    with serve_app() as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page_seconds(page, url)  # warm up: the server's first run imports torch and caches the patches
        for _ in range(args.repeats):
            cli.append(cli_seconds())
            app.append(page_seconds(page, url))
        browser.close()
    cli_s, app_s = statistics.median(cli), statistics.median(app)
    print(f"CLI : {cli_s:.2f} s median   runs: {', '.join(f'{s:.2f}' for s in cli)}")
    print(f"page: {app_s:.2f} s median   runs: {', '.join(f'{s:.2f}' for s in app)}")
    print(f"page / CLI = {app_s / cli_s:.2f} (target <= 1.10)")


if __name__ == "__main__":
    main()
