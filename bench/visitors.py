"""Many visitors press Train at once on one public server: is anyone refused, how long do they wait, does the home page stay quick?

    python -m bench.visitors [--visitors 8]

One server under `python serve.py` in public mode (DLLAB_PUBLIC=1, its own runs folder, DLLAB_MAX_JOBS
as this shell sets it, default 2) on this machine's cores. Each visitor is a browser context of its
own (a separate Streamlit session with its own `?visitor=` token) on the sparse autoencoder page,
with the builtin images (scikit-image's photographs: no download) and UFLDL's settings: a run of a
few seconds. All press Train one after another from this thread, within a second or so. A script
in each page notes, as the page changes, when it first showed the job waiting, training and
finished; so the queue wait is from the press to the page's first "Training" (or its result, for
a job that went by between two redraws). Meanwhile a separate context loads the home page again and
again until every job has ended (and three times before, with nothing training): each load is timed from `goto` to the four cards drawn with their
pictures. The server's memory (its process and children, resident) is sampled every 0.2 s
throughout, and its log is searched for "Traceback" and "Error" lines at the end.

The browsers run on the same cores as the server, which a real visitor's would not: their CPU time
is printed beside the server's, so the figures can be read with that in mind.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench.machine import describe_machine
from tests.browser.server import CHROMIUM_ARGS, ROOT, chromium_executable, serve_app

TIMEOUT_MS = 120_000
CARD_LINKS = ("Open the sparse autoencoder lab", "Open the Shakespeare GPT lab", "Open Inside the transformer", "Open the diffusion lab")
HOME_TARGET_S, MEMORY_TARGET_GB = 5.0, 3.0

# Notes the first moment (Date.now(), ms) the page showed each stage of its job, and any error.
WATCH_JOB = """() => {
    window.__marks = {};
    const note = (name) => { if (!(name in window.__marks)) window.__marks[name] = Date.now(); };
    const look = () => {
        for (const strong of document.querySelectorAll('[data-testid="stMarkdownContainer"] strong')) {
            const text = strong.textContent;
            if (text.startsWith('Waiting for a free slot')) note('waiting');
            else if (text === 'Training' || text === 'Stopping') note('training');
            else if (text === 'Finished' || text.startsWith('Stopped') || text === 'Failed' || text.startsWith('Cancelled')) note('ended');
        }
        if (document.querySelector('[data-testid="stException"], [data-testid="stAlertContentError"]')) note('error');
    };
    new MutationObserver(look).observe(document.body, {childList: true, subtree: true, characterData: true});
    look();
}"""


def process_tree(root: int) -> list[int]:
    """`root` and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                total += next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total


def cpu_seconds(pids: list[int]) -> float:
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError):
            pass
    return total


def chromium_pids() -> list[int]:
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as command:
                if b"chromium" in command.read().split(b"\0")[0]:
                    pids.append(int(entry))
        except OSError:
            pass
    return pids


def server_pid(port: int) -> int:
    """The server process (serve.py) this script started on `port`."""
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as command:
                argv = command.read().split(b"\0")
        except OSError:
            continue
        if b"serve.py" in argv and str(port).encode() in argv and b"--server.port" in argv:
            return int(entry)
    raise RuntimeError(f"no server process on port {port}")


class MemorySampler(threading.Thread):
    """The peak resident memory of a process and its children, sampled every `every` seconds."""

    def __init__(self, pid: int, every: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak = pid, every, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, rss_bytes(process_tree(self.pid)))
            self._stop_event.wait(self.every)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def percentiles(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):.1f} s, p95 {p95:.1f} s, max {ordered[-1]:.1f} s (n={len(ordered)})"


def load_home(page, url: str) -> float:
    """Seconds from goto to the home page's four cards drawn, their pictures loaded."""
    started = time.monotonic()
    page.goto(url)
    for label in CARD_LINKS:
        page.get_by_role("link", name=label).wait_for(timeout=TIMEOUT_MS)
    page.get_by_text("Drawn from pure noise by the shipped model").wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function("() => [...document.images].every(image => image.complete && image.naturalWidth > 0)", timeout=TIMEOUT_MS)
    return time.monotonic() - started


def open_visitor(browser, url: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)  # a shared two-core machine can be slow to draw
    page = context.new_page()
    page.goto(f"{url}/sparse_autoencoder", wait_until="commit")
    return page


