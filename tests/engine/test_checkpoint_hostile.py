"""Checkpoints from anyone: hostile cards, lying or broken weights, special files and pickles give a CheckpointError.

Hypothesis puts any JSON value into any field of a GPT, DDPM and SAE card, and feeds random,
truncated and lying safetensors files; only a LabError may come out (or a load, where the field is
one loading does not use). A card that lies about the model's size is refused before anything is
allocated, measured in a fresh process.
"""

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.checkpoints import (
    MAX_CARD_BYTES, card_path, checkpoint_bytes, load_checkpoint, load_checkpoint_bytes, read_card, save_checkpoint,
)
from engine.core.errors import CheckpointError, LabError
from tests import torch_threads
from tests.checkpoint_labs import ddpm_lab, gpt_lab, sae_lab
from tests.hostile_files import Payload

REPO = Path(__file__).resolve().parents[2]
FUZZ = settings(max_examples=80, deadline=5000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=8,
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    with torch_threads.one_torch_thread():
        yield


def gpt_loads(folder: Path) -> None:
    from engine.gpt.checkpoint import load_model, restore_training
    from engine.gpt.data import prepare_text
    from engine.gpt.model import GPT

    loaded, _, _ = load_model(folder)
    model = GPT(loaded.config)
    restore_training(folder, model, torch.optim.AdamW(model.parameters()), prepare_text("the cat sat on the mat. " * 20, "rhymes"))


def ddpm_loads(folder: Path) -> None:
    from engine.ddpm.checkpoint import load_model, restore_training
    from engine.ddpm.unet import UNet

    ema, schedule, card = load_model(folder)
    model = UNet(ema.config)
    restore_training(folder, model, UNet(ema.config), torch.optim.Adam(model.parameters()), schedule.config)


def sae_loads(folder: Path) -> None:
    from engine.sae.checkpoint import load_result

    result, _ = load_result(folder / "sae")
    result.reconstructions()  # what the page draws first: it must work with what was loaded


LABS = {
    "gpt": (gpt_lab, gpt_loads, "model.json"),
    "ddpm": (ddpm_lab, ddpm_loads, "last.json"),
    "sae": (sae_lab, sae_loads, "sae.json"),
}
FIELDS_ALWAYS_CHECKED = ("format_version", "kind", "tensors", "weights_sha256")


@pytest.fixture(scope="module")
def saved_labs(tmp_path_factory):
    folders = {}
    with torch_threads.one_torch_thread():
        for name, (make_lab, _, _) in LABS.items():
            folders[name] = tmp_path_factory.mktemp(name)
            make_lab().save(folders[name], 1)
    return folders


@pytest.mark.parametrize("lab", list(LABS))
def test_the_saved_checkpoints_load_before_they_are_spoiled(saved_labs, lab):
    LABS[lab][1](saved_labs[lab])


@pytest.mark.parametrize("lab", list(LABS))
def test_any_json_value_in_any_card_field_gives_a_lab_error_or_a_load(saved_labs, lab):
    folder, loads, card_name = saved_labs[lab], LABS[lab][1], LABS[lab][2]
    original_text = (folder / card_name).read_text()
    original = json.loads(original_text)

    @FUZZ
    @given(field=st.sampled_from(sorted(original)), value=json_values)
    def spoil(field, value):
        (folder / card_name).write_text(json.dumps({**original, field: value}))
        changed = json.dumps(value, sort_keys=True) != json.dumps(original[field], sort_keys=True)
        try:
            loads(folder)
        except LabError:
            return
        finally:
            (folder / card_name).write_text(original_text)
        assert not (changed and field in FIELDS_ALWAYS_CHECKED), f"a card with {field} = {value!r} was believed"

    spoil()


FIELDS_READ = {  # the fields a lab's loading reads, beside those every card has
    "gpt": ["model", "tokenizer", "metrics", "optimizer_step"],
    "ddpm": ["model", "schedule", "metrics", "optimizer_step"],
    "sae": ["config", "metrics", "history"],
}


@pytest.mark.parametrize("lab, field", [(lab, field) for lab, fields in FIELDS_READ.items() for field in fields])
@pytest.mark.parametrize("value", ["abc", [1, 2], {"n_layer": "4"}, 1.5, None, True])
def test_each_field_a_load_reads_refuses_a_wrong_type(saved_labs, lab, field, value):
    folder, loads, card_name = saved_labs[lab], LABS[lab][1], LABS[lab][2]
    original_text = (folder / card_name).read_text()
    card = json.loads(original_text)
    (folder / card_name).write_text(json.dumps({**card, field: value}))
    try:
        with pytest.raises(CheckpointError):
            loads(folder)
    finally:
        (folder / card_name).write_text(original_text)


def test_a_version_of_the_wrong_type_is_named_as_such(tmp_path):
    save_checkpoint(tmp_path / "m", "toy", {"W": np.zeros(2)}, {})
    card = json.loads(card_path(tmp_path / "m").read_text())
    for value, shown in [("1", '"1" (a string)'), (True, "true (a boolean)"), (1.0, "1.0 (a decimal number)"), ([1], "[1] (a list)")]:
        card_path(tmp_path / "m").write_text(json.dumps({**card, "format_version": value}))
        with pytest.raises(CheckpointError) as caught:
            load_checkpoint(tmp_path / "m", "toy")
        assert f"format version {shown}; this version of the lab reads version 1" in str(caught.value)
        with pytest.raises(CheckpointError):
            read_card(tmp_path / "m")


# --- broken and lying weights -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair():
    tensors = {"W": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(4, np.float64), "n": np.arange(3)}
    blob, card_json = checkpoint_bytes("toy", tensors, {})
    return blob, json.loads(card_json)


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes_are_not_weights(pair, data):
    _, card = pair
    with pytest.raises(CheckpointError):
        load_checkpoint_bytes(data, card)
    unchecked = {key: value for key, value in card.items() if key != "weights_sha256"}  # the header alone must refuse them
    with pytest.raises(CheckpointError):
        load_checkpoint_bytes(data, unchecked)


@FUZZ
@given(cut=st.integers(0, 10_000), header_length=st.integers(0, 2**64 - 1))
def test_truncated_files_and_lying_header_lengths_are_refused(pair, cut, header_length):
    blob, card = pair
    unchecked = {key: value for key, value in card.items() if key != "weights_sha256"}
    cut = cut % len(blob)
    with pytest.raises(CheckpointError):
        load_checkpoint_bytes(blob[:cut], unchecked)
    true_length = int.from_bytes(blob[:8], "little")
    if header_length != true_length:
        with pytest.raises(CheckpointError):
            load_checkpoint_bytes(header_length.to_bytes(8, "little") + blob[8:], unchecked)


@FUZZ
@given(name=st.sampled_from(["W", "b", "n"]), shape=st.lists(st.integers(0, 2**40), max_size=4),
       offsets=st.lists(st.integers(-5, 2**62), min_size=2, max_size=2), dtype=st.sampled_from(["F32", "F64", "I64", "U8", "X9"]))
def test_a_header_that_lies_about_a_tensor_is_refused_before_reading_it(pair, name, shape, offsets, dtype):
    blob, card = pair
    length = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + length])
    lie = {"dtype": dtype, "shape": shape, "data_offsets": offsets}
    if lie == header[name]:
        return
    text = json.dumps({**header, name: lie}).encode()
    forged = len(text).to_bytes(8, "little") + text + blob[8 + length :]
    with pytest.raises(CheckpointError):
        load_checkpoint_bytes(forged, {key: value for key, value in card.items() if key != "weights_sha256"})


