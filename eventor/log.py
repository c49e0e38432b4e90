"""
Structured logging: the engine logs events (``step_started``, ``step_succeeded``, ...) as
structlog does, bound to the flow, run and attempt; a renderer turns them into Eventor 5.1's
bracketed lines (or JSON lines) on standard logging handlers, so steps in child processes
and user handlers share one stream.

    [ 2026-11-28 10:07:48,612 ][ host ][ 4242 ][ INFO ][ Running step s1[1] ][ engine._submit ]

Handlers write each record with one ``write`` on a file opened for appending, so the
lines of several processes (the engine and its workers) never interleave, and nothing a
worker logged is lost when it exits.

The engine's events go through `EventLogger`, which is structlog's filtering bound logger
in the few lines the engine needs (bind, a method per level, one renderer). It is not
structlog's own, because ``import structlog`` loads its development console and, when it
is installed, rich: 70 ms of a plain run's start for nothing the run prints. A step's
``ctx.log`` is a real structlog logger, imported when a step first asks for it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import socket
import sys
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

__all__ = [
    "CONSOLE_FORMAT",
    "CONTEXT_KEYS",
    "AtomicFileHandler",
    "AtomicStreamHandler",
    "EventLogger",
    "close_run_log",
    "make_logger",
    "null_logger",
    "open_run_log",
    "render_json",
    "render_message",
]

CONSOLE_FORMAT = (
    "[ %(asctime)s ][ %(hostname)s ][ %(process)d ][ %(levelname)s ][ %(message)s ]"
    "[ %(module)s.%(funcName)s ]"
)
CONTEXT_KEYS = ("flow", "run_id", "attempt")  # bound to every event of a run

_SENTENCES = {
    "step_started": "Running step {step}[{sequence}]",
    "step_succeeded": "Step completed {step}[{sequence}], status: success, result {result}",
    "step_failed": "Step completed {step}[{sequence}], status: failure, {error}",
    "run_started": "Eventor store: {store}, run {run_id} attempt {attempt}",
    "run_finished": "Processing finished with: {status}",
    "step_skipped": "Skipping step {step}[{sequence}]: it was {was} ({reason})",
    "step_rerun": "Rerunning step {step}[{sequence}]: it was {was} ({reason})",
    "step_retry": "Step {step}[{sequence}] failed try {attempt} of {of}, retrying in {delay}s: {error}",
    "step_abandoned": "Step {step}[{sequence}] timed out in a thread, which cannot be stopped",
    "zombie_attempt": "Attempt {attempt} of run {run_id} was left running by an engine that "
                      "died (pid {pid}); its ready and active tasks count as active",
    "code_changed": "Steps changed since run {run_id} was recorded: {steps}",
    "run_picked": "Picked run {run_id}, the latest of {runs} runs of {program}",
    "entry_events": "Starting sequence {sequence} with every event nothing in the flow fires: "
                    "{events}; mark the one meant with Event(entry=True), or declare the "
                    "others in the emits= of the steps that ctx.trigger them",
    "undeclared_trigger": "Step {step}[{sequence}] triggered {fired}, which it does not "
                          "declare: add it to emits= (undeclared, it is also an entry event "
                          "that starts the flow in sequence 0)",
    "child_already_started": "Sequence {sequence} had already fired {fired}, so the one "
                             "triggered from sequence {parent} is not its child: give every "
                             "child a sequence name of its own in the run",
    "params_changed": "Parameters differ from those run {run_id} recorded: {changed}",
    "run_not_recorded": "Run {run_id} to recover was never recorded in {store} (its engine "
                        "stopped before its first write): starting it as its first attempt",
    "step_gone": "Step {step}[{sequence}] is no longer in the flow; it is left as recorded",
    "run_resumed": "Taking up interrupted run {run_id}: attempt {interrupted_attempt} (pid {pid} "
                   "on {host}) died; recovering it as attempt {attempt}",
    "run_taken": "Run {run_id} was taken up by another program first: {why}",
    "no_interrupted_run": "No interrupted run of {program} ({flow}) to take up: starting a new run",
    "interrupted_runs_left": "Left {runs} interrupted run(s) of {program} with other parameters "
                             "({which}); recover them with: eventor recover FLOW --interrupted",
    "schedule_started": "Schedule {schedule}: {when}",
    "slot_started": "Slot {slot} of {schedule}: run {run_id}",
    "slot_finished": "Slot run {run_id} of {schedule} ended: {status}",
    "slot_taken": "Slot {slot} of {schedule} was claimed by another scheduler",
    "slot_run_interrupted": "Run {run_id} of a slot of {schedule} was left interrupted by a "
                            "scheduler that died: recovering it",
    "slot_never_started": "Slot run {run_id} of {schedule} was claimed by a scheduler that died "
                          "before starting it: starting it now",
    "schedule_stopping": "Stopping schedule {schedule} once the running slot has finished ({why})",
    "schedule_stopped": "Schedule {schedule} stopped ({why})",
    "schedule_interrupted": "Schedule {schedule} interrupted during run {run_id}: a scheduler "
                            "started again recovers it",
}

# The stdlib record of an event should point at the code that logged it:
# the caller -> EventLogger's level method -> EventLogger._emit -> logging.
_STACKLEVEL = 3

Renderer = Callable[[Any, str, MutableMapping[str, Any]], tuple[tuple[Any, ...], dict[str, Any]]]


def _at(level: int) -> Callable[..., None]:
    """``EventLogger``'s method for one level: ``log.info("step_started", step="s1")``."""

    def method(self: EventLogger, event: str, **values: Any) -> None:
        if level >= self._level:
            self._emit(level, event, values)

    method.__name__ = logging.getLevelName(level).lower()
    return method


