import threading
import time

import pytest

from engine.core.cache import BackgroundResults


def wait_for(results: BackgroundResults, key, compute, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while (value := results.poll(key, compute)) is None:
        assert time.monotonic() < deadline, "the background computation never finished"
        time.sleep(0.01)
    return value


def settle(results: BackgroundResults, key, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while results.running(key):
        assert time.monotonic() < deadline, "the background computation never finished"
        time.sleep(0.01)


def test_the_first_poll_answers_at_once_and_the_value_comes_later():
    release = threading.Event()
    results = BackgroundResults(keep_seconds=60)

    def slow():
        release.wait(5)
        return 42

    started = time.monotonic()
    assert results.poll("speed", slow) is None
    assert time.monotonic() - started < 0.5  # the page did not wait for it
    assert results.running("speed")
    release.set()
    assert wait_for(results, "speed", slow) == 42
    assert not results.running("speed")


def test_many_pollers_start_one_computation():
    calls = []
    gate = threading.Event()

    def counted():
        calls.append(1)
        gate.wait(5)
        return "done"

    results = BackgroundResults(keep_seconds=60)
    for _ in range(20):
        results.poll("key", counted)
    gate.set()
    assert wait_for(results, "key", counted) == "done"
    assert len(calls) == 1


def test_an_error_is_answered_to_the_page_and_tried_again_once_stale():
    now = [0.0]
    attempts = []

    def failing_then_working():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("no device")
        return 7

    results = BackgroundResults(keep_seconds=10, clock=lambda: now[0])
    results.poll("k", failing_then_working)
    settle(results, "k")
    with pytest.raises(RuntimeError, match="no device"):
        results.poll("k", failing_then_working)
    now[0] = 11.0  # stale: computed again in the background
    with pytest.raises(RuntimeError):
        results.poll("k", failing_then_working)
    settle(results, "k")
    assert results.poll("k", failing_then_working) == 7


def test_a_stale_value_is_still_answered_while_it_is_computed_afresh():
    now = [0.0]
    values = iter([1, 2])
    gate = threading.Event()

    def next_value():
        value = next(values)
        if value == 2:
            gate.wait(5)
        return value

    results = BackgroundResults(keep_seconds=10, clock=lambda: now[0])
    assert wait_for(results, "k", next_value) == 1
    now[0] = 11.0
    assert results.poll("k", next_value) == 1  # the old value, while the new one is computed
    assert results.running("k")
    gate.set()
    settle(results, "k")
    assert results.poll("k", next_value) == 2