def test_a_card_and_header_that_disagree_name_the_difference(tmp_path):
    save_checkpoint(tmp_path / "m", "toy", {"W": np.zeros((2, 3), np.float32)}, {})
    card = json.loads(card_path(tmp_path / "m").read_text())
    card_path(tmp_path / "m").write_text(json.dumps({**card, "tensors": {"W": {"shape": [2, 3], "dtype": "float64"}}}))
    with pytest.raises(CheckpointError, match="'W' in m.safetensors is F32, its card says float64"):
        load_checkpoint(tmp_path / "m", "toy")
    card_path(tmp_path / "m").write_text(json.dumps({**card, "tensors": {}}))
    with pytest.raises(CheckpointError, match="holds 1 tensor\\(s\\) its card does not list, e.g. 'W'"):
        load_checkpoint(tmp_path / "m", "toy")


def test_weights_over_the_budget_are_refused_unread(tmp_path):
    save_checkpoint(tmp_path / "m", "toy", {"W": np.zeros(1000)}, {})
    with pytest.raises(CheckpointError, match="up to 0.0 MiB"):
        load_checkpoint(tmp_path / "m", "toy", max_bytes=1000)
    assert load_checkpoint(tmp_path / "m", "toy", max_bytes=9000)[0]["W"].shape == (1000,)


# --- special files ----------------------------------------------------------------------------------------------


SPECIAL_FILES_SCRIPT = textwrap.dedent("""
    # In its own process, with its memory capped: a loader that reads /dev/zero to its end must fail, not take the machine.
    import json, os, resource, signal, sys
    from pathlib import Path
    import numpy as np
    from engine.core.checkpoints import card_path, load_checkpoint, read_card, save_checkpoint, weights_path
    from engine.core.errors import CheckpointError
    resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))
    signal.alarm(60)  # a FIFO opened for reading without O_NONBLOCK waits for a writer forever
    results = {}
    for which in ("card", "weights"):
        for special in ("fifo", "/dev/zero", "/dev/urandom", "folder"):
            path = Path(sys.argv[1]) / f"{which}-{special.strip('/').replace('/', '-')}" / "m"
            save_checkpoint(path, "toy", {"W": np.zeros(3)}, {})
            target = card_path(path) if which == "card" else weights_path(path)
            target.unlink()
            if special == "fifo":
                os.mkfifo(target)
            elif special == "folder":
                target.mkdir()
            else:
                target.symlink_to(special)
            messages = []
            for load in (lambda: load_checkpoint(path, "toy"), lambda: read_card(path)):
                try:
                    load()
                    messages.append(None)
                except CheckpointError as error:
                    messages.append(str(error))
            results[f"{which} {special}"] = messages
    path = Path(sys.argv[1]) / "sparse" / "m"
    save_checkpoint(path, "toy", {"W": np.zeros(3)}, {})
    with open(weights_path(path), "r+b") as file:
        file.truncate(3 * 2**30)  # 3 GiB on paper, nothing on disk
    try:
        load_checkpoint(path, "toy")
        over_budget = None
    except CheckpointError as error:
        over_budget = str(error)
    print(json.dumps({"special": results, "over_budget": over_budget}))
""")


