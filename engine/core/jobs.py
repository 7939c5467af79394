"""The training contract: a Reporter that a loop talks to, and Jobs that run loops in the background.

Every training loop in the engine has the shape `train(config, data, report) -> result`. The loop
calls `report.metric`, `report.snapshot` and `report.progress`, and checks `report.stop_requested`
between steps; it never knows who is listening. Three listeners exist:

- `ConsoleReporter` for the CLI (a tqdm bar and a log line every so often),
- `JobReporter`, thread-safe, owned by a `Job` that a page reads from,
- `SilentReporter` for tests, which simply records.

A `Job` runs a loop in a worker thread. The worker never touches Streamlit: it writes to the
job's state under a lock and the page reads a consistent copy with `Job.view()`. The process-wide
`board` caps how many jobs run at once (`DLLAB_MAX_JOBS`, default 2) so that a shared server stays
responsive, and says so plainly when it is full.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from engine.core import settings
from engine.core.errors import BusyError, LabError


class Reporter(Protocol):
    stop_requested: bool

    def metric(self, step: int, **values: float) -> None: ...

    def snapshot(self, name: str, value: Any) -> None: ...

    def progress(self, done: int, total: int) -> None: ...


class SilentReporter:
    """Records everything and prints nothing. `stop_after` requests a stop after that many metric rows."""

    def __init__(self, stop_after: int | None = None):
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
        if isinstance(value, str):
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
    def ctrl_c_stops(self):
        """While inside, the first Ctrl-C asks the loop to stop cleanly (it keeps what it has); a second one interrupts."""

        def request_stop(signum, frame):
            print("\nstopping after this step (Ctrl-C again to interrupt)", file=self.stream)
            self.stop_requested = True
            signal.signal(signal.SIGINT, signal.default_int_handler)

        previous = signal.signal(signal.SIGINT, request_stop)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.STOPPED, JobState.FAILED)


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


class JobReporter:
    """The Reporter a Job hands to its loop. Every write holds the job's lock."""

    def __init__(self, job: "Job"):
        self._job = job

    @property
    def stop_requested(self) -> bool:
        return self._job._stop.is_set()

    def metric(self, step: int, **values: float) -> None:
        row = {"step": step, **{k: float(v) for k, v in values.items()}}
        with self._job._lock:
            self._job._metrics.append(row)

    def snapshot(self, name: str, value: Any) -> None:
        with self._job._lock:
            self._job._snapshots[name] = value

    def progress(self, done: int, total: int) -> None:
        with self._job._lock:
            self._job._done, self._job._total = done, total


_ids = itertools.count(1)


@dataclass(eq=False)
class Job:
    """One training loop, run in a daemon thread. `run(report)` is the loop; its return value is the result."""

    name: str
    run: Callable[[Reporter], Any]
    id: str = field(default_factory=lambda: f"job-{next(_ids)}")

    def __post_init__(self):
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._state = JobState.QUEUED
        self._metrics: list[dict[str, float]] = []
        self._snapshots: dict[str, Any] = {}
        self._done = 0
        self._total = 0
        self._error: str | None = None
        self._result: Any = None
        self._started = 0.0
        self._finished = 0.0
        self._thread = threading.Thread(target=self._work, name=self.id, daemon=True)

    def start(self) -> "Job":
        self._started = time.perf_counter()
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
            self._finished = time.perf_counter()

    def stop(self) -> None:
        """Ask the loop to end at its next check; it keeps what it has and returns."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> JobState:
        self._thread.join(timeout)
        return self.view().state

    @property
    def state(self) -> JobState:
        with self._lock:
            return self._state

    def view(self) -> JobView:
        with self._lock:
            end = self._finished if self._state.finished else time.perf_counter()
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
            )


class JobBoard:
    """All jobs of this process. At most `max_running` run at once; the next one is refused, plainly."""

    def __init__(self, max_running: int | None = None):
        self.max_running = max_running or settings.max_jobs()
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}

    def submit(self, name: str, run: Callable[[Reporter], Any]) -> Job:
        with self._lock:
            running = [job for job in self._jobs.values() if not job.state.finished]
            if len(running) >= self.max_running:
                names = ", ".join(job.name for job in running)
                raise BusyError(
                    f"The server is busy: {len(running)} trainings are running ({names}) and the limit "
                    f"is {self.max_running}. Try again when one finishes, or stop one of yours."
                )
            job = Job(name, run)
            self._jobs[job.id] = job
            return job.start()

    def get(self, job_id: str | None) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id) if job_id else None

    def running(self) -> list[Job]:
        with self._lock:
            return [job for job in self._jobs.values() if not job.state.finished]


board = JobBoard()
