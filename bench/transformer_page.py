"""Does Inside the transformer answer within a second for a 64-character prompt on the shipped model (CPU)?

    python -m bench.transformer_page [--repeats 5]        # needs checkpoints/gpt_shakespeare.*

Three figures, each the median of --repeats new prompts of 63-64 characters (a prompt the page has not traced
yet, so nothing comes from its cache):
1. the traced forward pass alone (engine.gpt.inspect.trace_prompt),
2. the page's whole script for that prompt under Streamlit's AppTest: trace, figures and tables,
3. in Chromium against the real app: from pressing Ctrl+Enter in the prompt box until the page has
   finished drawing (Streamlit's "running" indicator gone, the bars' title showing the new position).
Target: under 1 s for 3.
"""

import argparse
import statistics
import time

import torch

from bench.machine import describe_machine
from engine.gpt.checkpoint import load_model
from engine.gpt.data import load_shakespeare
from engine.gpt.inspect import trace_prompt
from engine.gpt.checkpoint import SHIPPED_CHECKPOINT
from tests.browser.server import CHROMIUM_ARGS, ROOT, chromium_executable, serve_app

PROMPT_CHARS = 64


def prompts(count: int) -> list[str]:
    """Stretches of tiny Shakespeare from places spread over the text, 64 and 63 characters long in turn, so
    that each prompt moves the predicted position and the browser can tell the new answer from the old."""
    text = load_shakespeare()
    step = len(text) // (count + 1)
    return [text[step * (i + 1) : step * (i + 1) + PROMPT_CHARS - i % 2] for i in range(count)]


def trace_seconds(model, tokenizer, prompt: str) -> float:
    started = time.perf_counter()
    trace_prompt(model, tokenizer, prompt)
    return time.perf_counter() - started


def page_script_seconds(at, prompt: str) -> float:
    at.text_area(key="itt_prompt").set_value(prompt)
    started = time.perf_counter()
    at.run()
    assert not at.exception and not at.error, (at.exception, at.error)
    return time.perf_counter() - started


def browser_seconds(page, prompt: str) -> float:
    box = page.get_by_role("textbox", name="Prompt")
    box.fill(prompt)
    started = time.perf_counter()
    box.press("Control+Enter")
    page.wait_for_function(
        """(position) => !document.querySelector('[data-testid="stStatusWidget"]')
           && [...document.querySelectorAll('.js-plotly-plot .gtitle')].some(title => title.textContent.includes('after position ' + position))""",
        arg=str(len(prompt) - 1), timeout=60_000, polling=20)
    return time.perf_counter() - started


def main() -> None:
    from playwright.sync_api import sync_playwright
    from streamlit.testing.v1 import AppTest

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    print(f"machine: {describe_machine()}; torch {torch.get_num_threads()} threads")
    model, tokenizer, _ = load_model(SHIPPED_CHECKPOINT)
    print(f"model: {SHIPPED_CHECKPOINT}, {model.get_num_params() / 1e6:.2f}M parameters, context {model.config.block_size}")
    lines = prompts(3 * args.repeats + 1)

    trace_prompt(model, tokenizer, lines[0])  # warm-up
    traced = [trace_seconds(model, tokenizer, prompt) for prompt in lines[1 : args.repeats + 1]]

    at = AppTest.from_file(str(ROOT / "lab_pages" / "inside_the_transformer.py"), default_timeout=60)
    at.run()
    script = [page_script_seconds(at, prompt) for prompt in lines[args.repeats + 1 : 2 * args.repeats + 1]]

    with serve_app() as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/inside_the_transformer")
        page.get_by_role("heading", name="Inside the transformer").wait_for(timeout=60_000)
        page.wait_for_function("""() => !document.querySelector('[data-testid="stStatusWidget"]')""", timeout=60_000)
        browser_seconds(page, lines[0])  # warm-up: the server's first run loads the model
        shown = [browser_seconds(page, prompt) for prompt in lines[2 * args.repeats + 1 :]]
        browser.close()

    for label, runs in (("traced forward pass", traced), ("page script (AppTest)", script), ("page in Chromium, same cores", shown)):
        print(f"{label:29s} {statistics.median(runs) * 1000:6.0f} ms median   runs: {', '.join(f'{s * 1000:.0f}' for s in runs)}")
    print("target: the page in under 1000 ms")


if __name__ == "__main__":
    main()
