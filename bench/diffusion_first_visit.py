"""How soon does a first visit to the diffusion lab show the shipped model's player? Target: within 3 s.

    DLLAB_DATA_DIR=../shared/data python -m bench.diffusion_first_visit [--repeats 3]

Each repeat starts a fresh server (nothing cached) twice. On the first, one visitor opens the home page (as
on a Space that is up), then a new visitor opens /diffusion. On the second, /diffusion is the very first page
the server draws (its Python imports included). Each is timed from the navigation until the player's Play
button is on screen: the digits come from the recording kept beside the checkpoint (`python -m engine.ddpm record`). The baseline, in the same page right after: pressing Generate
for another seed, which draws the same sixteen digits' 50 steps live, as every first visit did before the
recording. Prints both, their ratio, and the spread; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from bench.machine import describe_machine  # noqa: E402
from tests.browser.server import CHROMIUM_ARGS, chromium_executable, serve_app  # noqa: E402

PLAYER = '[data-testid="stIFrame"]'  # the player's own small page, with its Play button


def time_to_player(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    started = time.perf_counter()
    page.goto(f"{url}/diffusion")
    expect(page.frame_locator(PLAYER).first.locator("#play")).to_be_visible(timeout=120_000)
    return page, time.perf_counter() - started


def after_home(browser, url: str) -> float:
    """A fresh server whose home page one visitor has opened (as a Space's is), then a new visitor's first diffusion page."""
    home = browser.new_page()
    home.goto(url)
    expect(home.get_by_role("heading").first).to_be_visible(timeout=120_000)
    home.wait_for_timeout(8000)  # the server's background imports after its first page
    home.close()
    page, seconds = time_to_player(browser, url)
    page.close()
    return seconds


def one_visit(browser, url: str) -> tuple[float, float]:
    page, first = time_to_player(browser, url)
    seed = page.get_by_role("spinbutton", name="Seed").first
    seed.fill("7")
    seed.press("Enter")
    started = time.perf_counter()
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_text("seed 7, from the shipped checkpoint")).to_be_visible(timeout=120_000)
    live = time.perf_counter() - started
    page.close()
    return first, live


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(describe_machine())
    firsts, lives, warm = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        for repeat in range(args.repeats):
            with tempfile.TemporaryDirectory() as runs, serve_app(env={"DLLAB_RUNS_DIR": runs}) as url:
                warm.append(after_home(browser, url))
            with tempfile.TemporaryDirectory() as runs, serve_app(env={"DLLAB_RUNS_DIR": runs}) as url:
                first, live = one_visit(browser, url)
            firsts.append(first)
            lives.append(live)
            print(f"repeat {repeat + 1}: server just started: first visit to the player {first:.2f} s; drawing live instead {live:.2f} s "
                  f"(ratio {first / live:.2f}); after the home page: {warm[-1]:.2f} s")
        browser.close()
    ratios = [f / lv for f, lv in zip(firsts, lives)]
    print(f"first visit after the home page: median {statistics.median(warm):.2f} s (min {min(warm):.2f}, max {max(warm):.2f}); target 3 s")
    print(f"first visit to a server just started: median {statistics.median(firsts):.2f} s (min {min(firsts):.2f}, max {max(firsts):.2f}); target 3 s")
    print(f"drawn live: median {statistics.median(lives):.2f} s (min {min(lives):.2f}, max {max(lives):.2f})")
    print(f"ratio first visit / drawn live: median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
