"""Is training from the page as fast as from the command line? UFLDL's defaults, CLI and page in turn.

    DLLAB_DATA_DIR=../shared/data python -m bench.sae_page_vs_cli [--repeats 8]

1. CLI: `python -m engine.sae train`.
2. Page in Chromium on this machine: the real app under `python serve.py`, Train pressed in the
   browser once the page has drawn, as a person does, and the live panel watched until the result
   appears. The browser's rendering and the server share the machine's two cores with the training.
3. Page, server side: the page script under Streamlit's AppTest, Train pressed, then nothing until
   the job ends. This is what the page's own code costs without a browser.

Every figure is the optimiser's own wall time (the result's `seconds`; the page's is read from
the card it offers for download, which keeps 0.01 s). These machines are shared and their speed
drifts from minute to minute, so the runs alternate and the ratio printed is the median of each
page run against the CLI run just before it, beside the ratio of the medians.
The browser's CPU time while the page trained is printed too: it is what the page takes from the
training on a machine with no core to spare.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import describe_machine
from tests.browser.server import CHROMIUM_ARGS, ROOT, chromium_executable, serve_app


def cli_seconds() -> float:
    with tempfile.TemporaryDirectory() as folder:
        out = subprocess.run([sys.executable, "-m", "engine.sae", "train", "--out", f"{folder}/sae"], capture_output=True, text=True, check=True).stdout
    return float(re.search(r"iterations, ([\d.]+) s", out).group(1))


def chromium_cpu_seconds() -> float:
    """User + system CPU time of every Chromium process so far."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as command:
                if b"chromium" not in command.read():
                    continue
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def page_seconds(page, url: str) -> tuple[float, float]:
    """(training seconds, Chromium CPU seconds from the click to the result)."""
    page.goto(f"{url}/sparse_autoencoder")
    page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first.wait_for(timeout=60_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
    page.wait_for_timeout(1000)
    browser_before = chromium_cpu_seconds()
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("Results — your run").wait_for(timeout=120_000)
    browser_cpu = chromium_cpu_seconds() - browser_before
    with page.expect_download() as download:  # the card has the time to 0.01 s; the page's caption rounds to 0.1 s
        page.get_by_role("button", name="Card (.json)").click()
    card = json.loads(Path(download.value.path()).read_text())
    return card["metrics"]["seconds"], browser_cpu


def page_server_side_seconds() -> float:
    from streamlit.testing.v1 import AppTest

    from engine.core.jobs import board

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("lab_pages/sparse_autoencoder.py").run()
    at.button(key="sae_train").click().run()
    job = board.get(at.session_state["sae_job_id"])
    while not job.state.finished:
        time.sleep(0.05)
    return job.view().result.seconds


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    cli, server, app, browser_cpu = [], [], [], []
    with serve_app() as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page_seconds(page, url)  # warm up: the server's first run imports torch and caches the patches
        page_server_side_seconds()
        for _ in range(args.repeats):
            cli.append(cli_seconds())
            seconds, cpu = page_seconds(page, url)
            app.append(seconds)
            browser_cpu.append(cpu)
            server.append(page_server_side_seconds())
        browser.close()
    median = statistics.median
    cli_s = median(cli)
    print(f"{'CLI':29s} {cli_s:5.2f} s median   runs: {', '.join(f'{s:.2f}' for s in cli)}")
    for label, runs in (("page in Chromium, same cores", app), ("page, server side", server)):
        paired = median(page_s / cli_run for page_s, cli_run in zip(runs, cli))
        print(f"{label:29s} {median(runs):5.2f} s median, {paired:.2f} x the CLI run before it (medians {median(runs) / cli_s:.2f} x)   runs: {', '.join(f'{s:.2f}' for s in runs)}")
    print(f"Chromium's CPU from Train to the result: {median(browser_cpu):.2f} s median (runs {', '.join(f'{s:.2f}' for s in browser_cpu)})")
    print("target: page <= 1.10 x CLI")


if __name__ == "__main__":
    main()
