"""A small process-wide cache that, unlike Streamlit's, lets the computation it guards draw progress on the page."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Hashable


class BoundedCache:
    """The `size` most recently used results, by key. Two callers asking for the same missing key compute it once:
    the second waits for the first (a lock per key), so a classroom opening a page at once costs one computation."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._guard:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._guard:
                if key in self._items:
                    return self._items[key]
            try:
                value = compute()  # an exception leaves nothing cached, so the next call tries again
            except BaseException:
                with self._guard:
                    self._locks.pop(key, None)
                raise
            with self._guard:
                self._items[key] = value
                self._items.move_to_end(key)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
                self._locks.pop(key, None)
            return value


class BackgroundResults:
    """Results computed in a thread of their own, once per key per server, for a page that must not wait for them:
    `poll` starts the computation the first time a key is asked for and answers None until it is done, then the
    value (kept for `keep_seconds`, then computed afresh in the background while the old value is still answered).
    A computation that raised answers its exception, re-raised, until `keep_seconds` have passed."""

    def __init__(self, keep_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.keep_seconds = keep_seconds
        self._clock = clock
        self._done: dict[Hashable, tuple[float, Any, BaseException | None]] = {}  # key -> (when, value, error)
        self._running: set[Hashable] = set()
        self._guard = threading.Lock()

    def poll(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._guard:
            done = self._done.get(key)
            stale = done is None or self._clock() - done[0] > self.keep_seconds
            if stale and key not in self._running:
                self._running.add(key)
                # daemon=False said outright, or it inherits a Streamlit script thread's daemon flag: a daemon still
                # running torch as the interpreter exits aborts the process ("terminate called without an active
                # exception"); exit waits for these few seconds instead
                threading.Thread(target=self._compute, args=(key, compute), name=f"background {key}", daemon=False).start()
        if done is None:
            return None
        _, value, error = done
        if error is not None:
            raise error
        return value

    def running(self, key: Hashable) -> bool:
        with self._guard:
            return key in self._running

    def _compute(self, key: Hashable, compute: Callable[[], Any]) -> None:
        value, error = None, None
        try:
            value = compute()
        except Exception as raised:  # kept for the page to show; the thread itself has no one to tell
            error = raised
        with self._guard:
            self._done[key] = (self._clock(), value, error)
            self._running.discard(key)
