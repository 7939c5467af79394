"""A pickle given to `sample --checkpoint` of either CLI, as weights, as a card or as a path, is never
unpickled: the marker its __reduce__ would create never appears, and one line comes out with status 2."""

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from engine.ddpm.__main__ import main as ddpm_main
from engine.gpt.__main__ import main as gpt_main
from tests import torch_threads
from tests.checkpoint_labs import ddpm_lab, gpt_lab
from tests.hostile_files import Payload

ROOT = Path(__file__).resolve().parents[2]
CLIS = {"gpt": (gpt_main, gpt_lab, "model"), "ddpm": (ddpm_main, ddpm_lab, "last")}
REQUIRED = {"gpt": [], "ddpm": ["--out", "samples.png"]}  # what else `sample` needs, so that only the checkpoint is wrong


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """For each CLI, three checkpoints holding the same pickle: {cli: {form: the --checkpoint argument}}, and the marker."""
    root = tmp_path_factory.mktemp("pickles")
    marker = root / "unpickled"
    payload = pickle.dumps(Payload(marker))
    forms = {}
    with torch_threads.one_torch_thread():
        for cli, (_, make_lab, name) in CLIS.items():
            real = root / cli / "real"
            make_lab().save(real, 1)
            card = json.loads((real / f"{name}.json").read_text())
            as_weights, as_card = root / cli / "as_weights", root / cli / "as_card"
            as_weights.mkdir()
            as_card.mkdir()
            (as_weights / f"{name}.safetensors").write_bytes(payload)
            (as_weights / f"{name}.json").write_text(json.dumps({**card, "weights_sha256": hashlib.sha256(payload).hexdigest()}))
            (as_card / f"{name}.safetensors").write_bytes((real / f"{name}.safetensors").read_bytes())
            (as_card / f"{name}.json").write_bytes(payload)
            (root / cli / "model.pt").write_bytes(payload)
            forms[cli] = {
                "weights": as_weights / f"{name}.safetensors",
                "card": as_card,
                "pickle file": root / cli / "model.pt",
            }
    return forms, marker


@pytest.mark.parametrize("cli", list(CLIS))
@pytest.mark.parametrize("form", ["weights", "card", "pickle file"])
def test_a_pickle_as_checkpoint_is_one_line_and_status_2(hostile, capsys, monkeypatch, tmp_path, cli, form):
    forms, marker = hostile
    monkeypatch.chdir(tmp_path)
    with torch_threads.one_torch_thread():
        status = CLIS[cli][0](["sample", "--checkpoint", str(forms[cli][form]), *REQUIRED[cli]])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and not marker.exists()


@pytest.mark.parametrize("cli", list(CLIS))
def test_the_command_itself_exits_2_without_unpickling(hostile, tmp_path, cli):
    forms, marker = hostile
    done = subprocess.run([sys.executable, "-m", f"engine.{cli}", "sample", "--checkpoint", str(forms[cli]["weights"]), *REQUIRED[cli]],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "not a valid safetensors file" in done.stderr and not marker.exists()
