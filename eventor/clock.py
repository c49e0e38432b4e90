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


class Inbox(Protocol):
    """What a clock waits on: a queue of messages (`queue.SimpleQueue`, or the engine's)."""

    def get(self, block: bool = ..., timeout: float | None = ...) -> Any:
        """The next message, waiting up to ``timeout`` seconds; `queue.Empty` if none came."""
        ...

    def get_nowait(self) -> Any:
        """The next message if there is one, else `queue.Empty`."""
        ...


EMPTY = object()  # what `wait` returns when the deadline passed with nothing in the inbox


class Clock(Protocol):
    """
    What the engine asks of a clock: the time, and a wait on its inbox bounded by a deadline.

    Any object with these two methods will do (pass it as ``clock=``); Eventor ships
    `SystemClock`, the default, and `MockClock` for tests.
    """

    def now(self) -> float:
        """Seconds since the epoch (stored with triggers, tasks and delays)."""
        ...

    def wait(self, inbox: Inbox, deadline: float | None) -> Any:
        """
        The next inbox item, or `EMPTY` once ``deadline`` (a `now()` value) has passed.

        Args:
            inbox: The engine's queue of task outcomes and requests.
            deadline: When to stop waiting, in this clock's seconds; None waits until an
                item arrives.

        Returns:
            The item taken from ``inbox``, or the module's ``EMPTY`` marker when the
            deadline passed with nothing there.
        """
        ...


class SystemClock:
    """
    The real clock: wall-clock time from `time.time`, and waits that really block.

    Runs use it when no ``clock=`` is given.
    """

    def now(self) -> float:
        """The current time, ``time.time()``: seconds since the epoch."""
        return time.time()

    def wait(self, inbox: Inbox, deadline: float | None) -> Any:
        """
        Block until an item arrives in ``inbox`` or ``deadline`` passes.

        Args:
            inbox: The engine's queue of task outcomes and requests.
            deadline: When to stop waiting, in `now` seconds; None waits until an item
                arrives. A deadline already past only takes an item that is there.

        Returns:
            The item taken from ``inbox``, or the module's ``EMPTY`` marker when the
            deadline passed with nothing there.
        """
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

    Args:
        start: The clock's time at first, in seconds since the epoch (default
            1,800,000,000: 2027-01-15 08:00 UTC).
        autojump: Jump to the deadline when a wait finds nothing in the inbox; when False,
            only `advance` moves the clock.
        autojump_threshold: Real seconds a wait with a future deadline waits for an item
            before it gives up (and, with ``autojump``, jumps).

    Attributes:
        autojump: Whether a wait that finds nothing jumps the clock; read at every wait,
            so it may be changed at any time.
        autojump_threshold: The real seconds a wait gives work to report; read at every
            wait, like ``autojump``.
    """

    def __init__(self, start: float = 1_800_000_000.0, *, autojump: bool = True,
                 autojump_threshold: float = 0.05) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.autojump = autojump
        self.autojump_threshold = autojump_threshold

    def now(self) -> float:
        """The clock's current time, in seconds since the epoch; it moves only when told."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """
        Move the clock forward.

        Args:
            seconds: How far; a negative number moves it back.
        """
        with self._lock:
            self._now += seconds

    def wait(self, inbox: Inbox, deadline: float | None) -> Any:
        """
        Take the next inbox item, jumping the clock instead of sleeping until ``deadline``.

        With no deadline it blocks until an item arrives. With a deadline already reached
        it takes an item only if one is there. Otherwise it waits up to
        ``autojump_threshold`` real seconds for an item; if none comes, it sets the clock to
        ``deadline`` (with ``autojump``) and returns ``EMPTY``.

        Args:
            inbox: The engine's queue of task outcomes and requests.
            deadline: When to stop waiting, in `now` seconds; None waits until an item
                arrives.

        Returns:
            The item taken from ``inbox``, or the module's ``EMPTY`` marker.
        """
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
