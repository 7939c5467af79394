"""The diffusion page as a person uses it: the forward process, generation and its player, quality, training, errors.

Every run goes to a temporary DLLAB_RUNS_DIR. The "shipped" checkpoint is a tiny model trained on toy shapes and
exported into a temporary folder, so the page is tested the same way with or without the real one in checkpoints/.
The real MNIST classifier in checkpoints/ scores the samples. Tests marked `data` need MNIST (DLLAB_DATA_DIR).
"""

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import engine.ddpm.checkpoint as ddpm_checkpoint
import ui.diffusion_train as diffusion_train
from engine.core.cache import BackgroundResults
from engine.ddpm.estimate import step_shape
from engine.core.jobs import JobState, SilentReporter, board
from engine.ddpm.checkpoint import export_checkpoint
from engine.ddpm.data import toy_shapes
from engine.ddpm.checkpoint import load_model, record_in_card
from engine.ddpm.recording import FIRST_SETTINGS, record, save_recording
import engine.ddpm.recording as ddpm_recording
import streamlit as st
from engine.ddpm.train import PRESETS, TINY, train
from tests.app.page_driving import texts, wait_for_job
from ui.format import duration

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "lab_pages" / "diffusion.py")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/torch_threads.py


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny conditional model trained on toy shapes: its run folder (last and best, with Adam's state)."""
    folder = tmp_path_factory.mktemp("tiny") / "run"
    train(TINY, toy_shapes(256), SilentReporter(), out=folder, command="python -m engine.ddpm train --preset tiny --toy")
    return folder


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_run, tmp_path_factory):
    return export_checkpoint(tiny_run, tmp_path_factory.mktemp("shipped") / "ddpm_mnist").with_suffix("")


@pytest.fixture
def lab():
    return "ddpm"  # runs_dir, shipped and no_shipped: tests/app/conftest.py


def open_page():
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.run()
    assert not at.exception
    return at


@pytest.fixture
def shipped_page(shipped, runs_dir):
    return open_page()


def charts(at):
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return {spec["layout"]["title"]["text"] if "title" in spec["layout"] else "": spec for spec in specs}


def player(at):
    """The player's page and the frames it holds (JSON in its script)."""
    [html] = [element.proto.srcdoc for element in at.get("iframe") if "const frames = " in element.proto.srcdoc]
    return {"html": html, "frames": json.loads(html.split("const frames = ", 1)[1].split(", ms = ", 1)[0])}


def metrics(at):
    return {metric.label: metric.value for metric in at.metric}


def test_first_load_plays_the_shipped_models_digits_and_scores_them(shipped_page):
    page = shipped_page
    spec = player(page)
    frames = spec["frames"]
    assert len(frames) == 50 and [frame["index"] for frame in frames[:2]] == [1, 2]  # DDIM, 50 steps: every one kept
    assert frames[0]["title"].startswith("step 1 of 50 · t = 1,000 · noise level √(1 − ᾱ) = ")
    assert frames[-1]["title"].endswith("noise level √(1 − ᾱ) = 0.000")
    assert all(frames[10][picture].startswith("data:image/png;base64,") for picture in ("x_t", "x_0"))
    assert '<button id="play" type="button">&#9654; Play</button>' in spec["html"] and "&#10074;&#10074; Pause" in spec["html"]
    assert '<input id="step" type="range"' in spec["html"] and frames[-1]["label"] == "step 50 of 50"  # the slider spans the frames
    assert "16 samples in" in texts(page, "caption") and f"50 network calls, each on a batch of {32 if FIRST_SETTINGS.guidance != 1 else 16}" in texts(page, "caption")
    assert "from the shipped checkpoint" in texts(page, "caption")
    assert len(page.get("download_button")) == 2
    assert page.session_state["ddpm_generated"][2:] == ("ddim", 50, 1.0, 0, None, FIRST_SETTINGS.guidance, 16)
    assert "Recognised" in metrics(page) and "Read as the digit asked for (0-9 in turn)" in metrics(page)
    assert "Digits read with confidence > 0.9, of 16 samples" in charts(page)
    assert "98.94% right on the 10,000 test digits" in texts(page, "caption")
    assert not page.error


