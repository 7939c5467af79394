"""Many visitors on one server, as AppTest sessions: each owns their runs, a full server queues, a reload reattaches."""

import pytest
from streamlit.testing.v1 import AppTest

import engine.gpt.checkpoint as gpt_checkpoint
from engine.core.jobs import JobState, board
from engine.gpt.runs import list_runs
from tests.app.conftest import ROOT
from tests.app.page_driving import paste_tiny, texts

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def public(tmp_path, monkeypatch):
    monkeypatch.setenv("DLLAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DLLAB_PUBLIC", "1")
    monkeypatch.setattr(gpt_checkpoint, "SHIPPED_CHECKPOINT", tmp_path / "nowhere" / "gpt_shakespeare")
    monkeypatch.setattr(board, "max_running", 1)
    yield tmp_path / "runs" / "gpt"
    for job in board.all_jobs():
        job.stop()
        job.wait(30)


def visit(token: str | None = None) -> AppTest:
    """A visitor's session on the GPT page; the same `token` is the same visitor coming back (a reload, a second tab)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if token is not None:
        at.query_params["visitor"] = token
    at.run()
    at.switch_page("lab_pages/shakespeare_gpt.py").run()
    assert not at.exception
    return at


def token_of(at: AppTest) -> str:
    return at.session_state["visitor_token"]


def train_tiny(at: AppTest, **settings) -> AppTest:
    paste_tiny(at, **settings)
    at.button(key="gpt_train").click().run()
    return at


def test_a_visitor_gets_a_random_token_kept_in_the_address():
    first, second = visit(), visit()
    assert len(token_of(first)) >= 22 and token_of(first) != token_of(second)
    assert first.query_params["visitor"] == token_of(first)
    assert token_of(visit("not a token!")) != "not a token!"  # a malformed token is replaced


def test_two_visitors_never_see_each_others_runs(public):
    alice, bob = visit(), visit()
    for at in (alice, bob):
        train_tiny(at)
        board.get(at.session_state["gpt_job_id"]).wait(120)
        at.run()
        assert "Best val loss" in texts(at, "success")
    alices, bobs = list_runs(public, visitor=token_of(alice)), list_runs(public, visitor=token_of(bob))
    assert len(alices) == len(bobs) == 1 and alices[0].folder != bobs[0].folder
    for at, own, other in ((alice, alices[0], bobs[0]), (bob, bobs[0], alices[0])):
        at.run()
        offered = {choice.split(" ")[1] for choice in at.selectbox(key="gpt_model").options if choice.startswith("run ")}  # "run NAME (val loss ...)"
        assert own.name in offered and other.name not in offered  # whole names: two runs begun in one second are X-tiny and X-tiny-2
        assert set(at.dataframe[0].value["run"]) == {own.name}
        assert set(at.selectbox(key="gpt_download_run").options) == {own.name}
        sidebar = " ".join(caption.value for caption in at.sidebar.caption)
        assert "Training now" in sidebar and "GPT " not in sidebar  # counts, not whose


def test_a_full_server_queues_the_next_visitor_then_runs_their_job(public):
    alice, bob = train_tiny(visit(), max_iters=5000), visit()
    alices_job = board.get(alice.session_state["gpt_job_id"])
    train_tiny(bob)
    bobs_job = board.get(bob.session_state["gpt_job_id"])
    assert bobs_job.state is JobState.QUEUED
    assert "Waiting for a free slot" in texts(bob, "markdown") and "place 1 in the queue" in texts(bob, "markdown")
    assert bob.button(key="gpt_stop").label == "Cancel"
    alice.button(key="gpt_stop").click().run()
    assert alices_job.wait(60) is JobState.STOPPED
    assert bobs_job.wait(120) is JobState.DONE
    bob.run()
    assert "Best val loss" in texts(bob, "success")


def test_cancel_takes_a_job_out_of_the_queue(public):
    alice, bob = train_tiny(visit(), max_iters=5000), visit()
    train_tiny(bob)
    bobs_job = board.get(bob.session_state["gpt_job_id"])
    bob.button(key="gpt_stop").click().run()
    assert bobs_job.state is JobState.CANCELLED
    assert "Cancelled before it started" in texts(bob, "markdown") and not bob.button(key="gpt_train").disabled
    alice.button(key="gpt_stop").click().run()


def test_a_reload_finds_the_running_job_with_its_stop_button(public):
    first = train_tiny(visit(), max_iters=5000)
    job = board.get(first.session_state["gpt_job_id"])
    reloaded = visit(token_of(first))  # a new session: what a reload or a second tab is
    assert reloaded.session_state["gpt_job_id"] == job.id
    assert reloaded.button(key="gpt_train").disabled
    reloaded.button(key="gpt_stop").click().run()
    assert job.wait(60) is JobState.STOPPED
    reloaded.run()
    assert "stopped at iteration" in texts(reloaded, "success")
    stranger = visit()
    assert "gpt_job_id" not in stranger.session_state and not [button for button in stranger.button if button.key == "gpt_stop"]


def test_a_run_longer_than_a_public_servers_limit_is_refused_beside_the_settings(public, monkeypatch):
    monkeypatch.setenv("DLLAB_GPT_MAX_ITERS", "300")
    at = visit()
    paste_tiny(at, max_iters=301)
    assert "max_iters (301) is above this shared server's limit of 300 (DLLAB_GPT_MAX_ITERS)" in texts(at, "error")
    assert at.button(key="gpt_train").disabled
    at.number_input(key="gpt_max_iters").set_value(300).run()
    assert not at.button(key="gpt_train").disabled
