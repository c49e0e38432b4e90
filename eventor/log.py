"""
Structured logging: the engine logs events (``step_started``, ``step_succeeded``, ...) with
structlog; a renderer turns them into Eventor 5.1's bracketed lines on standard logging
handlers, so steps in child processes and user handlers share one stream.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

__all__ = ["CONSOLE_FORMAT", "make_logger", "render_message"]

CONSOLE_FORMAT = "[ %(asctime)s ][ %(levelname)s ][ %(message)s ][ %(name)s ]"

_SENTENCES = {
    "step_started": "Running step {step}[{sequence}]",
    "step_succeeded": "Step completed {step}[{sequence}], status: success, result {result}",
    "step_failed": "Step completed {step}[{sequence}], status: failure, {error}",
    "run_started": "Eventor store: {store}, run {run_id} attempt {attempt}",
    "run_finished": "Processing finished with: {status}",
    "step_skipped": "Skipping step {step}[{sequence}]: it was {was} ({reason})",
    "step_rerun": "Rerunning step {step}[{sequence}]: it was {was} ({reason})",
    "zombie_attempt": "Attempt {attempt} of run {run_id} was left running by an engine that "
                      "died (pid {pid}); its ready and active tasks count as active",
    "code_changed": "Steps changed since run {run_id} was recorded: {steps}",
    "run_picked": "Picked run {run_id}, the latest of {runs} runs of {program}",
    "step_gone": "Step {step}[{sequence}] is no longer in the flow; it is left as recorded",
}


def render_message(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """The seed's sentence for known events; other events as ``event key=value ...``."""
    event = event_dict.pop("event", "")
    template = _SENTENCES.get(event)
    if template is not None:
        try:
            return template.format(**event_dict)
        except (KeyError, IndexError):
            pass
    extra = " ".join(f"{k}={v!r}" for k, v in event_dict.items())
    return f"{event} {extra}".rstrip()


def _level(value: Any) -> int:
    if isinstance(value, int):
        return value
    level = logging.getLevelName(str(value).upper())
    return level if isinstance(level, int) else logging.INFO


def make_logger(name: str, settings: Mapping[str, Any] | None = None) -> Any:
    """
    A structlog logger for one Eventor, writing to the stdlib logger ``eventor.{name}``.

    Unless ``LOGGING.console`` is false, the ``eventor`` logger gets one console handler
    with the bracketed format (added once per process).
    """
    settings = settings or {}
    level = _level(settings.get("logging_level", logging.INFO))
    root = logging.getLogger("eventor")
    root.setLevel(level)
    if settings.get("console", True) and not any(
        getattr(h, "_eventor_console", False) for h in root.handlers
    ):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))
        handler._eventor_console = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    return structlog.wrap_logger(
        logging.getLogger(f"eventor.{name}"),
        processors=[render_message],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