def test_the_recording_is_cached_so_a_rerun_is_cheap(shipped_page):
    page = shipped_page
    first = page.session_state["ddpm_generated"]
    page.run()
    assert page.session_state["ddpm_generated"] == first and not page.exception


def test_generate_a_digit_with_ddim_and_score_a_larger_batch(shipped_page):
    page = shipped_page
    page.number_input(key="ddpm_steps").set_value(10)
    page.number_input(key="ddpm_digit").set_value(3)
    page.number_input(key="ddpm_guidance").set_value(2.0)
    page.number_input(key="ddpm_n").set_value(4)
    page.button(key="ddpm_generate").click().run()
    assert not page.exception and not page.error
    assert len(player(page)["frames"]) == 10
    assert "4 samples in" in texts(page, "caption") and "10 network calls, each on a batch of 8" in texts(page, "caption")
    assert "Read as the digit 3" in metrics(page)
    page.number_input(key="ddpm_score_n").set_value(20)
    page.button(key="ddpm_score").click().run()
    assert "Scored: 20 fresh samples" in texts(page, "caption")
    assert "Digits read with confidence > 0.9, of 20 samples" in charts(page)


def test_ddpm_runs_all_thousand_steps_but_the_player_keeps_sixty(shipped_page):
    page = shipped_page
    page.radio(key="ddpm_sampler").set_value("ddpm")
    page.number_input(key="ddpm_n").set_value(1)
    page.button(key="ddpm_generate").click().run()
    frames = player(page)["frames"]
    assert 50 <= len(frames) <= 60 and frames[-1]["index"] == 1000
    assert "1,000 network calls" in texts(page, "caption")


def test_a_digit_outside_0_to_9_is_explained(shipped_page):
    page = shipped_page
    page.number_input(key="ddpm_digit").set_value(12)
    page.button(key="ddpm_generate").click().run()
    assert "digit must be between 0 and 9, got 12." in texts(page, "error")
    assert player(page)  # the last good digits stay in the player
    assert not page.exception


def test_a_missing_shipped_checkpoint_is_explained(no_shipped, runs_dir):
    at = open_page()
    assert "The shipped checkpoint (ddpm_mnist.safetensors in nowhere/) is not in this copy of the lab yet" in texts(at, "info")
    assert "ddpm_generated" not in at.session_state and not at.error


def test_guidance_without_a_conditional_model_is_explained(shipped, runs_dir):
    train(replace(TINY, conditional=False, epochs=1), toy_shapes(256), SilentReporter(), out=runs_dir / "plain")
    at = open_page()
    at.selectbox(key="ddpm_model").set_value(str(runs_dir / "plain" / "best")).run()
    assert at.number_input(key="ddpm_guidance").value == 1.0  # picking the model set guidance to suit it
    at.number_input(key="ddpm_guidance").set_value(3.0)
    at.button(key="ddpm_generate").click().run()
    assert "Guidance (3) needs a class-conditional model and a label to steer towards; this model was trained without labels: use guidance 1." in texts(at, "error")
    at.number_input(key="ddpm_guidance").set_value(1.0)
    at.number_input(key="ddpm_digit").set_value(4)
    at.button(key="ddpm_generate").click().run()
    assert "This model was trained without labels, so it cannot be asked for a digit (4)" in texts(at, "error")
    at.number_input(key="ddpm_digit").set_value(None)
    at.button(key="ddpm_generate").click().run()
    assert not at.error and "from run plain" in texts(at, "caption")