def test_special_files_are_refused_without_hanging(tmp_path):
    done = subprocess.run([sys.executable, "-c", SPECIAL_FILES_SCRIPT, str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "3,072.0 MiB; the lab loads weights files up to 2,048.0 MiB" in report["over_budget"]
    results = report["special"]
    assert len(results) == 8
    for case, (loaded, card_read) in results.items():
        assert loaded is not None and "is not a regular file" in loaded, case
        if case.startswith("card"):
            assert card_read is not None and "is not a regular file" in card_read, case


def test_a_card_of_many_megabytes_is_refused(tmp_path):
    path = tmp_path / "m"
    save_checkpoint(path, "toy", {"W": np.zeros(3)}, {})
    with open(card_path(path), "r+b") as file:
        file.truncate(MAX_CARD_BYTES + 1)
    with pytest.raises(CheckpointError, match=f"is {MAX_CARD_BYTES + 1:,} bytes; a checkpoint card is at most {MAX_CARD_BYTES:,}"):
        load_checkpoint(path, "toy")
    card_path(path).write_text("[" * 100_000 + "]" * 100_000)  # deeper than Python's stack
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path, "toy")


# --- pickles ----------------------------------------------------------------------------------------------------


def test_a_pickle_is_never_unpickled_as_weights_or_card(saved_labs, tmp_path):
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(Payload(marker))
    for lab, (_, loads, card_name) in LABS.items():
        folder = tmp_path / lab
        folder.mkdir()
        original = json.loads((saved_labs[lab] / card_name).read_text())
        weights = folder / card_name.replace(".json", ".safetensors")
        weights.write_bytes(payload)  # with a card whose checksum is the pickle's: only the header check stands
        (folder / card_name).write_text(json.dumps({**original, "weights_sha256": __import__("hashlib").sha256(payload).hexdigest()}))
        with pytest.raises(CheckpointError):
            loads(folder)
        (folder / card_name).write_bytes(payload)
        with pytest.raises(CheckpointError, match="not valid JSON"):
            loads(folder)
    assert not marker.exists()


# --- a card that lies about the model's size --------------------------------------------------------------------


LYING_CARD_SCRIPT = textwrap.dedent("""
    import json, resource, sys, time
    from pathlib import Path
    import torch
    from engine.core.errors import CheckpointError
    from engine.gpt.checkpoint import load_model
    folder = Path(sys.argv[1])
    card = json.loads((folder / "model.json").read_text())
    lies = {
        "layers": {"n_layer": 48, "n_embd": 4096, "n_head": 32, "block_size": 4096},
        "width": {"n_embd": 4096, "n_head": 32, "block_size": 4096},
    }
    # A cap on address space, so that a loader which builds the lie fails fast instead of taking the machine
    mapped = int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmSize:"))) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mapped + 2**30, mapped + 2**30))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = {}
    for name, lie in lies.items():
        for tensors_lie_too in (False, True):
            lying = {**card, "model": {**card["model"], **lie}}
            if tensors_lie_too:
                lying["tensors"] = {**card["tensors"], "model.transformer.wte.weight": {"shape": [card["model"]["vocab_size"], 4096], "dtype": "float32"}}
            (folder / "model.json").write_text(json.dumps(lying))
            started = time.perf_counter()
            try:
                load_model(folder)
                message = None
            except CheckpointError as error:
                message = str(error)
            report[f"{name}{'+tensors' if tensors_lie_too else ''}"] = {"message": message, "seconds": time.perf_counter() - started}
    report["extra_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline
    print(json.dumps(report))
""")


def test_a_card_that_lies_about_the_model_size_is_refused_before_allocating(saved_labs, tmp_path):
    folder = tmp_path / "lying"
    folder.mkdir()
    for name in ("model.json", "model.safetensors"):
        (folder / name).write_bytes((saved_labs["gpt"] / name).read_bytes())
    done = subprocess.run([sys.executable, "-c", LYING_CARD_SCRIPT, str(folder)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["extra_kib"] < 200 * 1024, f"loading a lying card grew the process by {report['extra_kib'] / 1024:.0f} MB"
    assert "declares 48 layers" in report["layers"]["message"] and "the weights file holds 1" in report["layers"]["message"]
    assert "has model.transformer.wte.weight of shape" in report["width"]["message"]
    assert "4096" in report["width"]["message"]
    assert "wte.weight" in report["layers+tensors"]["message"] and "its card says" in report["layers+tensors"]["message"]
