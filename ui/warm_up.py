"""The labs' heavy modules (torch, plotly, the engines), imported once per server so no visitor waits for them.

`python serve.py` imports them before the server takes its first visitor: seconds of Python on two cores that a
fresh server's first visitor otherwise waited for on the page they opened. Under a plain `streamlit run app.py`,
app.py imports them in the background after the server's first page.
"""

from __future__ import annotations

import importlib

LAB_MODULES = ("pandas", "plotly.graph_objects", "engine.ddpm.sample", "engine.ddpm.quality", "engine.ddpm.recording", "engine.ddpm.train",
               "ui.diffusion", "engine.gpt.train", "engine.gpt.inspect", "engine.sae.train", "ui.figures", "ui.transformer")


def import_lab_modules() -> None:
    for name in LAB_MODULES:
        importlib.import_module(name)