def test_a_corrupt_checkpoint_is_explained(shipped, runs_dir, tiny_run):
    shutil.copytree(tiny_run, runs_dir / "broken")
    weights = runs_dir / "broken" / "best.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    at = open_page()
    at.selectbox(key="ddpm_model").set_value(str(runs_dir / "broken" / "best")).run()
    at.button(key="ddpm_generate").click().run()
    assert "best.safetensors does not match its card" in texts(at, "error")
    assert not at.exception


def test_bad_sizes_are_shown_in_the_configs_words_and_train_is_disabled(no_shipped, runs_dir):
    at = open_page()
    at.radio(key="ddpm_preset").set_value("cpu").run()
    at.number_input(key="ddpm_width").set_value(12).run()
    assert "which is not divisible by the 8 GroupNorm groups: pick a width that is a multiple of 8" in texts(at, "error")
    assert at.button(key="ddpm_train").disabled
    at.number_input(key="ddpm_width").set_value(16)
    at.number_input(key="ddpm_epochs").set_value(0).run()
    assert "epochs must be between 1 and 1000, got 0." in texts(at, "error") and at.button(key="ddpm_train").disabled
    at.radio(key="ddpm_preset").set_value("tiny").run()  # a preset refills every field
    assert not at.error and at.number_input(key="ddpm_width").value == 8


def test_the_time_to_train_is_measured_before_pressing_train_without_holding_up_the_page(no_shipped, runs_dir, monkeypatch):
    monkeypatch.setattr(diffusion_train, "SPEEDS", BackgroundResults(keep_seconds=600))  # this server has timed nothing yet
    at = open_page()
    shown = metrics(at)
    assert shown["Time to train"] == "timing…" and shown["Speed on this device"] == "timing…"  # the page did not wait
    deadline = time.monotonic() + 120
    while diffusion_train.SPEEDS.running(step_shape(PRESETS["quick"])):
        assert time.monotonic() < deadline, "the probe never finished"
        time.sleep(0.2)
    shown = metrics(at.run())
    assert shown["Time to train"].startswith("≈ ") and shown["Speed on this device"].endswith(" images/s")
    assert shown["Digits seen"] == "60,000"  # the quick preset: 3 epochs of 20,000
    assert "The quick preset (3 epochs on 20,000 digits) already draws recognisable digits; on this device it takes ≈ " in texts(at, "caption")


@pytest.mark.data  # training needs MNIST
def test_the_time_shown_before_training_is_the_one_the_queue_is_given(no_shipped, runs_dir, monkeypatch):
    monkeypatch.setattr(diffusion_train, "SPEEDS", BackgroundResults(keep_seconds=600))
    monkeypatch.setattr(diffusion_train, "PROBE_DELAY_S", 0.0)
    monkeypatch.setattr(diffusion_train, "images_per_second", lambda config: 50.0)  # a slow device: minutes, not seconds
    at = open_page()
    at.radio(key="ddpm_preset").set_value("tiny").run()
    deadline = time.monotonic() + 60
    while metrics(at.run())["Time to train"] == "timing…":
        assert time.monotonic() < deadline, "the probe never finished"
        time.sleep(0.1)
    shown = metrics(at)["Time to train"]
    at.button(key="ddpm_train").click().run()
    job = board.get(at.session_state["ddpm_job_id"])
    assert shown == f"≈ {duration(job.expected_seconds)}"
    at.button(key="ddpm_stop").click().run()
    wait_for_job(at, "ddpm")


