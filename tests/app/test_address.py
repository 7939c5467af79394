"""Settings in the address: a link opens a lab as it was set, a value a setting cannot take falls back with a note."""

import pytest
from streamlit.testing.v1 import AppTest

import engine.gpt.checkpoint as gpt_checkpoint
from tests.app.conftest import ROOT
from ui.address import same_value


@pytest.fixture
def no_shipped(tmp_path, monkeypatch):
    monkeypatch.setenv("DLLAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(gpt_checkpoint, "SHIPPED_CHECKPOINT", tmp_path / "nowhere" / "gpt_shakespeare")


def open_page(page: str, **address) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for key, value in address.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(page).run()
    assert not at.exception
    return at


def captions(at) -> str:
    return " ".join(caption.value for caption in at.caption)


def test_a_link_opens_the_gpt_lab_with_its_settings(no_shipped):
    at = open_page("lab_pages/shakespeare_gpt.py", gpt_n_layer="2", gpt_learning_rate="0.002", gpt_bias="true")
    assert at.number_input(key="gpt_n_layer").value == 2
    assert at.number_input(key="gpt_learning_rate").value == 0.002 and at.checkbox(key="gpt_bias").value is True
    assert "The address asked for settings" not in captions(at)
    link = at.code[-1].value
    assert "gpt_n_layer=2" in link and "gpt_bias=true" in link and "visitor=" not in link


def test_a_value_a_setting_cannot_take_falls_back_with_a_note_and_no_error(no_shipped):
    at = open_page("lab_pages/shakespeare_gpt.py", gpt_n_layer="many", gpt_bias="maybe")
    assert at.number_input(key="gpt_n_layer").value == 4 and at.checkbox(key="gpt_bias").value is False
    note = captions(at)
    assert "The address asked for settings this lab cannot take" in note
    assert "n_layer='many' (shows 4)" in note and "bias='maybe' (shows False)" in note
    assert not at.error
    at.run()
    assert "The address asked for settings" not in captions(at)  # said once, not on every rerun


def test_a_link_opens_the_diffusion_lab_with_its_sampler_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("DLLAB_RUNS_DIR", str(tmp_path / "runs"))
    at = open_page("lab_pages/diffusion.py", ddpm_guidance="1.5", ddpm_steps="20", ddpm_epochs="2")
    assert at.number_input(key="ddpm_guidance").value == 1.5  # the link's guidance, not the model's suggested one
    assert at.number_input(key="ddpm_steps").value == 20 and at.number_input(key="ddpm_epochs").value == 2


def test_an_out_of_range_number_falls_back_to_the_default_with_a_note_not_an_error(no_shipped):
    at = open_page("lab_pages/shakespeare_gpt.py", gpt_n_layer="0", gpt_dropout="1.5", gpt_n_head="2.5", gpt_batch_size="8")
    assert at.number_input(key="gpt_n_layer").value == 4 and at.number_input(key="gpt_n_head").value == 4
    assert at.number_input(key="gpt_batch_size").value == 8  # a good value beside the bad ones is kept
    note = captions(at)
    assert "n_layer='0' (shows 4)" in note and "dropout='1.5'" in note and "n_head='2.5'" in note
    assert not at.error and not at.exception


def test_a_link_opens_the_sparse_autoencoder_lab_as_set_and_refuses_what_it_cannot_take(tmp_path, monkeypatch):
    monkeypatch.setenv("DLLAB_RUNS_DIR", str(tmp_path / "runs"))
    at = open_page("lab_pages/sparse_autoencoder.py", sae_hidden="36", sae_rho="0.05", sae_beta="-3", sae_iterations="many")
    assert at.number_input(key="sae_hidden").value == 36 and at.number_input(key="sae_rho").value == 0.05
    assert at.number_input(key="sae_beta").value == 3 and at.number_input(key="sae_iterations").value == 400
    note = captions(at)
    assert "beta='-3' (shows 3" in note and "iterations='many' (shows 400)" in note
    assert not at.error
    link = at.code[-1].value
    assert "sae_hidden=36" in link and "sae_rho=0.05" in link and "visitor=" not in link


@pytest.mark.parametrize(("asked", "value", "same"), [
    ("2", 2, True), ("2.5", 2, False), ("abc", 4, False), ("0.002", 0.002, True), ("true", True, True), ("1", True, False),
    ("tiny", "tiny", True), ("", None, True),
])
def test_same_value_tells_a_refused_address_value(asked, value, same):
    assert same_value(asked, value) is same
