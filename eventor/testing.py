"""
Helpers for testing flows: capture the events Eventor logs, as dicts.

    with capture_events() as events:
        Etl(store=":memory:").run()
    assert [e["step"] for e in events if e["event"] == "step_succeeded"] == ["extract", ...]
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

__all__ = ["capture_events"]


class _Capture(logging.Handler):
    def __init__(self, into: list[dict[str, Any]]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "eventor_event", None)
        if fields is not None:
            self.into.append({**fields, "level": record.levelname.lower()})


@contextlib.contextmanager
def capture_events(level: int = logging.DEBUG) -> Iterator[list[dict[str, Any]]]:
    """
    Collect every event Eventor logs in this process while the block runs.

    Each is a dict: ``event`` (``step_started``, ``step_succeeded``, ...), its fields
    (``step``, ``sequence``, ``result``, ...), the run's ``flow``, ``run_id`` and ``attempt``,
    and ``level``. Events logged in worker processes are not captured.
    """
    events: list[dict[str, Any]] = []
    handler = _Capture(events)
    root = logging.getLogger("eventor")
    saved = root.level
    root.addHandler(handler)
    root.setLevel(min(level, saved) if saved else level)
    try:
        yield events
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)
