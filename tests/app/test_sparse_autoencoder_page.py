import json

import pytest

from engine.core.jobs import JobState
from tests.app.page_driving import wait_for_job


@pytest.fixture
def page(app):
    app.switch_page("lab_pages/sparse_autoencoder.py").run()
    assert not app.exception
    return app


def texts(at, kind):
    return " ".join(element.value for element in getattr(at, kind))


def running_now(at) -> str:
    return " ".join(caption.value for caption in at.sidebar.caption).replace("**", "")


def small_builtin_run(at, iterations=30):
    at.radio(key="sae_source").set_value("builtin")
    at.number_input(key="sae_patches").set_value(500)
    at.number_input(key="sae_iterations").set_value(iterations)
    return at.run()


def test_first_load_shows_the_shipped_checkpoint_beside_ufldls_numbers(page):
    assert any(header.value == "Results — the shipped checkpoint" for header in page.subheader)
    after = next(metric for metric in page.metric if metric.label == "Cost after training")
    assert float(after.value) <= 0.48
    assert "48.85 → 0.481" in texts(page, "caption")
    charts = [json.loads(chart.proto.spec) for chart in page.get("plotly_chart")]
    assert {chart["layout"]["title"]["text"] for chart in charts} >= {"Cost per iteration", "Mean activation of each hidden unit (target ρ = 0.01)"}
    assert len(page.get("download_button")) == 3


def test_invalid_settings_are_explained_and_reset_restores_ufldl(page):
    page.number_input(key="sae_hidden").set_value(0).run()
    assert "hidden_size must be between 1 and 400, got 0" in texts(page, "error")
    assert page.button(key="sae_train").disabled
    page.number_input(key="sae_hidden").set_value(25)
    page.number_input(key="sae_rho").set_value(1.5).run()
    assert "strictly between 0 and 1, got 1.5" in texts(page, "error")
    page.number_input(key="sae_lam").set_value(-0.001).run()
    page.button[[b.label for b in page.button].index("Reset to UFLDL's settings")].click().run()
    assert page.number_input(key="sae_rho").value == 0.01 and page.number_input(key="sae_lam").value == 0.0001
    assert not page.error


def test_gradient_check_reports_pass_against_the_threshold(page):
    small_builtin_run(page)
    page.button(key="sae_check").click().run()
    assert "passes (threshold 1e-09)" in texts(page, "success")


def test_train_runs_to_the_end_and_draws_the_result(page):
    small_builtin_run(page)
    page.button(key="sae_train").click().run()
    job = wait_for_job(page, "sae")
    assert job.state is JobState.DONE
    assert any(header.value == "Results — your run" for header in page.subheader)
    assert "30 L-BFGS iterations" in texts(page, "caption")
    assert "--source builtin" in texts(page, "caption")


def test_stop_keeps_the_best_result_so_far(page):
    small_builtin_run(page, iterations=2000)
    page.number_input(key="sae_patches").set_value(20000)
    page.number_input(key="sae_hidden").set_value(100).run()
    assert "Running now: nothing" in running_now(page)
    page.button(key="sae_train").click().run()
    assert "Running now: Sparse autoencoder, 100 hidden" in running_now(page)
    page.button(key="sae_stop").click().run()
    job = wait_for_job(page, "sae")
    assert job.state is JobState.STOPPED
    view = job.view()
    assert 0 < view.result.iterations < 2000 and view.result.stopped
    assert "(stopped early)" in texts(page, "caption")


def test_uploading_is_offered_for_own_images(page):
    page.radio(key="sae_source").set_value("upload").run()
    assert "Upload one or more photographs" in texts(page, "info")
    assert page.button(key="sae_train").disabled


def test_missing_images_offline_are_explained_and_nothing_breaks(page, monkeypatch, tmp_path):
    monkeypatch.delenv("DLLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("DLLAB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("DLLAB_OFFLINE", "1")
    page.number_input(key="sae_seed").set_value(7).run()  # new settings: nothing cached for them yet
    assert "not on this machine yet" in texts(page, "info")
    page.button(key="sae_download_images").click().run()
    assert "natural_images/olshausen_raw_tif/01.tif" in texts(page, "error") and "DLLAB_DATA_DIR" in texts(page, "error")
    assert any(header.value == "Results — the shipped checkpoint" for header in page.subheader)


def test_a_gradient_check_is_not_shown_for_other_settings(page):
    small_builtin_run(page)
    page.button(key="sae_check").click().run()
    assert page.success
    page.number_input(key="sae_hidden").set_value(16).run()
    assert not page.success


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("sae_beta", 1e308, "beta (sparsity weight) must be between 0 and 1000, got 1e+308"),
        ("sae_lam", 1e300, "lambda (weight decay) must be between 0 and 100, got 1e+300"),
        # Streamlit's whole-number input keeps to JavaScript's safe integers, so 1e20 never reaches the page;
        # the engine refuses it all the same (tests/engine/test_config_fuzz.py)
        ("sae_seed", -1, "seed must be between 0 and 2**63-1, got -1"),
    ],
)
def test_absurd_numbers_show_the_configs_message_and_disable_train(page, key, value, words):
    page.radio(key="sae_source").set_value("builtin")
    page.session_state[key] = value
    page.run()
    assert not page.exception
    assert words in texts(page, "error")
    assert page.button(key="sae_train").disabled


def test_the_uploader_says_in_words_what_it_accepts(page):
    page.radio(key="sae_source").set_value("upload").run()
    assert "PNG, JPEG, TIFF, BMP, GIF or WebP, up to 20 MB each" in texts(page, "info")
