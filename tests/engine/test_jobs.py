import threading

import pytest

from engine.core.errors import BusyError, ConfigError
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


def test_the_board_refuses_more_than_its_cap_plainly():
    gate = threading.Event()
    board = JobBoard(max_running=1)
    first = board.submit("first", counting_loop(3, gate))
    with pytest.raises(BusyError, match="busy.*first.*limit is 1"):
        board.submit("second", counting_loop(3))
    gate.set()
    first.wait(5)
    assert board.submit("third", counting_loop(1)).wait(5) is JobState.DONE


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