class EventLogger:
    """
    Structured events for a stdlib logger: ``log.info("step_started", step="s1")``.

    Bound values (`bind`) go with every event. Levels below the logger's least level cost
    a call and nothing else. The renderer has structlog's processor signature, ``(logger,
    method, event_dict)``, and returns the stdlib call's ``(args, kwargs)``.
    """

    __slots__ = ("_context", "_level", "_logger", "_render")

    def __init__(self, logger: logging.Logger | None, render: Renderer, level: int,
                 context: Mapping[str, Any] | None = None) -> None:
        self._logger = logger
        self._render = render
        self._level = level if logger is not None else logging.CRITICAL + 1
        self._context = dict(context or {})

    def bind(self, **values: Any) -> EventLogger:
        """A logger that adds ``values`` to every event (this one is unchanged)."""
        return EventLogger(self._logger, self._render, self._level, {**self._context, **values})

    def enabled_for(self, level: int) -> bool:
        """True when events at ``level`` are logged: a caller may skip making their values."""
        return level >= self._level

    def log(self, level: int, event: str, **values: Any) -> None:
        """Log ``event`` at ``level`` (a `logging` level number)."""
        if level >= self._level:
            self._emit(level, event, values)

    def _emit(self, level: int, event: str, values: dict[str, Any]) -> None:
        assert self._logger is not None
        event_dict = {**self._context, **values, "event": event}
        args, kwargs = self._render(self._logger, logging.getLevelName(level).lower(), event_dict)
        self._logger.log(level, *args, **kwargs)

    debug = _at(logging.DEBUG)
    info = _at(logging.INFO)
    warning = _at(logging.WARNING)
    error = _at(logging.ERROR)
    critical = _at(logging.CRITICAL)


