import threading

import pytest

from engine.core.errors import ConfigError
from engine.core.jobs import ConsoleReporter, JobBoard, JobState, SilentReporter


def counting_loop(steps, gate=None):
    def run(report):
        for step in range(1, steps + 1):
            if gate is not None:
                gate.wait(5)
            report.metric(step, loss=1.0 / step)
            report.snapshot("latest", step)
            report.progress(step, steps)
            if report.stop_requested:
                break
        return step

    return run


def test_job_runs_to_done_and_keeps_history():
    job = JobBoard(max_running=1).submit("count", counting_loop(5))
    assert job.wait(5) is JobState.DONE
    view = job.view()
    assert [row["step"] for row in view.metrics] == [1, 2, 3, 4, 5]
    assert view.snapshots["latest"] == 5 and (view.done, view.total) == (5, 5)
    assert view.result == 5 and view.error is None


def test_stop_ends_the_loop_and_keeps_its_result():
    gate = threading.Event()
    job = JobBoard(max_running=1).submit("count", counting_loop(1000, gate))
    job.stop()
    gate.set()
    assert job.wait(5) is JobState.STOPPED
    assert job.view().result == 1


def test_a_lab_error_is_shown_as_its_message():
    def run(report):
        raise ConfigError("hidden_size must be between 1 and 400, got 0.")

    job = JobBoard().submit("bad", run)
    assert job.wait(5) is JobState.FAILED
    assert job.view().error == "hidden_size must be between 1 and 400, got 0."


def test_a_bug_is_reported_with_its_type(capsys):
    job = JobBoard().submit("buggy", lambda report: 1 / 0)
    assert job.wait(5) is JobState.FAILED
    assert job.view().error.startswith("ZeroDivisionError")


def test_the_board_queues_beyond_its_cap_and_starts_the_next_when_a_slot_frees():
    gate = threading.Event()
    board = JobBoard(max_running=1)
    first = board.submit("first", counting_loop(3, gate))
    second = board.submit("second", counting_loop(3))
    assert second.state is JobState.QUEUED
    assert board.place(second)[0] == 1
    assert board.view(second).queue_place == 1 and board.view(second).wait_seconds > 0
    gate.set()
    assert first.wait(5) is JobState.DONE
    assert second.wait(5) is JobState.DONE
    assert board.place(second) is None


def test_cancel_leaves_the_queue_without_running():
    gate = threading.Event()
    board = JobBoard(max_running=1)
    first = board.submit("first", counting_loop(3, gate), owner="a")
    second, third = board.submit("second", counting_loop(3), owner="b"), board.submit("third", counting_loop(3), owner="c")
    assert board.place(third)[0] == 2
    second.stop()
    assert second.state is JobState.CANCELLED and second.view().metrics == []
    assert board.place(third)[0] == 1
    gate.set()
    assert third.wait(5) is JobState.DONE and second.view().metrics == []
    first.wait(5)


def test_the_queue_is_fair_a_visitor_with_a_job_running_waits_behind_one_without():
    gate = threading.Event()
    board = JobBoard(max_running=2)
    busy = [board.submit(f"a{n}", counting_loop(2, gate), owner="alice") for n in range(2)]
    alices_third = board.submit("a3", counting_loop(1), owner="alice")
    bobs_first = board.submit("b1", counting_loop(1), owner="bob")
    assert board.queue_order() == [bobs_first, alices_third]
    gate.set()
    for job in busy + [alices_third, bobs_first]:
        assert job.wait(5) is JobState.DONE


def test_the_wait_estimate_follows_the_running_jobs_progress():
    release = threading.Event()

    def half_done(report):
        report.progress(0, 100)  # where it starts (a resumed run would start further on)
        report.progress(50, 100)
        release.wait(5)

    board = JobBoard(max_running=1)
    running = board.submit("running", half_done)
    while running.view().done != 50:
        threading.Event().wait(0.01)
    waiting = board.submit("waiting", counting_loop(1), expected_seconds=10)
    after = board.submit("after", counting_loop(1))
    place, seconds = board.place(waiting)
    place_after, seconds_after = board.place(after)
    assert place == 1 and place_after == 2
    assert seconds == pytest.approx(running.running_seconds(), rel=0.5, abs=0.2)  # half done: as long again
    assert seconds_after == pytest.approx(seconds + 10, abs=0.5)
    release.set()
    after.wait(5)


def test_a_job_nobody_watches_is_stopped_and_keeps_its_result():
    board = JobBoard(max_running=1, idle_limit=0.2)
    job = board.submit("unwatched", counting_loop(10_000_000))
    assert job.wait(10) is JobState.STOPPED
    view = job.view()
    assert view.result is not None and view.result < 10_000_000
    assert "nobody had watched it" in view.stop_reason


def test_a_watched_job_is_not_stopped_for_idleness():
    gate = threading.Event()
    board = JobBoard(max_running=1, idle_limit=0.5)
    job = board.submit("watched", counting_loop(2, gate))
    for _ in range(15):
        job.watched()
        threading.Event().wait(0.1)
    assert job.state is JobState.RUNNING
    gate.set()
    assert job.wait(5) is JobState.DONE


def test_a_job_past_the_time_limit_is_stopped():
    board = JobBoard(max_running=1, time_limit=0.2)
    job = board.submit("long", counting_loop(10_000_000))
    assert job.wait(10) is JobState.STOPPED
    assert "limit of" in job.view().stop_reason


def test_latest_finds_a_visitors_job_on_a_page_and_no_one_elses():
    board = JobBoard(max_running=2)
    mine = board.submit("mine", counting_loop(1), owner="me", page="gpt")
    board.submit("theirs", counting_loop(1), owner="them", page="gpt")
    assert board.latest("me", "gpt") is mine
    assert board.latest("me", "ddpm") is None and board.latest("nobody", "gpt") is None


def test_silent_reporter_requests_a_stop_after_n_rows():
    report = SilentReporter(stop_after=2)
    counting_loop(10)(report)
    assert len(report.metrics) == 2 and report.stop_requested


def test_console_reporter_logs_every_n_steps(capsys):
    import io

    stream = io.StringIO()
    report = ConsoleReporter("test", log_every=2, stream=stream)
    counting_loop(4)(report)
    report.close()
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("step")]
    assert len(lines) == 2 and "loss 0.5" in lines[0]


def test_the_wait_estimate_never_exceeds_the_time_limit():
    gate = threading.Event()
    board = JobBoard(max_running=1, time_limit=30.0)
    running = board.submit("long", counting_loop(2, gate), expected_seconds=4000)
    waiting = board.submit("next", counting_loop(1), expected_seconds=4000)
    last = board.submit("last", counting_loop(1))
    assert board.place(waiting)[1] <= 30.0
    assert board.place(last)[1] <= 60.0
    gate.set()
    for job in (running, waiting, last):
        job.wait(5)


def test_a_resumed_jobs_pace_counts_only_what_it_did_itself():
    release = threading.Event()

    def resumed(report):
        report.progress(900, 1000)  # resumed near its end
        report.progress(950, 1000)
        release.wait(5)

    job = JobBoard(max_running=1).submit("resumed", resumed)
    while job.view().done != 950:
        threading.Event().wait(0.01)
    view = job.view()
    assert view.first_done == 900
    assert job.remaining_seconds() == pytest.approx(view.seconds, rel=0.5, abs=0.2)  # 50 done, 50 to go: as long again
    release.set()
    job.wait(5)
