"""
Time as the engine sees it: wall-clock seconds, and a way to wait for an inbox until a deadline.

The engine never sleeps by itself: it waits on its inbox of task outcomes, bounded by the
earliest due delay. `MockClock` lets tests run a six-hour delay in milliseconds.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Protocol

EMPTY = object()  # what `wait` returns when the deadline passed with nothing in the inbox


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (stored with triggers, tasks and delays)."""
        ...

    def wait(self, inbox: queue.SimpleQueue[Any], deadline: float | None) -> Any:
        """The next inbox item, or `EMPTY` once ``deadline`` (a `now()` value) has passed."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def wait(self, inbox: queue.SimpleQueue[Any], deadline: float | None) -> Any:
        try:
            if deadline is None:
                return inbox.get()
            return inbox.get(timeout=max(0.0, deadline - time.time()))
        except queue.Empty:
            return EMPTY


class MockClock:
    """
    A clock that tests move by hand, or that jumps to the next deadline when the engine idles.

    With ``autojump`` (the default), a wait with a deadline first gives real work
    ``autojump_threshold`` seconds to report, then jumps the clock to the deadline, so a
    delay of hours passes at once while running tasks still get to finish for real.
    """

    def __init__(self, start: float = 1_800_000_000.0, *, autojump: bool = True,
                 autojump_threshold: float = 0.05) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.autojump = autojump
        self.autojump_threshold = autojump_threshold

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def wait(self, inbox: queue.SimpleQueue[Any], deadline: float | None) -> Any:
        if deadline is None:
            return inbox.get()
        if deadline <= self.now():
            try:
                return inbox.get_nowait()
            except queue.Empty:
                return EMPTY
        try:
            return inbox.get(timeout=self.autojump_threshold)
        except queue.Empty:
            if self.autojump:
                with self._lock:
                    self._now = max(self._now, deadline)
            return EMPTY
