"""The transformer page as a person uses it: every control, the toy, the messages for prompts it cannot read.

The page runs on its own (AppTest.from_file), without app.py's frame. The "shipped" model is a tiny
GPT trained for a few iterations on some Shakespeare and saved in a temporary folder; a person's runs live in a
temporary DLLAB_RUNS_DIR. So the page is tested the same way with or without the real checkpoint.
"""

import base64
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import engine.gpt.checkpoint as gpt_checkpoint
from engine.core.jobs import SilentReporter
from engine.gpt.checkpoint import load_model
from engine.gpt.data import prepare_text
from engine.gpt.inspect import tempered, trace_prompt
from engine.gpt.train import TINY, train

PAGE = Path(__file__).resolve().parents[2] / "lab_pages" / "inside_the_transformer.py"
DEFAULT_PROMPT = "First Citizen:\nBefore we proceed any further, hear me speak."
LINES = [
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n",
    "All:\nSpeak, speak.\n\n",
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n",
    "MENENIUS:\nWhy, masters, my good friends, mine honest neighbours, will you undo yourselves?\n\n",
]
TEXT = "".join(LINES) * 12  # about 2,800 characters


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/torch_threads.py


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-layer GPT with a 64-character context, trained for 20 iterations (about a second)."""
    folder = tmp_path_factory.mktemp("tiny") / "gpt_shakespeare"
    config = replace(TINY, block_size=64, max_iters=20, eval_interval=10, eval_iters=2, sample_chars=0, device="cpu")
    train(config, prepare_text(TEXT, "some Shakespeare"), SilentReporter(), out=folder)
    return folder / "model"


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DLLAB_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs" / "gpt"


@pytest.fixture
def page(tiny_model, runs_dir, monkeypatch):
    monkeypatch.setattr(gpt_checkpoint, "SHIPPED_CHECKPOINT", tiny_model)
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert not at.exception
    return at


def charts(at) -> dict[str, dict]:
    """Every plotly chart on the page by its title."""
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return {(spec["layout"].get("title") or {}).get("text", ""): spec for spec in specs}


def chart(at, starts: str) -> dict:
    found = [spec for title, spec in charts(at).items() if title.startswith(starts)]
    assert found, f"no chart titled {starts!r}: {list(charts(at))}"
    return found[0]


def values(data) -> np.ndarray:
    """A plotly array from a chart's JSON: a list, or plotly's typed array {dtype, bdata (base64), shape}."""
    if isinstance(data, dict) and "bdata" in data:
        flat = np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
        return flat.reshape([int(n) for n in str(data.get("shape", len(flat))).split(",")])
    return np.array(data, dtype=float)


def texts(at, kind) -> str:
    return " ".join(str(element.value) for element in getattr(at, kind))


def test_first_load_traces_the_default_prompt_through_every_view(page):
    assert page.text_area(key="itt_prompt").value == DEFAULT_PROMPT
    assert page.selectbox(key="itt_model").value == "shipped"
    assert [header.value for header in page.subheader] == [
        "1. The flow", "2. Attention", "3. The residual stream", "4. The logit lens", "5. The next character"]
    titles = list(charts(page))
    last = f"position {len(DEFAULT_PROMPT) - 1} '.'"
    for start in ("2 layers, d_model 32, 2 heads of 16, MLP 128 wide, vocabulary", f"Layer 1: Attention, at {last}",
                  "Layer 1, head 1", "Every head of layer 1", "How much each step writes", f"At {last}",
                  "Logit lens", f"The next character after {last}"):
        assert any(title.startswith(start) for title in titles), start
    assert "parameters; trained 20 iterations on some Shakespeare" in texts(page, "caption")
    assert page.select_slider(key="itt_position").value == len(DEFAULT_PROMPT) - 1
    assert len(page.dataframe) == 1 and not page.error


def test_the_page_draws_the_traced_numbers(page, tiny_model):
    model, tokenizer, _ = load_model(tiny_model)
    traced = trace_prompt(model, tokenizer, DEFAULT_PROMPT)
    attention = chart(page, "Layer 1, head 1")["data"][0]["z"]
    np.testing.assert_allclose(values(attention)[-1], traced.attention[0, 0, -1], rtol=1e-5)
    page.slider(key="itt_temperature").set_value(0.5).run()
    bars, own = chart(page, "The next character")["data"]
    assert bars["name"] == "at temperature 0.5: what sampling draws from" and own["name"] == "the model's own (temperature 1)"
    expected = np.sort(tempered(traced.logits[-1], 0.5))[::-1][:20]
    np.testing.assert_allclose(values(bars["y"])[:20], expected, rtol=1e-4)
    page.slider(key="itt_temperature").set_value(1.0).run()
    assert [trace["name"] for trace in chart(page, "The next character")["data"]] == ["at temperature 1: the model's own"]  # one legend entry, not two alike
    lens = chart(page, "Logit lens")["data"][0]
    assert "the prompt's next character is" in lens["hovertemplate"] and "token" not in chart(page, "Logit lens")["layout"]["title"]["text"]
    np.testing.assert_allclose(values(lens["z"])[:, -1], traced.lens_probs[:, -1].max(-1), rtol=1e-5)


def test_the_position_picker_moves_every_view(page):
    page.select_slider(key="itt_position").set_value(3).run()
    assert "At position 3 's', the prompt's actual next character is 't'" in texts(page, "caption")
    chart(page, "The next character after position 3 's'")
    chart(page, "At position 3 's'")
    chart(page, "Layer 1: Attention, at position 3 's'")
    assert page.button(key="itt_sample").disabled  # sampling continues the prompt, from its last position


@pytest.mark.parametrize("stage, title", [("embed", "Embedding"), ("attention_add:0", "Layer 1: Add attention to the stream"),
                                          ("mlp:1", "Layer 2: MLP"), ("mlp_add:1", "Layer 2: Add MLP"), ("unembed", "Unembed"),
                                          ("softmax", "Softmax")])
def test_choosing_a_stage_shows_its_numbers(page, stage, title):
    page.selectbox(key="itt_stage").set_value(stage).run()
    assert not page.exception
    chart(page, f"{title}")


def test_a_one_character_prompt_needs_no_position_picker(page):
    page.text_area(key="itt_prompt").input("F").run()
    assert not page.exception and not page.error and not page.select_slider
    chart(page, "The next character after position 0 'F'")


def test_layer_and_head_pick_the_attention_heatmap(page):
    page.selectbox(key="itt_layer").set_value(1)
    page.radio(key="itt_head").set_value(1).run()
    chart(page, "Layer 2, head 2")


def test_sampling_appends_a_character_to_the_prompt(page):
    page.button(key="itt_sample").click().run()
    prompt = page.text_area(key="itt_prompt").value
    assert prompt.startswith(DEFAULT_PROMPT) and len(prompt) == len(DEFAULT_PROMPT) + 1
    assert "Last sample:" in texts(page, "caption")
    assert page.select_slider(key="itt_position").value == len(prompt) - 1  # the view follows the new last position


def test_sampling_at_the_context_limit_drops_the_first_character(page):
    full = (DEFAULT_PROMPT + " All:")[:64]
    page.text_area(key="itt_prompt").input(full).run()
    page.button(key="itt_sample").click().run()
    prompt = page.text_area(key="itt_prompt").value
    assert len(prompt) == 64 and prompt[:-1] == full[1:]
    assert "reads at most 64 characters, so the first one was dropped" in texts(page, "caption")


@pytest.mark.parametrize("prompt, message", [
    ("Speak, speak €", "The prompt has 1 character(s) outside the model's vocabulary: '€'"),
    ("", "The prompt is empty: type at least one character"),
    ("speak " * 12 + "up", "The prompt has 74 characters; this model reads at most 64 (its context, block_size). Shorten it by 10 characters."),
])
def test_prompts_the_model_cannot_read_are_explained(page, prompt, message):
    page.text_area(key="itt_prompt").input(prompt).run()
    assert message in texts(page, "error")
    assert not page.get("plotly_chart") and not page.exception


def test_the_toy_shows_every_number_and_completes_its_sentence(page):
    page.selectbox(key="itt_model").set_value("toy").run()
    assert page.text_area(key="itt_prompt").value == "UCLA is at"
    assert "UCLA is at Westwood" in texts(page, "caption").replace("*", "")
    bars = chart(page, "The next word after position 2 'at'")["data"][0]
    assert bars["x"][0] == "Westwood" and values(bars["y"])[0] > 0.8
    assert page.subheader[-1].value == "6. Every parameter of the toy"
    titles = list(charts(page))
    assert "2 layers, d_model 4, 2 heads of 2, MLP 8 wide, vocabulary 11" in titles[0]
    assert any(title.startswith("head 1 attention weights") for title in titles)
    assert any(title.startswith("W_up: c_fc (8×4)") for title in titles)  # the 8-wide MLP, in full
    page.button(key="itt_sample").click().run()
    words = page.text_area(key="itt_prompt").value.split()
    assert words[:3] == ["UCLA", "is", "at"] and len(words) == 4  # a word, with a space before it
    page.text_area(key="itt_prompt").input("USC is at").run()
    assert "word(s) the toy model does not know: 'USC'" in texts(page, "error")
    page.selectbox(key="itt_model").set_value("shipped").run()
    assert page.text_area(key="itt_prompt").value == DEFAULT_PROMPT and not page.error


def test_a_persons_runs_are_offered(page, runs_dir, tiny_model):
    folder = runs_dir / "20250101-120000-tiny"
    folder.mkdir(parents=True)
    for suffix in (".safetensors", ".json"):
        (folder / f"model{suffix}").write_bytes(tiny_model.with_suffix(suffix).read_bytes())
    page.run()
    options = page.selectbox(key="itt_model").options
    assert any("Your run 20250101-120000-tiny" in option for option in options)
    page.selectbox(key="itt_model").set_value(str(folder / "model")).run()
    assert not page.exception and not page.error
    chart(page, "The next character")


def test_a_missing_shipped_model_is_explained(runs_dir, monkeypatch, tmp_path):
    monkeypatch.setattr(gpt_checkpoint, "SHIPPED_CHECKPOINT", tmp_path / "nowhere" / "gpt_shakespeare")
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert at.selectbox(key="itt_model").value == "toy"  # nothing else to show: the toy
    at.selectbox(key="itt_model").set_value("shipped").run()
    assert "The shipped model (gpt_shakespeare.safetensors in nowhere/) is not in this copy of the lab yet" in texts(at, "info")
    assert not at.exception and not at.get("plotly_chart")
