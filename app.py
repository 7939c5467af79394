"""Deep Learning Lab: the frame around the pages — navigation, page config and the sidebar.

Run with `python serve.py` (the container's command: the labs' modules imported before the first visitor) or `streamlit run app.py`.
"""

import threading
from pathlib import Path

# Imported whole before any page runs: with Streamlit's fast reruns, a rerun starts a new script thread while the
# old one may still be inside a first `import pandas` (st.dataframe's), and plotly, which looks pandas up in
# sys.modules, then reads the half-made module in the new thread ("module 'pandas' has no attribute 'Series'").
import pandas  # noqa: F401
import streamlit as st

from engine.core import settings
from engine.core.device import configure_threads, describe_device, pick_device
from engine.core.errors import LabError
from engine.core.jobs import board
from ui.visitor import visitor_token
from ui.warm_up import import_lab_modules

PAGES = [
    st.Page("lab_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("lab_pages/sparse_autoencoder.py", title="Sparse autoencoder", icon=":material/grid_on:", url_path="sparse_autoencoder"),
    st.Page("lab_pages/shakespeare_gpt.py", title="Shakespeare GPT", icon=":material/edit_note:", url_path="shakespeare_gpt"),
    st.Page("lab_pages/inside_the_transformer.py", title="Inside the transformer", icon=":material/account_tree:", url_path="inside_the_transformer"),
    st.Page("lab_pages/diffusion.py", title="Diffusion", icon=":material/blur_on:", url_path="diffusion"),
]


@st.cache_resource
def warm_up() -> threading.Thread:
    """Once per server, after its first page is drawn: the imports a lab's first visit would otherwise wait for
    (already done when the server was started by serve.py)."""
    thread = threading.Thread(target=import_lab_modules, name="warm-up", daemon=True)
    thread.start()
    return thread


@st.cache_resource
def device_description() -> str:
    try:
        configure_threads()
        return describe_device(pick_device())
    except LabError as error:
        return f"{error} Using the CPU."


def show_running(slot) -> None:
    """What the server is training. On a public server, how many and not whose: runs belong to their visitors."""
    running, waiting = board.running(), board.waiting()
    queue = f"; {len(waiting)} waiting for a slot" if waiting else ""
    if settings.public_mode():
        slot.caption(f"**Training now:** {len(running)} of {board.max_running} slots in use{queue}.")
    else:
        slot.caption("**Running now:** " + (", ".join(job.name for job in running) if running else "nothing") + queue)


def run() -> None:
    st.set_page_config(page_title="Deep Learning Lab", page_icon=str(Path(__file__).parent / "assets" / "icon.png"), layout="wide")
    page = st.navigation(PAGES)
    visitor_token()
    st.sidebar.caption(f"**Device:** {device_description()}")
    running_now = st.sidebar.empty()
    show_running(running_now)
    page.run()
    show_running(running_now)  # again after the page, so a job its Train button just started is listed
    warm_up()


run()
