"""The Shakespeare GPT page as a person uses it: generate, settings and their errors, train, stop, resume, compare.

Every run goes to a temporary DLLAB_RUNS_DIR. The "shipped" checkpoint is a tiny model exported into a
temporary folder, so the page is tested the same way with or without the real one in checkpoints/.
"""

import json

import pytest

from engine.core.jobs import JobState, SilentReporter, board
from engine.gpt.data import prepare_text
from engine.gpt.runs import export_checkpoint, list_runs, read_history, train_run
from engine.gpt.train import TINY
from tests.app.page_driving import paste_tiny, texts, wait_for_job
from tests.texts import rhymes


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/torch_threads.py


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny model trained on the rhymes, exported like the shipped checkpoint (weights only)."""
    folder = tmp_path_factory.mktemp("tiny_run")
    train_run(TINY, prepare_text(rhymes(), "rhymes"), SilentReporter(), folder, text=rhymes())
    return export_checkpoint(folder, tmp_path_factory.mktemp("shipped") / "gpt_shakespeare").with_suffix("")


@pytest.fixture
def lab():
    return "gpt"  # runs_dir, shipped and no_shipped: tests/app/conftest.py


@pytest.fixture
def page(app, runs_dir):
    app.switch_page("lab_pages/shakespeare_gpt.py").run()
    assert not app.exception
    return app


def charts(at):
    return {json.loads(chart.proto.spec)["layout"]["title"]["text"]: json.loads(chart.proto.spec) for chart in at.get("plotly_chart")}


def test_first_load_streams_a_short_sample_from_the_shipped_checkpoint(shipped, page):
    assert page.selectbox(key="gpt_model").value == str(shipped)
    generated = page.session_state["gpt_generated"]
    assert generated["count"] == 200 and len(generated["text"]) == 200
    assert set(generated["text"]) <= set(rhymes())  # the tiny model's vocabulary
    assert "200 new characters in" in texts(page, "caption") and "characters/s) from the shipped checkpoint" in texts(page, "caption")
    assert page.get("download_button")


def test_a_missing_shipped_checkpoint_is_explained(no_shipped, page):
    assert "The shipped checkpoint (gpt_shakespeare.safetensors in nowhere/) is not in this copy of the lab yet" in texts(page, "info")
    assert "gpt_generated" not in page.session_state


def test_the_readout_counts_the_cpu_preset_like_nanogpt(no_shipped, page):
    metrics = {metric.label: metric.value for metric in page.metric}
    assert metrics["Parameters"] == "0.80 M"
    assert metrics["Tokens per iteration"] == "768"
    assert metrics["Training memory"].startswith("≈ ") and metrics["Training memory"].endswith(" MB")
    time = next(metric for metric in page.metric if metric.label == "Time to train")
    assert time.value.startswith("≈ ") and time.delta == "estimated"
    assert "0.80 M in all (804,096)" in texts(page, "caption")
    assert "ms per iteration, estimated from FLOPs per iteration and two presets timed on this CPU" in texts(page, "caption")
    assert "Learning rate: warmup, cosine decay" in charts(page)


def test_timing_these_settings_replaces_the_estimate(no_shipped, page):
    page.radio(key="gpt_preset").set_value("tiny").run()
    page.button(key="gpt_time").click().run()
    time = next(metric for metric in page.metric if metric.label == "Time to train")
    assert time.delta == "measured" and "ms per iteration, measured just now for these settings on this CPU" in texts(page, "caption")


def test_tiny_shakespeare_missing_offline_is_explained(no_shipped, page, monkeypatch, tmp_path):
    monkeypatch.delenv("DLLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("DLLAB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("DLLAB_OFFLINE", "1")
    page.run()
    assert "tiny Shakespeare is not on this machine yet (1.1 MB)" in texts(page, "info") and page.button(key="gpt_train").disabled
    page.button(key="gpt_download_data").click().run()
    assert "shakespeare/input.txt is not on this machine and downloads are off" in texts(page, "error")
    page.run()  # the next rerun offers the button again rather than retrying on its own
    assert not page.error and page.button(key="gpt_download_data")


def test_a_config_error_is_shown_in_its_own_words_and_train_is_disabled(no_shipped, page):
    page.number_input(key="gpt_n_embd").set_value(100)
    page.number_input(key="gpt_n_head").set_value(6).run()
    assert "n_embd (100) must be divisible by n_head (6)" in texts(page, "error")
    assert page.button(key="gpt_train").disabled
    page.radio(key="gpt_preset").set_value("gpu").run()  # a preset refills every field
    assert not page.error and page.number_input(key="gpt_n_embd").value == 384
    page.radio(key="gpt_preset").set_value("fast").run()
    assert page.radio(key="gpt_preset").format_func("fast") == "Fast (nanoGPT's quality, sooner)"
    assert page.number_input(key="gpt_max_iters").value == 1200 and page.number_input(key="gpt_n_embd").value == 128


def test_text_problems_are_explained(no_shipped, page):
    page.radio(key="gpt_source").set_value("paste").run()
    assert "Paste some text above" in texts(page, "info") and page.button(key="gpt_train").disabled
    page.text_area(key="gpt_text").set_value("to be or not to be, " * 5).run()  # 100 characters; CPU preset's block is 64
    assert "too short for block_size 64" in texts(page, "error") and page.button(key="gpt_train").disabled
    page.radio(key="gpt_source").set_value("upload").run()
    page.file_uploader(key="gpt_upload").set_value(("latin1.txt", "Émile à la plage".encode("latin-1"), "text/plain")).run()
    assert "latin1.txt is not UTF-8 text: byte 0 (0xc9)" in texts(page, "error")
    page.file_uploader(key="gpt_upload").set_value(("empty.txt", b"", "text/plain")).run()
    assert "empty.txt is empty." in texts(page, "error")


def test_train_on_pasted_text_then_generate_from_the_run(no_shipped, page, runs_dir):
    paste_tiny(page)
    assert "the pasted text: 1,200 characters, 21 distinct" in texts(page, "caption")
    page.button(key="gpt_train").click().run()
    job = wait_for_job(page, "gpt")
    assert job.state is JobState.DONE
    assert "Best val loss" in texts(page, "success") and "at iteration 60 of 60" in texts(page, "success")
    result = charts(page)["Loss of your run"]
    assert {trace["name"] for trace in result["data"]} >= {"batch loss (one batch)", "train loss (evaluation)", "val loss (evaluation)"}
    [run] = list_runs(runs_dir)
    assert run.state == "done" and run.resumable and (run.folder / "text.txt").read_text() == rhymes()
    assert [row["step"] for row in read_history(run.folder) if "val_loss" in row] == [0, 20, 40, 60]

    page.selectbox(key="gpt_model").set_value(str(run.checkpoint))
    page.text_input(key="gpt_gen_prompt").set_value("the ")
    page.number_input(key="gpt_gen_count").set_value(120)
    page.number_input(key="gpt_gen_seed").set_value(7)
    page.button(key="gpt_generate").click().run()
    generated = page.session_state["gpt_generated"]
    assert generated["text"].startswith("the ") and len(generated["text"]) == 124
    assert "120 new characters in" in texts(page, "caption") and f"from run {run.name}" in texts(page, "caption")

    page.text_input(key="gpt_gen_prompt").set_value("QUEEN:")
    page.button(key="gpt_generate").click().run()
    assert "The prompt has 5 character(s) outside the model's vocabulary: ':', 'E', 'N', 'Q', 'U'" in texts(page, "error")


def test_stop_then_resume_continues_the_same_run(no_shipped, page, runs_dir):
    paste_tiny(page, max_iters=100_000)
    page.button(key="gpt_train").click().run()
    job = board.get(page.session_state["gpt_job_id"])
    while job.view().done < 25 and not job.state.finished:
        job.wait(0.05)
    page.button(key="gpt_stop").click().run()
    assert wait_for_job(page, "gpt").state is JobState.STOPPED
    [run] = list_runs(runs_dir)
    assert run.state == "stopped" and run.resumable
    assert f", stopped at iteration {run.iterations:,}" in texts(page, "success")

    assert page.selectbox(key="gpt_resume_run").value == run.name  # the run just stopped is offered first
    page.number_input(key=f"gpt_resume_to_{run.name}").set_value(run.best_iter + 30)
    page.button(key="gpt_resume").click().run()
    resumed = wait_for_job(page, "gpt")
    assert resumed.state is JobState.DONE and resumed.view().result.iterations == run.best_iter + 30
    [after] = list_runs(runs_dir)
    steps = [row["step"] for row in after.history if "val_loss" in row]
    assert steps == sorted(set(steps)) and steps[-1] == run.best_iter + 30  # one history, no repeated evaluations
    assert after.state == "done" and after.iterations == run.best_iter + 30


def test_compare_lists_runs_with_their_changes_and_overlays_their_curves(no_shipped, runs_dir, app):
    text = rhymes()
    for width in (32, 48):
        config = TINY.__class__(**{**TINY.__dict__, "n_embd": width})
        train_run(config, prepare_text(text, "rhymes"), SilentReporter(), runs_dir / f"width{width}", text=text)
    app.switch_page("lab_pages/shakespeare_gpt.py").run()
    assert not app.exception
    table = app.dataframe[0].value.set_index("run")
    assert set(table.index) == {"width32", "width48"}
    assert "n_embd=48" in table.loc["width48", "settings changed from the CPU preset"]
    assert table.loc["width48", "parameters (M)"] == 0.06 and table.loc["width32", "iterations"] == 60
    figure = charts(app)["Validation loss of each run"]
    names = [trace["name"] for trace in figure["data"]]
    assert {"width32", "width48", "nanoGPT's CPU run"} <= set(names)
    reference = next(trace for trace in figure["data"] if trace["name"] == "nanoGPT's CPU run")
    assert reference["x"] == [2000] and reference["y"] == [1.8857]


def test_a_corrupt_run_checkpoint_is_explained(no_shipped, runs_dir, app):
    text = rhymes()
    train_run(TINY, prepare_text(text, "rhymes"), SilentReporter(), runs_dir / "broken", text=text)
    weights = runs_dir / "broken" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    app.switch_page("lab_pages/shakespeare_gpt.py").run()
    app.button(key="gpt_generate").click().run()
    assert "model.safetensors does not match its card (checksum differs)" in texts(app, "error")
    assert not app.exception


def test_home_has_a_card_with_a_snippet_from_the_shipped_model(shipped, app):
    assert any(header.value == "Shakespeare GPT" for header in app.subheader)
    assert any(link.proto.page.endswith("shakespeare_gpt.py") or "shakespeare_gpt" in link.proto.page for link in app.get("page_link"))
    assert "Written by the shipped model, one character at a time" in texts(app, "caption")
    assert app.code and set(app.code[0].value) <= set(rhymes())


def test_a_stream_cut_short_keeps_what_it_wrote():
    from ui.runs import markdown_stream

    record = {}
    stream = markdown_stream(iter("abcdefgh"), "> ", record, every=0.0)
    next(stream), next(stream), next(stream)
    stream.close()  # what a rerun does to st.write_stream's generator
    assert record["text"] == "> abc" and record["characters"] == 3 and record["seconds"] >= 0


def test_text_cut_short_by_a_rerun_stays_on_the_page_with_a_note(shipped, page):
    page.session_state["gpt_generated"] = {"count": 500, "source": "the shipped checkpoint", "complete": False,
                                           "text": "ROMEO: the cat", "characters": 8, "seconds": 0.2}
    page.run()
    assert "ROMEO\\: the cat" in texts(page, "markdown")  # escaped as Markdown, shown as itself
    assert "Cut short after 8 of 500 new characters from the shipped checkpoint" in texts(page, "caption")
    assert page.get("download_button")


def test_each_setting_is_explained_with_the_current_numbers(no_shipped, page):
    paste_tiny(page)
    handout = " ".join(texts(page, "markdown").split())
    assert "an iteration sees **128 characters** (batch × block × accumulation)" in handout
    assert "about **3 words**" in handout and "heads of **16 numbers each**" in handout
    assert "One *micro-batch* is" in handout and "differs from max_iters" not in texts(page, "caption")
    page.number_input(key="gpt_lr_decay_iters").set_value(30).run()
    assert "lr_decay_iters (30) differs from max_iters (60), so the cosine decay ends before the run ends" in texts(page, "caption")


def test_the_cpu_recipe_is_about_one_and_a_half_epochs_of_tiny_shakespeare():
    from engine.gpt.estimate import run_shape
    from engine.gpt.train import CPU

    shape = run_shape(CPU, 1_003_854)  # tiny Shakespeare's first 90%
    assert shape.tokens_per_iter == 768 and round(shape.epochs, 1) == 1.5 and shape.head_size == 32
