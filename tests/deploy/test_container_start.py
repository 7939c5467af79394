"""The Dockerfile's own start command, run the way the container runs it, without docker (which cannot run here).

The committed tree (`git archive HEAD`: commit first, then run this) is unpacked where the image puts
it, $HOME/app, less what .dockerignore leaves out, and made read-only; HOME is otherwise empty and
belongs to uid 1000. The CMD is read from the Dockerfile (a free port in place of 7860) and run as
uid 1000 with only the Dockerfile's ENV, the container's /home/user, /tmp and /data standing for
folders in one test folder (/data empty and uid 1000's, as the image makes it), and SPACE_ID set as
a Space sets it (public mode). Then every page
opens in Chromium without an exception and without reaching past the server (the favicon included);
two short trainings run, and whatever uid 1000 wrote anywhere must lie under a folder the ENV names.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.server import free_port, stop, wait_healthy as server_wait_healthy
from tests.deploy.dockerfile import BASE_IMAGE_PATH, arguments_of, command_of, env_of

ROOT = Path(__file__).resolve().parents[2]
UID = 1000
TIMEOUT = 60_000  # a page's first visit draws from the shipped models; two shared cores can be slow
# Settings that name a folder the app may write in; the test's TMPDIR stands for the container's /tmp.
WRITABLE_SETTINGS = ("DLLAB_RUNS_DIR", "DLLAB_CACHE", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "TORCH_HOME",
                     "TORCHINDUCTOR_CACHE_DIR", "MPLCONFIGDIR", "TMPDIR")
PAGES = [("", "Deep Learning Lab"), ("sparse_autoencoder", "Sparse autoencoder"), ("shakespeare_gpt", "Shakespeare GPT"),
         ("inside_the_transformer", "Inside the transformer"), ("diffusion", "Diffusion: digits from noise")]

FIND_PACKAGES = (
    "import importlib.util\n"
    "for name in ('streamlit', 'torch', 'torchvision', 'scipy', 'skimage', 'plotly', 'safetensors', 'PIL', 'numpy'):\n"
    "    open(importlib.util.find_spec(name).origin).close()\n"
)


def why_not_possible() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "running the start command as uid 1000 needs root (setpriv changes user); CI runs as root"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    return None


pytestmark = pytest.mark.skipif(why_not_possible() is not None, reason=str(why_not_possible()))


def as_user(env: dict[str, str], shell_command: str) -> list[str]:
    return ["setpriv", "--reuid", str(UID), "--regid", str(UID), "--clear-groups",
            "env", "-i", *(f"{name}={value}" for name, value in env.items()), "sh", "-c", shell_command]


def closed_folders() -> list[Path]:
    """Folders above this Python that others may not enter (a pyenv install under /root, mode 700)."""
    places = {Path(sys.prefix), Path(sys.executable).resolve().parent, *(Path(p) for p in sys.path if p and Path(p).is_dir())}
    folders = {folder for place in places for folder in (place, *place.parents)}
    return sorted(folder for folder in folders if not folder.stat().st_mode & stat.S_IXOTH)


@pytest.fixture(scope="module")
def python_for_uid_1000():
    """Let uid 1000 reach this Python (adding only the right to pass through folders), and undo it afterwards."""
    changed = [(folder, folder.stat().st_mode) for folder in closed_folders()]
    for folder, mode in changed:
        folder.chmod(mode | stat.S_IXOTH)
    try:
        yield Path(sys.executable).resolve().parent
    finally:
        for folder, mode in changed:
            folder.chmod(stat.S_IMODE(mode))


def unpack_committed_tree(app: Path) -> None:
    """`git archive HEAD` into `app`, less what .dockerignore leaves out of the image, then read-only for everyone."""
    app.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(app)], input=archive, check=True)
    for line in (app / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if pattern and not pattern.startswith(("#", "!")):
            for path in list(app.glob(pattern.lstrip("/"))):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    subprocess.run(["chmod", "-R", "a-w", str(app)], check=True)


def container_env(top: Path, python_bin: Path) -> tuple[dict[str, str], list[Path]]:
    """The Dockerfile's ENV with its folders moved under `top`, and the folders the app may write in."""
    places = {"/home/user": top / "home", "/tmp": top / "tmp", "/data": top / "data"}

    def on_host(value: str) -> str:
        entries = []
        for entry in value.split(":"):
            for inside, outside in places.items():
                if entry == inside or entry.startswith(inside + "/"):
                    entry = str(outside) + entry[len(inside):]
                    break
            entries.append(entry)
        return ":".join(entries)

    env = {name: on_host(value) for name, value in env_of(top / "home" / "app" / "Dockerfile").items()}
    # The image's Python lives in /usr/local/bin; this machine's is elsewhere.
    env["PATH"] = env["PATH"].replace(BASE_IMAGE_PATH, f"{python_bin}:/usr/bin:/bin")
    env["TMPDIR"] = str(places["/tmp"])  # the container's /tmp, which Python's tempfile uses there
    env["DLLAB_OFFLINE"] = "1"  # nothing may be fetched, and nothing can be here
    env["SPACE_ID"] = "dllab/container-test"  # as a Space has it: public mode, each visitor their own runs
    env["OMP_NUM_THREADS"] = "1"  # two shared cores run the server, Chromium and the training
    allowed = [Path(entry) for name in WRITABLE_SETTINGS for entry in env[name].split(":")]
    return env, allowed