def render_message(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """The seed's sentence for known events; other events as ``event key=value ...``."""
    event = event_dict.pop("event", "")
    template = _SENTENCES.get(event)
    text = None
    if template is not None:
        with contextlib.suppress(KeyError, IndexError):
            text = template.format(**event_dict)
    if text is None:
        extra = " ".join(f"{k}={v!r}" for k, v in event_dict.items() if k not in CONTEXT_KEYS)
        text = f"{event} {extra}".rstrip()
    event_dict["event"] = event  # the dict is ours to keep: eventor.testing reads it
    return (text,), {"stacklevel": _STACKLEVEL, "extra": {"eventor_event": event_dict}}


def render_json(_logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """The event as one JSON object (the record's time, host and process are added later)."""
    return ((json.dumps(dict(event_dict), default=str),),
            {"stacklevel": _STACKLEVEL, "extra": {"eventor_event": event_dict}})


class _HostFilter(logging.Filter):
    """Adds ``%(hostname)s`` to every record (a record relayed from a step on another host
    keeps that host's name)."""

    hostname = socket.gethostname()

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "hostname"):
            record.hostname = self.hostname
        return True


class _LevelFormatter(logging.Formatter):
    """A format per level (``LOGGING.level_formats``), else the default one."""

    def __init__(self, fmt: str, level_formats: Mapping[str, str] | None = None) -> None:
        super().__init__(fmt)
        self._by_level = {
            logging.getLevelName(str(k).upper()): logging.Formatter(v)
            for k, v in (level_formats or {}).items()
        }

    def format(self, record: logging.LogRecord) -> str:
        formatter = self._by_level.get(record.levelno)
        return formatter.format(record) if formatter is not None else super().format(record)


class _JsonFormatter(logging.Formatter):
    """A JSON line: the event's fields plus time, host, process, level and logger."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "eventor_fields", None)  # a step's ctx.log: its own fields
        if isinstance(fields, dict):
            data = dict(fields)
        else:
            try:
                data = json.loads(record.getMessage())
                if not isinstance(data, dict):
                    data = {"event": data}
            except ValueError:  # a plain stdlib record (a step's own logger)
                data = {"event": record.getMessage()}
        data.update(time=self.formatTime(record), host=getattr(record, "hostname", ""),
                    process=record.process, level=record.levelname, logger=record.name)
        return json.dumps(data, default=str)


class _AtomicWrites:
    """Write each formatted record with one ``os.write`` (whole lines, however many writers)."""

    def _write_record(self, stream: Any, text: str) -> bool:
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            return False
        stream.flush()
        data = (text + "\n").encode(getattr(stream, "encoding", None) or "utf-8", "replace")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return True


class AtomicStreamHandler(_AtomicWrites, logging.StreamHandler):
    """A console handler whose records never interleave with another process's."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if not self._write_record(self.stream, self.format(record)):
                super().emit(record)
        except Exception:
            self.handleError(record)


class _Console(AtomicStreamHandler):
    """
    The console: whatever ``sys.stderr`` is when a record is written (a test runner or a
    program may replace it), for the flows whose ``LOGGING.console`` is not false.
    """

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # always sys.stderr


class _QuietFlows(logging.Filter):
    """Drops the records of flows (``eventor.{flow}...``) made with ``console: false``."""

    def __init__(self) -> None:
        super().__init__()
        self.flows: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if not self.flows or not name.startswith("eventor."):
            return True
        flow = max((f for f in _flow_names if name == f"eventor.{f}"
                    or name.startswith(f"eventor.{f}.")), key=len, default=None)
        return flow not in self.flows  # the longest flow name it is under (names may hold dots)


_quiet_flows = _QuietFlows()
_flow_names: set[str] = set()  # every flow a logger was made for, quiet or not


class AtomicFileHandler(_AtomicWrites, logging.FileHandler):
    """A log file opened for appending, written one whole record at a time."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.stream is None:
                self.stream = self._open()
            if not self._write_record(self.stream, self.format(record)):
                super().emit(record)
        except Exception:
            self.handleError(record)


def _level(value: Any) -> int:
    if isinstance(value, int):
        return value
    level = logging.getLevelName(str(value).upper())
    return level if isinstance(level, int) else logging.INFO


def _formatter(settings: Mapping[str, Any]) -> logging.Formatter:
    if settings.get("renderer") == "json":
        return _JsonFormatter()
    return _LevelFormatter(CONSOLE_FORMAT, settings.get("level_formats"))


def null_logger() -> EventLogger:
    """A logger that drops every event (an engine's, when it is given none)."""
    return EventLogger(None, render_message, logging.CRITICAL + 1)


class _ConsoleChoice(logging.Filter):
    """
    What the command line asked the console to show: its least level, and whether the
    engine's own step lines (``Running step ...``, ``Step completed ...``) are shown below
    WARNING. Steps' own log lines are not the engine's: they follow the level alone.
    """

    level: int = logging.NOTSET
    engine_lines: bool = True

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return False
        return (self.engine_lines or record.levelno >= logging.WARNING
                or not hasattr(record, "eventor_event"))


_console_choice = _ConsoleChoice()


def set_console_level(level: int | None, *, engine_lines: bool = True) -> None:
    """
    The least level the console shows, whatever the config's ``logging_level`` (None: the
    config decides), and whether it shows the engine's own step lines below WARNING. Run
    log files are not affected.
    """
    _console_choice.level = level or logging.NOTSET
    _console_choice.engine_lines = engine_lines


def make_logger(name: str, settings: Mapping[str, Any] | None = None) -> EventLogger:
    """
    The event logger for one flow, writing to the stdlib logger ``eventor.{name}``.

    The ``eventor`` logger has one console handler (added once per process); it leaves out
    the records of a flow whose ``LOGGING.console`` is false, as its latest logger was
    made. ``LOGGING.renderer: json`` writes JSON lines instead of the bracketed format;
    ``level_formats`` gives some levels their own format.
    """
    settings = settings or {}
    _flow_names.add(name)
    if settings.get("console", True):
        _quiet_flows.flows.discard(name)
    else:
        _quiet_flows.flows.add(name)
    level = _level(settings.get("logging_level", logging.INFO))
    if _console_choice.level and _console_choice.level < level:
        level = _console_choice.level  # --log-level DEBUG asks for more than the config
    root = logging.getLogger("eventor")
    root.setLevel(level)
    if settings.get("console", True) and not any(
        getattr(h, "_eventor_console", False) for h in root.handlers
    ):
        console = _Console()
        console.addFilter(_HostFilter())
        console.addFilter(_console_choice)
        console.addFilter(_quiet_flows)
        console._eventor_console = True  # type: ignore[attr-defined]
        root.addHandler(console)
    for handler in root.handlers:
        if getattr(handler, "_eventor_console", False):
            handler.setFormatter(_formatter(settings))
    if not any(isinstance(h, logging.NullHandler) for h in root.handlers):
        # With the console off and no handler of the program's, Python would print warnings
        # through its last-resort handler: "console: false" means nothing on the console.
        root.addHandler(logging.NullHandler())
    renderer = render_json if settings.get("renderer") == "json" else render_message
    return EventLogger(logging.getLogger(f"eventor.{name}"), renderer, level)


def open_run_log(name: str, run_id: str, settings: Mapping[str, Any] | None,
                 logdir: str | None = None) -> logging.Handler | None:
    """
    Start the run's log file, ``{logdir}/{file_prefix}{name}.{run_id}{file_suffix}``, when
    a ``logdir`` is configured (``LOGGING.logdir`` or the top-level ``logdir``).

    The handler is attached to ``eventor.{name}``, so the engine's events and the steps'
    loggers (``eventor.{name}.{step}``) reach it, from worker processes too. Rotation
    follows ``maxBytes``/``backupCount`` or ``when``/``interval``/``utc``.

    Returns:
        The handler (close it with `close_run_log`), or None without a ``logdir``.
    """
    settings = settings or {}
    folder = settings.get("logdir") or logdir
    if not folder:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    prefix, suffix = settings.get("file_prefix", ""), settings.get("file_suffix", ".log")
    path = Path(folder) / f"{prefix}{name}.{run_id}{suffix}"
    mode, encoding = settings.get("file_mode", "a"), settings.get("encoding", "utf-8")
    handler: logging.Handler
    if settings.get("maxBytes"):
        handler = logging.handlers.RotatingFileHandler(
            path, mode=mode, maxBytes=settings["maxBytes"],
            backupCount=settings.get("backupCount", 0), encoding=encoding)
    elif settings.get("when"):
        handler = logging.handlers.TimedRotatingFileHandler(
            path, when=settings["when"], interval=settings.get("interval", 1),
            backupCount=settings.get("backupCount", 0), encoding=encoding,
            utc=settings.get("utc", False))
    else:
        handler = AtomicFileHandler(path, mode=mode, encoding=encoding)
    handler.addFilter(_HostFilter())
    handler.setFormatter(_formatter(settings))
    logging.getLogger(f"eventor.{name}").addHandler(handler)
    return handler


def close_run_log(name: str, handler: logging.Handler | None) -> None:
    """Detach and close a handler from `open_run_log`."""
    if handler is not None:
        logging.getLogger(f"eventor.{name}").removeHandler(handler)
        handler.close()
