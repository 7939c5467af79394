"""The training contract: a Reporter that a loop talks to, and Jobs that run loops in the background.

Every training loop in the engine has the shape `train(config, data, report) -> result`. The loop
calls `report.metric`, `report.snapshot` and `report.progress`, and checks `report.stop_requested`
between steps; it never knows who is listening. Three listeners exist:

- `ConsoleReporter` for the CLI (a tqdm bar and a log line every so often),
- `JobReporter`, thread-safe, owned by a `Job` that a page reads from,
- `SilentReporter` for tests, which simply records.

A `Job` runs a loop in a worker thread. The worker never touches Streamlit: it writes to the
job's state under a lock and the page reads a consistent copy with `Job.view()`. The process-wide
`board` runs at most `DLLAB_MAX_JOBS` jobs at once (default 2) so that a shared server stays
responsive; the rest wait in a fair queue (the next to start is the oldest job of the visitor with
the fewest running), and each waiting job knows its place and an estimated wait. A job belongs to
the visitor who started it (`owner`, a random token, never a name). The board also stops a job that
has run past its time limit, or, in public mode, one that nobody has watched for a while (it keeps
what it has: the loops save when they stop, so it can be resumed).
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from engine.core import settings
from engine.core.errors import LabError


STOP_GRACE = 0.5  # seconds a loop may go on finishing its work after Stop (see StopDeadline)


class Reporter(Protocol):
    stop_requested: bool

    def metric(self, step: int, **values: float) -> None: ...

    def snapshot(self, name: str, value: Any) -> None: ...

    def progress(self, done: int, total: int) -> None: ...


class SilentReporter:
    """Records everything and prints nothing. `stop_after` requests a stop after that many metric rows;
    `stop_grace` is how long the loop may then finish what it is doing (see StopDeadline)."""

    def __init__(self, stop_after: int | None = None, stop_grace: float = STOP_GRACE):
        self.stop_grace = stop_grace
        self.metrics: list[dict[str, float]] = []
        self.snapshots: dict[str, Any] = {}
        self.done_total: tuple[int, int] = (0, 0)
        self.stop_after = stop_after
        self.stop_requested = False

    def metric(self, step: int, **values: float) -> None:
        self.metrics.append({"step": step, **values})
        if self.stop_after is not None and len(self.metrics) >= self.stop_after:
            self.stop_requested = True

    def snapshot(self, name: str, value: Any) -> None:
        self.snapshots[name] = value

    def progress(self, done: int, total: int) -> None:
        self.done_total = (done, total)


class ConsoleReporter:
    """A tqdm progress bar, and every `log_every` steps one line of metrics. Within `ctrl_c_stops()`, Ctrl-C requests a stop."""

    def __init__(self, description: str = "", log_every: int = 50, stream=None):
        self.description = description
        self.log_every = log_every
        self.stream = stream or sys.stderr
        self.stop_requested = False
        self._bar = None

    def metric(self, step: int, **values: float) -> None:
        if step % self.log_every == 0:
            line = f"step {step:>6}  " + "  ".join(f"{k} {v:.6g}" for k, v in values.items())
            if self._bar is not None:
                self._bar.write(line, file=self.stream)
            else:
                print(line, file=self.stream)

    def snapshot(self, name: str, value: Any) -> None:
        if isinstance(value, str) and name != "phase":  # phases change many times a second: the bar shows progress
            print(f"--- {name} ---\n{value}", file=self.stream)

    def progress(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=total, desc=self.description, file=self.stream, leave=True)
        self._bar.total = total
        self._bar.update(done - self._bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    @contextlib.contextmanager
    def ctrl_c_stops(self, again_interrupts: bool = True):
        """While inside, the first Ctrl-C asks the loop to stop cleanly (it keeps what it has); a second one interrupts,
        unless `again_interrupts` is False: under torchrun, whose agent passes the terminal's Ctrl-C on as a second
        SIGINT (and kills what has not ended 30 s later)."""

        def request_stop(signum, frame):
            if self.stop_requested:
                return
            print("\nstopping after this step" + (" (Ctrl-C again to interrupt)" if again_interrupts else ""), file=self.stream)
            self.stop_requested = True
            if again_interrupts:
                signal.signal(signal.SIGINT, signal.default_int_handler)

        previous = signal.signal(signal.SIGINT, request_stop)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


class StopDeadline:
    """Once a stop is requested, a loop has `grace` seconds to finish what it is doing (the CPU recipe's last
    evaluation fits); after that, long work in progress (an evaluation, a sample, a step of a big model) is
    abandoned, so Stop takes effect within about a second (bench/stop_latency.py).

    Loops also name their phase through `phase(text)` (a "phase" snapshot: "estimating the loss: 12 of 40
    batches"), so a person watching sees what is happening instead of a counter that does not move.
    A reporter may carry its own `stop_grace` (seconds): a test that needs a stopped run's last
    evaluation, however loaded the machine, gives it all the time it takes.
    """

    def __init__(self, report: Reporter, grace: float | None = None):
        self.report = report
        self.grace = grace if grace is not None else getattr(report, "stop_grace", STOP_GRACE)
        self._since: float | None = None

    def passed(self) -> bool:
        if not self.report.stop_requested:
            return False
        if self._since is None:  # from the press itself where the reporter knows it, else from now
            self._since = getattr(self.report, "stop_requested_at", None) or time.monotonic()
        return time.monotonic() - self._since > self.grace

    def phase(self, text: str) -> None:
        self.report.snapshot("phase", text)


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"
    CANCELLED = "cancelled"  # left the queue before it started

    @property
    def finished(self) -> bool:
        return self not in (JobState.QUEUED, JobState.RUNNING)


@dataclass(frozen=True)
class JobView:
    """A consistent copy of a job's state at one moment, safe to read without a lock."""

    id: str
    name: str
    state: JobState
    metrics: list[dict[str, float]]
    snapshots: dict[str, Any]
    done: int
    total: int
    error: str | None
    result: Any
    seconds: float
    stop_requested: bool
    info: dict[str, Any] = field(default_factory=dict)  # what the page that started it needs to draw it again
    stop_reason: str | None = None  # why the board stopped it, in words; None when the person did
    queue_place: int | None = None  # 1 for the next to start; None unless queued
    wait_seconds: float | None = None  # estimated time until it starts; None unless queued
    first_done: int = 0  # the progress it started from (a resumed run does not start at 0)


class JobReporter:
    """The Reporter a Job hands to its loop. Every write holds the job's lock."""

    def __init__(self, job: "Job"):
        self._job = job

    @property
    def stop_requested(self) -> bool:
        return self._job._stop.is_set()

    @property
    def stop_requested_at(self) -> float | None:
        """When Stop was pressed (time.monotonic), so a loop's grace counts from the press, not from when it looked."""
        return self._job._stop_time

    def metric(self, step: int, **values: float) -> None:
        row = {"step": step, **{k: float(v) for k, v in values.items()}}
        with self._job._lock:
            self._job._metrics.append(row)

    def snapshot(self, name: str, value: Any) -> None:
        with self._job._lock:
            self._job._snapshots[name] = value

    def progress(self, done: int, total: int) -> None:
        with self._job._lock:
            if self._job._first_done is None:
                self._job._first_done = done
            self._job._done, self._job._total = done, total


_ids = itertools.count(1)
FORGET_AFTER_SECONDS = 3600.0  # how long a finished job's result stays in memory for its page to show


@dataclass(eq=False)
class Job:
    """One training loop, run in a daemon thread. `run(report)` is the loop; its return value is the result.

    `owner` is the visitor's token, `page` the page that started it (its key prefix), `info` plain values
    that page needs to draw the job again after a reload, and `expected_seconds` its estimated length,
    from which the queue estimates waits.
    """

    name: str
    run: Callable[[Reporter], Any]
    owner: str = ""
    page: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    expected_seconds: float | None = None
    id: str = field(default_factory=lambda: f"job-{next(_ids)}")

    def __post_init__(self):
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._state = JobState.QUEUED
        self._metrics: list[dict[str, float]] = []
        self._snapshots: dict[str, Any] = {}
        self._done = 0
        self._total = 0
        self._first_done: int | None = None
        self._error: str | None = None
        self._result: Any = None
        self._submitted = time.monotonic()
        self._started = 0.0
        self._finished = 0.0
        self._watched = time.monotonic()
        self._stop_reason: str | None = None
        self._stop_time: float | None = None
        self._on_end: Callable[[Job], None] | None = None
        self._thread = threading.Thread(target=self._work, name=self.id, daemon=True)

    def start(self) -> "Job":
        with self._lock:
            if self._state is not JobState.QUEUED:
                return self
            self._started = time.monotonic()
            self._state = JobState.RUNNING
        self._thread.start()
        return self

    def _work(self) -> None:
        try:
            result = self.run(JobReporter(self))
        except LabError as error:
            self._finish(JobState.FAILED, error=str(error))
        except Exception as error:  # a bug: keep the traceback for whoever reads the server log
            traceback.print_exc()
            self._finish(JobState.FAILED, error=f"{type(error).__name__}: {error}")
        else:
            state = JobState.STOPPED if self._stop.is_set() else JobState.DONE
            self._finish(state, result=result)

    def _finish(self, state: JobState, result: Any = None, error: str | None = None) -> None:
        with self._lock:
            self._state, self._result, self._error = state, result, error
            self._finished = time.monotonic()
        self._ended.set()
        if self._on_end is not None:
            self._on_end(self)

    def stop(self, reason: str | None = None) -> None:
        """Ask the loop to end at its next check (it keeps what it has and returns); a queued job leaves the queue."""
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
            if self._stop_time is None:
                self._stop_time = time.monotonic()
            queued = self._state is JobState.QUEUED
        self._stop.set()
        if queued:
            self._finish(JobState.CANCELLED)

    def watched(self) -> None:
        """Someone is looking at this job now (its page drew it); in public mode an unwatched job is stopped."""
        with self._lock:
            self._watched = time.monotonic()

    def unwatched_seconds(self) -> float:
        with self._lock:
            return time.monotonic() - self._watched

    def running_seconds(self) -> float:
        with self._lock:
            return time.monotonic() - self._started if self._state is JobState.RUNNING else 0.0

    def wait(self, timeout: float | None = None) -> JobState:
        self._ended.wait(timeout)
        return self.state

    @property
    def state(self) -> JobState:
        with self._lock:
            return self._state

    def remaining_seconds(self) -> float:
        """How much longer it will probably run: from its progress so far, else from its expected length."""
        with self._lock:
            if self._state.finished:
                return 0.0
            elapsed = time.monotonic() - self._started if self._state is JobState.RUNNING else 0.0
            made = self._done - (self._first_done or 0)
            if self._state is JobState.RUNNING and made > 0 and self._total > 0:
                return elapsed * (self._total - self._done) / made
            expected = self.expected_seconds if self.expected_seconds is not None else 60.0
            return max(expected - elapsed, 1.0)

    def view(self, queue_place: int | None = None, wait_seconds: float | None = None) -> JobView:
        with self._lock:
            end = self._finished if self._state.finished else time.monotonic()
            return JobView(
                id=self.id,
                name=self.name,
                state=self._state,
                metrics=list(self._metrics),
                snapshots=dict(self._snapshots),
                done=self._done,
                total=self._total,
                error=self._error,
                result=self._result,
                seconds=end - self._started if self._started else 0.0,
                stop_requested=self._stop.is_set(),
                info=dict(self.info),
                stop_reason=self._stop_reason,
                queue_place=queue_place,
                wait_seconds=wait_seconds,
                first_done=self._first_done or 0,
            )


class JobBoard:
    """All jobs of this process. At most `max_running` run at once; the others wait in a fair queue.

    `time_limit` (seconds) stops a job that has run that long; `idle_limit` (seconds, or None) stops a
    job, running or waiting, that no page has drawn for that long. Both keep what the job has.
    """

    def __init__(self, max_running: int | None = None, time_limit: float | None = None, idle_limit: float | None = None):
        self.max_running = max_running or settings.max_jobs()
        self.time_limit = time_limit
        self.idle_limit = idle_limit
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._queue: list[Job] = []
        self._watchdog: threading.Thread | None = None

    def submit(self, name: str, run: Callable[[Reporter], Any], owner: str = "", page: str = "", info: dict | None = None,
               expected_seconds: float | None = None) -> Job:
        """A new job: started now if a slot is free, else queued. Never refused."""
        job = Job(name, run, owner=owner, page=page, info=dict(info or {}), expected_seconds=expected_seconds)
        job._on_end = self._job_ended
        with self._lock:
            self._forget_old()
            self._jobs[job.id] = job
            self._queue.append(job)
            self._start_waiting()
        self._ensure_watchdog()
        return job

    def _forget_old(self) -> None:
        """Drop finished jobs (and the results they hold) an hour after they ended, but each visitor's newest on each page."""
        newest = {(job.owner, job.page): job for job in sorted(self._jobs.values(), key=lambda job: job._submitted)}
        now = time.monotonic()
        for job in list(self._jobs.values()):
            if job.state.finished and now - job._finished > FORGET_AFTER_SECONDS and newest[(job.owner, job.page)] is not job:
                del self._jobs[job.id]

    def _job_ended(self, job: Job) -> None:
        with self._lock:
            if job in self._queue:
                self._queue.remove(job)
            self._start_waiting()

    def _start_waiting(self) -> None:
        """Fill free slots from the queue, fairly: the oldest job of the owner with the fewest running."""
        while self._queue and len(self.running()) < self.max_running:
            running_per_owner: dict[str, int] = {}
            for job in self.running():
                running_per_owner[job.owner] = running_per_owner.get(job.owner, 0) + 1
            nxt = min(self._queue, key=lambda job: (running_per_owner.get(job.owner, 0), job._submitted))
            self._queue.remove(nxt)
            nxt.start()

    def queue_order(self) -> list[Job]:
        """The waiting jobs in the order they would start if nothing else changed."""
        with self._lock:
            running_per_owner: dict[str, int] = {}
            for job in self.running():
                running_per_owner[job.owner] = running_per_owner.get(job.owner, 0) + 1
            waiting, order = list(self._queue), []
            while waiting:
                nxt = min(waiting, key=lambda job: (running_per_owner.get(job.owner, 0), job._submitted))
                waiting.remove(nxt)
                order.append(nxt)
                running_per_owner[nxt.owner] = running_per_owner.get(nxt.owner, 0) + 1
            return order

    def place(self, job: Job) -> tuple[int, float] | None:
        """A waiting job's place (1: next) and estimated seconds until it starts; None if it is not waiting.

        The estimate plays the queue forward: each slot frees when its job's remaining time runs out,
        and each job ahead takes the next free slot for its expected length.
        """
        with self._lock:
            order = self.queue_order()
            if job not in order:
                return None
            slots = sorted(self._capped(running.remaining_seconds(), running.running_seconds()) for running in self.running())
            slots += [0.0] * (self.max_running - len(slots))
            for ahead in order[: order.index(job)]:
                slots.sort()
                slots[0] += self._capped(ahead.remaining_seconds(), 0.0)
            return order.index(job) + 1, min(slots)

    def _capped(self, remaining: float, ran: float) -> float:
        """A job runs no longer than the board's time limit, whatever its own estimate says."""
        return remaining if self.time_limit is None else max(0.0, min(remaining, self.time_limit - ran))

    def view(self, job: Job) -> JobView:
        placed = self.place(job) if job.state is JobState.QUEUED else None
        return job.view(*placed) if placed else job.view()

    def get(self, job_id: str | None) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id) if job_id else None

    def all_jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def running(self) -> list[Job]:
        with self._lock:
            return [job for job in self._jobs.values() if job.state is JobState.RUNNING]

    def waiting(self) -> list[Job]:
        with self._lock:
            return [job for job in self._queue if job.state is JobState.QUEUED]

    def latest(self, owner: str, page: str) -> Job | None:
        """The newest job this visitor started from this page: what a reload of the page shows again."""
        with self._lock:
            mine = [job for job in self._jobs.values() if job.owner == owner and job.page == page]
            return max(mine, key=lambda job: job._submitted, default=None)

    def enforce_limits(self) -> None:
        """Stop the jobs past their time limit, and in public mode the ones nobody has watched for too long."""
        with self._lock:
            jobs = [job for job in self._jobs.values() if not job.state.finished]
        for job in jobs:
            if self.time_limit is not None and job.running_seconds() > self.time_limit:
                job.stop(f"it reached this server's limit of {self.time_limit / 60:g} minutes per training")
            elif self.idle_limit is not None and job.unwatched_seconds() > self.idle_limit:
                job.stop(f"nobody had watched it for {self.idle_limit / 60:g} minutes, so it gave its place to others")

    def _ensure_watchdog(self) -> None:
        if self.time_limit is None and self.idle_limit is None:
            return
        with self._lock:
            if self._watchdog is not None and self._watchdog.is_alive():
                return
            self._watchdog = threading.Thread(target=self._watch, name="job-watchdog", daemon=True)
            self._watchdog.start()

    def _watch(self) -> None:
        while True:
            time.sleep(1.0)
            self.enforce_limits()
            with self._lock:
                if all(job.state.finished for job in self._jobs.values()):
                    self._watchdog = None
                    return


def board_from_settings() -> JobBoard:
    """The board this server's settings describe: in public mode, jobs have a time limit and stop when unwatched."""
    if settings.public_mode():
        return JobBoard(settings.max_jobs(), time_limit=settings.job_seconds(), idle_limit=settings.idle_stop_seconds())
    return JobBoard(settings.max_jobs())


board = board_from_settings()