@pytest.fixture(scope="module")
def container(python_for_uid_1000):
    """The start command running as uid 1000; yields (url, the test folder, the folders it may write in, the mark)."""
    with tempfile.TemporaryDirectory(prefix="dllab-container-") as name:
        top = Path(name)
        top.chmod(0o755)  # uid 1000 passes through and can make nothing here
        home, tmp, data = top / "home", top / "tmp", top / "data"
        unpack_committed_tree(home / "app")
        for folder in (home, data):  # as the image has them: uid 1000's; /tmp is everyone's
            folder.mkdir(exist_ok=True)
            os.chown(folder, UID, UID)
        tmp.mkdir(mode=0o1777)
        tmp.chmod(0o1777)  # mkdir's mode passes through the umask
        env, allowed = container_env(top, python_for_uid_1000)

        # Found and opened, not imported: importing torch here would cost seconds the server pays again.
        check = subprocess.run(as_user(env, f"python -c {shlex.quote(FIND_PACKAGES)}"), cwd=home / "app", capture_output=True, text=True)
        assert check.returncode == 0, f"uid 1000 cannot read the app's packages under {sys.prefix}:\n{check.stderr[-2000:]}"

        dockerfile = home / "app" / "Dockerfile"
        exposed = arguments_of(dockerfile, "EXPOSE")[0].split("/")[0]
        port = free_port()
        command = [re.sub(rf"\b{exposed}\b", str(port), part) for part in command_of(dockerfile)]
        mark = top / "mark"
        mark.touch()
        time.sleep(0.05)  # so a file written at once is strictly newer than the mark
        log = open(top / "server.log", "wb")
        server = subprocess.Popen(as_user(env, "exec " + shlex.join(command)), cwd=home / "app", stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, server, top / "server.log")
            yield url, top, allowed, mark
        finally:
            stop(server)
            log.close()
            shutil.rmtree(top, ignore_errors=True)


def wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    """As the browser tests' server waits, failing the test with the end of the server's log."""
    try:
        server_wait_healthy(url, server, timeout, name="the start command")
    except RuntimeError as error:
        pytest.fail(f"{error}:\n{log.read_text()[-3000:]}")


def settled(page) -> None:
    expect(page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')).to_have_count(1, timeout=TIMEOUT)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def train_the_sparse_autoencoder(page) -> None:
    """Scikit-image's photographs, UFLDL's settings: a few seconds; nothing is kept on disk, nothing may be cached."""
    page.get_by_text("Ten photographs shipped with scikit-image").click()
    settled(page)
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_text("Results — your run")).to_be_visible(timeout=TIMEOUT)
    settled(page)


def train_a_tiny_gpt(page) -> None:
    """The tiny preset on pasted text: seconds, and a run folder written under DLLAB_RUNS_DIR."""
    page.get_by_text("Tiny (seconds, for trying things)").click()
    expect(page.get_by_label("Width · n_embd", exact=True)).to_have_value("32", timeout=TIMEOUT)
    page.get_by_text("Paste text").click()
    box = page.get_by_label("Your text")
    box.fill("the cat sat on the mat.\na dog ran to the log.\nwe sing of the spring!\n" * 20)
    box.press("Control+Enter")
    expect(page.get_by_text(re.compile(r"the pasted text: [\d,]+ characters"))).to_be_visible(timeout=TIMEOUT)
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.locator('[data-testid="stPlotlyChart"]', has_text="Loss of your run")).to_be_visible(timeout=TIMEOUT)
    settled(page)



def written_by_uid_1000(mark: Path) -> list[Path]:
    """Everything uid 1000 made or changed since `mark`; -xdev keeps find out of /proc, /sys and /dev, so /dev/shm is named."""
    found = subprocess.run(["find", "/", "/dev/shm", "-xdev", "-newer", str(mark), "-user", str(UID)],
                           capture_output=True, text=True)
    return [Path(line) for line in found.stdout.splitlines() if line]


@pytest.fixture
def visitor(container, browser):
    """A new visitor's page; afterwards, the test fails if the browser asked anything of another server."""
    url = container[0]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    outside = []  # a visitor's browser must need nothing but this server: not online, and not Google's font server
    context.on("request", lambda request: None if request.url.startswith((url, "data:", "blob:")) else outside.append(request.url))
    try:
        yield context.new_page()
    finally:
        context.close()
    assert not outside, f"the pages asked for things from other servers: {sorted(set(outside))[:10]}"


def open_page(page, url: str, path: str) -> None:
    page.goto(f"{url}/{path}")
    expect(page.get_by_role("heading", name=dict(PAGES)[path]).first).to_be_visible(timeout=TIMEOUT)
    settled(page)


def test_every_page_opens_without_an_exception_with_its_icon_from_the_app(container, visitor):
    url = container[0]
    for path, _ in PAGES:
        open_page(visitor, url, path)
    icon = visitor.evaluate("() => [...document.querySelectorAll('link[rel~=icon]')].map(link => link.href)")
    assert icon and all(href.startswith((url, "data:")) for href in icon), f"the favicon comes from elsewhere: {icon}"


def test_training_writes_only_where_the_settings_say(container, visitor):
    url, top, allowed, mark = container
    open_page(visitor, url, "sparse_autoencoder")
    train_the_sparse_autoencoder(visitor)
    open_page(visitor, url, "shakespeare_gpt")
    train_a_tiny_gpt(visitor)

    written = written_by_uid_1000(mark)  # since the server started: the page visits of the other test too
    assert any(path.name == "run.json" for path in written), f"the GPT run left no run.json; uid 1000 wrote: {written}"

    def permitted(path: Path) -> bool:
        return any(path == folder or folder in path.parents or path in folder.parents for folder in allowed)

    stray = [path for path in written if not permitted(path)]
    where = sorted({str(path.relative_to(top)) if top in path.parents else str(path) for path in written})
    print(f"\nuid 1000 wrote {len(written)} paths:\n  " + "\n  ".join(where[:60]))
    assert not stray, f"written outside the folders the Dockerfile's ENV names: {stray}"