def test_mnist_missing_offline_is_explained_and_the_rest_works(shipped, runs_dir, monkeypatch, tmp_path):
    monkeypatch.delenv("DLLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("DLLAB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("DLLAB_OFFLINE", "1")
    at = open_page()
    assert "MNIST is not on this machine yet (11 MB)" in texts(at, "info")
    assert at.button(key="ddpm_train").disabled and player(at)  # generation works without MNIST
    at.button(key="ddpm_download_data").click().run()
    assert "is not on this machine and downloads are off" in texts(at, "error")
    assert not at.exception
    at.run()  # the next rerun offers the button again rather than retrying on its own
    assert not at.error and at.button(key="ddpm_download_data")


@pytest.mark.data
def test_scrubbing_t_moves_the_marker_and_the_noise(no_shipped, runs_dir):
    at = open_page()
    at.slider(key="ddpm_t").set_value(1000).run()
    curves = charts(at)["The linear schedule, T = 1,000"]
    marked = [trace for trace in curves["data"] if trace["name"] == "now"]
    assert [trace["x"] for trace in marked] == [[1000], [1000]]
    assert marked[0]["y"][0] == pytest.approx(4.04e-5, rel=0.01)  # DDPM's alpha_bar_T
    assert "x_t = 0.006 · x₀ + 1.000 · noise" in texts(at, "caption")
    at.slider(key="ddpm_t").set_value(0).run()
    assert "x_t = 1.000 · x₀ + 0.000 · noise" in texts(at, "caption")
    assert not [trace for trace in charts(at)["The linear schedule, T = 1,000"]["data"] if trace["name"] == "now"]
    at.radio(key="ddpm_fwd_schedule").set_value("cosine").run()
    assert "The cosine schedule, T = 1,000" in charts(at)
    at.number_input(key="ddpm_index").set_value(3).run()
    assert "x₀ (a 0)" in " ".join(image.proto.imgs[0].caption for image in at.get("image"))  # MNIST's test digit 3 is a 0


@pytest.mark.data
def test_train_on_mnist_then_generate_from_the_run(no_shipped, runs_dir):
    at = open_page()
    at.radio(key="ddpm_preset").set_value("tiny").run()
    at.checkbox(key="ddpm_conditional").uncheck()
    at.button(key="ddpm_train").click().run()
    job = wait_for_job(at, "ddpm")
    assert job.state is JobState.DONE and not at.exception
    assert "after 16 steps, 2.00 epochs" in texts(at, "success")
    curve = charts(at)["Loss of your run"]
    assert {trace["name"] for trace in curve["data"]} == {"batch loss (one batch)", "validation loss (EMA weights)"}
    [run] = list(runs_dir.iterdir())
    assert (run / "best.json").exists() and json.loads((run / "last.json").read_text())["command"].startswith("python -m engine.ddpm train --preset tiny")
    at.run()  # the new run is offered as a source
    at.selectbox(key="ddpm_model").set_value(str(run / "best")).run()
    at.button(key="ddpm_generate").click().run()
    assert not at.error, texts(at, "error")
    assert f"from run {run.name}" in texts(at, "caption")


@pytest.mark.data
def test_stop_then_resume_continues_the_same_run(no_shipped, runs_dir):
    at = open_page()
    at.radio(key="ddpm_preset").set_value("tiny").run()
    at.number_input(key="ddpm_epochs").set_value(500).run()
    at.button(key="ddpm_train").click().run()
    job = board.get(at.session_state["ddpm_job_id"])
    while job.view().done < 10 and not job.state.finished:
        job.wait(0.05)
    at.button(key="ddpm_stop").click().run()
    assert wait_for_job(at, "ddpm").state is JobState.STOPPED
    assert ", stopped at step" in texts(at, "success")
    [run] = list(runs_dir.iterdir())
    reached = json.loads((run / "last.json").read_text())["metrics"]["epoch"]
    at.number_input(key=f"ddpm_resume_to_{run.name}").set_value(int(reached) + 1)
    at.button(key="ddpm_resume").click().run()
    resumed = wait_for_job(at, "ddpm")
    assert resumed.state is JobState.DONE and resumed.view().result.epochs == int(reached) + 1
    assert not at.exception
    command = json.loads((run / "last.json").read_text())["command"]
    assert command.startswith("python -m engine.ddpm train --preset tiny ")  # how the run began, then how it went on
    assert command.endswith(f" && python -m engine.ddpm train --resume {run} --epochs {int(reached) + 1}")


def test_the_first_digits_come_from_the_recording_kept_for_these_weights(shipped, runs_dir, tmp_path, monkeypatch):
    st.cache_resource.clear()  # a recording drawn live by an earlier test would hide where this one comes from
    model, schedule, card = load_model(shipped)
    kept = record(model, schedule, FIRST_SETTINGS)
    save_recording(tmp_path / "player", kept, card["weights_sha256"], "python -m engine.ddpm record")
    monkeypatch.setattr(ddpm_recording, "SHIPPED_RECORDING", tmp_path / "player")
    at = open_page()
    assert "drawn by `python -m engine.ddpm record` when this lab was built" in texts(at, "caption")
    assert len(player(at)["frames"]) == len(kept.frames) and not at.error
    at.number_input(key="ddpm_seed").set_value(5)
    at.button(key="ddpm_generate").click().run()
    assert "drawn by `python -m engine.ddpm record`" not in texts(at, "caption") and "seed 5" in texts(at, "caption")

    st.cache_resource.clear()
    save_recording(tmp_path / "player", kept, "the sha256 of other weights")
    at = open_page()
    assert "drawn by `python -m engine.ddpm record`" not in texts(at, "caption")  # other weights' digits are never shown as these
    assert "16 samples in" in texts(at, "caption") and not at.error


def test_a_sweep_kept_in_the_card_shows_the_cost_of_guidance(tiny_run, runs_dir, tmp_path, monkeypatch):
    from engine.ddpm.quality import QualityRow, Reference, sweep_record

    checkpoint = export_checkpoint(tiny_run, tmp_path / "ddpm_mnist").with_suffix("")
    rows = [QualityRow(None, 500, 0.91, None, 0.08, 30.0, 1.2, 60.0), QualityRow(1.0, 500, 0.96, 0.97, 0.09, 28.0, 1.1, 90.0),
            QualityRow(3.0, 500, 1.0, 1.0, 0.1, 150.0, 6.0, 90.0)]
    ref = Reference(None, 25.0, 0.97, 500)
    record_in_card(checkpoint, "guidance_sweep", sweep_record(rows, ref, "python -m engine.ddpm sweep --record", 50, 0))
    monkeypatch.setattr(ddpm_checkpoint, "SHIPPED_CHECKPOINT", checkpoint)
    at = open_page()
    assert "Guidance: more digits recognised, less variety" in charts(at)
    chart = charts(at)["Guidance: more digits recognised, less variety"]
    assert {trace["name"] for trace in chart["data"]} == {"guidance w", "unconditional", "real digits"}
    table = at.dataframe[0].value
    assert list(table["sampling"]) == ["unconditional", "guidance 1", "guidance 3"] and list(table["recognised"]) == ["91.0%", "96.0%", "100.0%"]
    captions = texts(at, "caption")
    assert "python -m engine.ddpm sweep --record" in captions and "Suggested guidance: **1**" in captions
    assert "500 of MNIST's training digits are 97.0% recognised" in captions


@pytest.mark.data
def test_measuring_the_trade_off_for_a_model_runs_as_a_job_and_shows_its_rows(shipped, runs_dir, monkeypatch):
    import ui.guidance

    monkeypatch.setattr(ui.guidance, "ON_DEMAND_N", 20)
    at = open_page()
    at.button(key="ddpm_measure").click().run()
    job = wait_for_job(at, "ddpm_sweep")
    assert job.state is JobState.DONE and not at.exception, job.error
    assert [row.label for row in board.view(job).result] == ["unconditional", "guidance 1", "guidance 2", "guidance 3"]
    assert "Measured just now" in texts(at, "caption")
    assert list(at.dataframe[-1].value["sampling"]) == ["unconditional", "guidance 1", "guidance 2", "guidance 3"]
