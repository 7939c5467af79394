"""Is training from the page as fast as from the command line? UFLDL's defaults, three ways, alternating.

    DLLAB_DATA_DIR=../shared/data python -m bench.sae_page_vs_cli [--repeats 3]

1. CLI: `python -m engine.sae train`.
2. Page, server side: the page script under Streamlit's AppTest, Train pressed, then the page rerun
   once a second until the job ends, as the live panel's fragment does. This is the cost the page's
   own code adds, and what a deployed server pays (the browser runs on the visitor's machine).
3. Page in Chromium on this machine: the real app under `streamlit run`, Train pressed in the
   browser, the live panel watched until the result appears. Here the browser's rendering shares
   the machine's cores with the training.

All three report the optimiser's own wall time (the result's `seconds`).
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile

from bench.machine import describe_machine
from tests.browser.server import CHROMIUM_ARGS, ROOT, chromium_executable, serve_app


def cli_seconds() -> float:
    with tempfile.TemporaryDirectory() as folder:
        out = subprocess.run([sys.executable, "-m", "engine.sae", "train", "--out", f"{folder}/sae"], capture_output=True, text=True, check=True).stdout
    return float(re.search(r"iterations, ([\d.]+) s", out).group(1))


def page_seconds(page, url: str) -> float:
    page.goto(f"{url}/sparse_autoencoder")
    # as a person does, press Train once the page has drawn (the shipped checkpoint's charts and images)
    page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first.wait_for(timeout=60_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Train", exact=True).click()
    done = page.get_by_text(re.compile(r"L-BFGS iterations in [\d.]+ s")).first
    page.get_by_text("Results — your run").wait_for(timeout=120_000)
    return float(re.search(r"in ([\d.]+) s", done.inner_text()).group(1))


def page_server_side_seconds() -> float:
    import time

    from streamlit.testing.v1 import AppTest

    from engine.core.jobs import board

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("lab_pages/sparse_autoencoder.py").run()
    at.button(key="sae_train").click().run()
    job = board.get(at.session_state["sae_job_id"])
    while not job.state.finished:
        time.sleep(1.0)
        at.run()
    return job.view().result.seconds


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    cli, server, app = [], [], []
    with serve_app() as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page_seconds(page, url)  # warm up: the server's first run imports torch and caches the patches
        page_server_side_seconds()
        for _ in range(args.repeats):
            cli.append(cli_seconds())
            server.append(page_server_side_seconds())
            app.append(page_seconds(page, url))
        browser.close()
    cli_s = statistics.median(cli)
    for label, runs in (("CLI", cli), ("page, server side", server), ("page in Chromium, same cores", app)):
        print(f"{label:29s} {statistics.median(runs):5.2f} s median ({statistics.median(runs) / cli_s:.2f} x CLI)   runs: {', '.join(f'{s:.2f}' for s in runs)}")
    print("target: page <= 1.10 x CLI")


if __name__ == "__main__":
    main()