def ready_to_train(page) -> None:
    """The page drawn, the builtin images chosen and their patches shown, the script idle."""
    page.get_by_text("Results — the shipped checkpoint").wait_for(timeout=TIMEOUT_MS)
    page.get_by_text("Ten photographs shipped with scikit-image").click()
    page.get_by_text(re.compile(r"100 of the [\d,]+ normalised patches")).wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS)


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=8)
    args = parser.parse_args()
    max_jobs = os.environ.get("DLLAB_MAX_JOBS", "2 (default)")
    threads = os.environ.get("DLLAB_THREADS") or os.environ.get("CPU_CORES") or "torch's default"
    print(f"machine: {describe_machine()}")
    print(f"settings: {args.visitors} visitors, public mode, DLLAB_MAX_JOBS {max_jobs}, torch threads {threads}; each trains the "
          f"sparse autoencoder page's default run (UFLDL's settings, 400 L-BFGS iterations) on the builtin images")
    (ROOT / "artifacts").mkdir(exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="dllab-visitors-"))
    with serve_app(env={"DLLAB_PUBLIC": "1", "DLLAB_RUNS_DIR": str(runs)}) as url, sync_playwright() as playwright:
        port = int(url.rsplit(":", 1)[1])
        pid, log = server_pid(port), ROOT / "artifacts" / f"server-{port}.log"
        memory = MemorySampler(pid)
        memory.start()
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        home = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        home.set_default_timeout(TIMEOUT_MS)
        first_home = load_home(home, url)  # the first load draws the cards' pictures and caches them
        idle_loads = [load_home(home, url) for _ in range(3)]
        setup = time.monotonic()
        pages = [open_visitor(browser, url) for _ in range(args.visitors)]
        for page in pages:
            ready_to_train(page)
            page.evaluate(WATCH_JOB)
        print(f"first home page load {first_home:.1f} s; {args.visitors} visitors' pages ready in {time.monotonic() - setup:.1f} s")

        server_cpu, browser_cpu = cpu_seconds(process_tree(pid)), cpu_seconds(chromium_pids())
        pressed = []
        for page in pages:
            pressed.append(time.time())
            page.get_by_role("button", name="Train", exact=True).click(no_wait_after=True)
        print(f"all {args.visitors} pressed Train within {pressed[-1] - pressed[0]:.2f} s")

        home_loads, deadline = [], time.monotonic() + 600
        marks = [{}] * len(pages)
        while time.monotonic() < deadline:
            marks = [page.evaluate("() => window.__marks") for page in pages]
            if all("ended" in mark or "error" in mark for mark in marks):
                break
            home_loads.append(load_home(home, url))
        ended = time.time()
        server_cpu, browser_cpu = cpu_seconds(process_tree(pid)) - server_cpu, cpu_seconds(chromium_pids()) - browser_cpu
        seconds = [float(m.group(1)) for page in pages
                   if (m := re.search(r"L-BFGS iterations: ([\d.]+) s of optimisation", page.locator("body").inner_text()))]
        browser.close()
        peak = memory.stop()
    text = log.read_text(errors="replace") if log.exists() else ""
    error_lines = [line for line in text.splitlines() if "Traceback" in line or "Error" in line]

    refused = sum(1 for mark in marks if "error" in mark or not ({"waiting", "training", "ended"} & set(mark)))
    waits = [(mark.get("training", mark.get("ended")) / 1000 - press) for mark, press in zip(marks, pressed) if "training" in mark or "ended" in mark]
    queued = sum(1 for mark in marks if "waiting" in mark)
    last_end = max((mark["ended"] / 1000 for mark in marks if "ended" in mark), default=ended)
    print(f"refused: {refused} of {args.visitors} (a visitor who saw an error, or no job, after pressing Train; target 0)")
    print(f"queued first: {queued} of {args.visitors}; queue wait from Train to 'Training': {percentiles(waits)}")
    print(f"time until all ended: {last_end - pressed[0]:.1f} s from the first press"
          f" (each run's optimisation: {percentiles(seconds)})")
    print(f"home page load while they train: {percentiles(home_loads)}; target <= {HOME_TARGET_S:g} s"
          f" (with nothing training: {percentiles(idle_loads)})")
    print(f"server memory peak (process and children, resident): {peak / 2**30:.2f} GB; target <= {MEMORY_TARGET_GB:g} GB")
    print(f"CPU from the first press to the end: server {server_cpu:.1f} s, Chromium (all visitors and the home page) {browser_cpu:.1f} s")
    print(f"errors in the server log: {len(error_lines)} ('Traceback' / 'Error' lines; target 0){''.join(chr(10) + '  ' + line for line in error_lines[:5])}")


if __name__ == "__main__":
    main()
