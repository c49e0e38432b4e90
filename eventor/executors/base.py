"""
What an executor runs (`TaskRun`), what it reports back (`Outcome`), and the one-method interface.

An executor (a subclass of `Executor`) starts a task with ``submit(task, done)`` and returns
at once; when the task ends, it calls ``done(outcome)`` exactly once, from any thread. The
engine hands it a ``done`` that only puts the message in its inbox, so executors never touch
engine state.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

__all__ = [
    "FORK_LOCK",
    "Emit",
    "Executor",
    "Message",
    "Outcome",
    "Requeue",
    "StoredResult",
    "TaskRun",
    "TriggerRequest",
    "current_task",
    "failure",
    "install_task_environ",
    "install_task_streams",
    "output_tail",
    "qualified_names",
    "encode_result",
    "run_task",
    "safe_repr",
    "safe_str",
    "task_env",
]

REPR_LIMIT = 2000
OUTPUT_LIMIT = 64 * 1024  # bytes of a task's output kept: its end, where the errors are

# Held while a worker process is forked, and while a step first imports a module it needs
# (structlog, for ctx.log): a child forked in the middle of another thread's import would
# find that module's import lock held forever, and hang on its own first import of it.
FORK_LOCK = threading.Lock()
E = TypeVar("E", bound="Executor")


@dataclass(slots=True)
class TaskRun:
    """One task to run: a step's callable bound to a sequence of a run."""

    key: int  # the engine's handle for the task; echoed in the outcome
    run_id: str
    step: str
    sequence: str
    recovery: int
    func: Callable[..., Any] | None
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    env: Mapping[str, str]  # {prefix}STEP_NAME, ..._SEQUENCE, ..._RECOVERY, ..._LOGGER_NAME
    extra: Mapping[str, Any] | None = None  # keywords the engine adds (sequence_arg_name, logger)
    results: Mapping[str, tuple[str, str]] | None = None  # step -> (kind, text), for StepContext
    children: Mapping[str, Mapping[str, tuple[str, str]]] | None = None  # child seq -> results
    host: str | None = None  # the host the step runs on, for the ssh executor


@dataclass(slots=True)
class Outcome:
    """How a task ended. Everything in it is plain text or numbers, so it crosses processes."""

    key: int
    ok: bool
    result_kind: str | None = None  # "json" (result is JSON text) or "repr" (result is its repr)
    result: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    exit_code: int | None = None  # set when a process ended without reporting
    pid: int | None = None
    error_mro: tuple[str, ...] = ()  # "module.Class" of the exception and its bases
    host: str | None = None  # where it ran, when only the executor knows (a Dask worker)
    output: str | None = None  # what it printed (stdout and stderr), the last OUTPUT_LIMIT bytes


@dataclass(slots=True)
class TriggerRequest:
    """A running task asks the engine to fire ``event`` in ``sequence`` (`StepContext.trigger`)."""

    key: int  # the asking task
    event: str
    sequence: str


@dataclass(slots=True)
class Requeue:
    """An executor could not start ``task`` after all (its worker died unread): submit it again."""

    task: TaskRun


@dataclass(frozen=True, slots=True)
class StoredResult:
    """A result already encoded by the step's wrapper (a pickle the flow opted in to)."""

    kind: str
    text: str


Message = Outcome | TriggerRequest | Requeue  # what an executor reports to its engine
Emit = Callable[[Message], None]


class Executor:
    """
    A way to run tasks: in the engine, on a thread, in a child process, on another host.

    Subclasses implement `submit`; `cancel` and `close` have defaults (nothing to stop).
    Like an httpx transport, an executor is a context manager that closes on exit.
    """

    name: ClassVar[str] = ""  # the registry's name for it

    def submit(self, task: TaskRun, done: Emit) -> None:
        """
        Start ``task`` and return; call ``done`` once with its `Outcome` when it ends.

        Before that, ``done`` may also receive the task's `TriggerRequest`s, in the order the
        task made them, or a `Requeue` asking the engine to submit the task again. ``done``
        may be called from any thread.
        """
        raise NotImplementedError

    def cancel(self, key: int, grace: float) -> bool:
        """
        Stop the running task ``key`` (its timeout passed), waiting ``grace`` seconds for it
        to end before killing it. False when this executor cannot stop a task: the task then
        reports its end as usual, whenever that comes.
        """
        return False

    def close(self) -> None:
        """Stop everything this executor started; leave no thread or process behind."""

    def __enter__(self: E) -> E:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_current: ContextVar[tuple[TaskRun, Emit | None] | None] = ContextVar("eventor_task", default=None)


def current_task() -> tuple[TaskRun, Emit | None] | None:
    """The task running in this thread and how it reaches its engine, or None outside a task."""
    return _current.get()


def task_env() -> Mapping[str, str]:
    """
    The Eventor variables of the task running in this thread, e.g. ``EVENTOR_STEP_NAME``.

    Every step also finds them in ``os.environ`` (see `install_task_environ`).
    """
    current = _current.get()
    return dict(current[0].env) if current is not None else {}


class _TaskEnviron(os._Environ):
    """
    ``os.environ`` as a thread running a task sees it: the task's own Eventor variables win.

    Threads share one process environment, so two thread steps running at once cannot each
    have their ``EVENTOR_STEP_NAME`` there. This view adds the running task's variables (held
    per thread, like `current_task`) to every read: ``os.environ[...]``, ``os.getenv``,
    ``in``, iteration and ``copy()``. Writes go to the real environment, as always.
    """

    def __getitem__(self, key: str) -> str:
        current = _current.get()
        if current is not None:
            value = current[0].env.get(key)
            if value is not None:
                return value
        return str(super().__getitem__(key))

    def __iter__(self) -> Iterator[str]:
        current = _current.get()
        extra = dict(current[0].env) if current is not None else {}
        for key in super().__iter__():
            extra.pop(key, None)
            yield key
        yield from extra

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"environ({dict(self)!r})"


def install_task_environ() -> None:
    """
    Make ``os.environ`` (and so ``os.getenv``) show each thread's running task its own
    Eventor variables; done once per process, by the thread and invoke executors.

    A subprocess a thread step starts inherits the process's real environment, without the
    task's variables, unless it is given ``env=os.environ.copy()``, which has them. Code that
    did ``from os import environ`` before holds the plain mapping and sees none of them.
    """
    with _install_lock:
        real: Any = os.environ
        if not isinstance(real, _TaskEnviron):
            # The same data and encoders: only reads change (B003: nothing is cleared here).
            os.environ = _TaskEnviron(real._data, real.encodekey,  # noqa: B003
                                      real.decodekey, real.encodevalue, real.decodevalue)


_install_lock = threading.Lock()
_output: ContextVar[list[str] | None] = ContextVar("eventor_output", default=None)


def output_tail(data: bytes | str, total: int | None = None) -> str | None:
    """A task's output as stored: its last `OUTPUT_LIMIT` bytes, saying what was cut."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if not text:
        return None
    size = len(text.encode("utf-8", "replace")) if total is None else total
    if size > OUTPUT_LIMIT:
        text = text[-OUTPUT_LIMIT:]
        return f"[... {size - len(text)} bytes cut ...]\n{text}"
    return text


class _TaskStream:
    """
    ``sys.stdout`` or ``sys.stderr`` as a thread running a task sees it: what the task prints
    goes through to the real stream, and is kept for the task's `Outcome` as well.
    """

    def __init__(self, real: Any) -> None:
        self._real = real

    def write(self, text: str) -> int:
        kept = _output.get()
        if kept is not None:
            kept.append(text)
            if len(kept) > 4096:  # keep the tail, not every line of a chatty step
                joined = "".join(kept)[-2 * OUTPUT_LIMIT:]
                kept[:] = [joined]
        return int(self._real.write(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def install_task_streams() -> None:
    """Keep what each thread's task prints (Python's ``print`` and ``sys.stdout``/``stderr``
    writes; not what a subprocess or C code writes to the file descriptors)."""
    with _install_lock:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, _TaskStream):
                setattr(sys, name, _TaskStream(stream))


def encode_result(value: Any) -> tuple[str | None, str | None]:
    """
    A step's return value as stored: JSON when it serializes, else its (truncated) repr.

    Never raises: a value whose JSON encoding or ``repr`` fails is described by its type.
    """
    if value is None:
        return None, None
    if type(value) is StoredResult:  # not isinstance: a hostile __class__ must not raise here
        return value.kind, value.text
    try:
        return "json", json.dumps(value)
    except Exception:  # not JSON data (or a hostile __iter__, __eq__, ...): keep its repr
        text = safe_repr(value)
        return "repr", text if len(text) <= REPR_LIMIT else text[:REPR_LIMIT] + "..."


def safe_repr(value: Any) -> str:
    """``repr(value)``, or a description of the value when its ``repr`` raises."""
    try:
        return str(repr(value))
    except BaseException as exc:  # user code: anything, even SystemExit, must not escape
        return f"<{_type_name(value)} object; its repr() raised {_type_name(exc)}>"


def safe_str(exc: BaseException) -> str:
    """``str(exc)``, or a description of the exception when its ``str`` raises."""
    try:
        return str(exc)
    except BaseException as err:
        return f"<{_type_name(exc)}; its str() raised {_type_name(err)}>"


def _type_name(value: Any) -> str:
    try:
        return str(type(value).__qualname__)
    except BaseException:
        return "object"


def failure(key: int, exc: BaseException, pid: int | None = None) -> Outcome:
    """The outcome of a task that raised ``exc`` (being handled): never raises itself."""
    try:
        text = traceback.format_exc()
    except BaseException:
        text = None
    try:
        mro = qualified_names(type(exc))
    except BaseException:
        mro = ()
    return Outcome(key, False, error_type=_type_name(exc), error_message=safe_str(exc),
                   traceback=text, pid=pid, error_mro=mro)


def qualified_names(cls: type) -> tuple[str, ...]:
    """``module.Class`` of a class and its bases: how a failure is matched against ``retry_on``."""
    return tuple(f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__)


def run_task(task: TaskRun, pid: int | None = None, emit: Emit | None = None, *,
             keep_output: bool = False) -> Outcome:
    """
    Call the task's function here and now, and describe how it ended.

    ``emit`` carries the task's `TriggerRequest`s to the engine while it runs. Whatever the
    step returns or raises, an `Outcome` comes back: describing it never raises (only a
    `KeyboardInterrupt` passes through, for the engine's thread to stop on). With
    ``keep_output``, what the task prints through `install_task_streams` comes back too.
    """
    if task.func is None:
        return Outcome(task.key, True, pid=pid)
    token = _current.set((task, emit))
    kept: list[str] | None = [] if keep_output else None
    output_token = _output.set(kept)
    kwargs = {**task.kwargs, **task.extra} if task.extra else task.kwargs
    try:
        value = task.func(*task.args, **kwargs)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a step's SystemExit is its failure, not the engine's exit
        outcome = failure(task.key, exc, pid)
    else:
        kind, text = encode_result(value)
        outcome = Outcome(task.key, True, kind, text, pid=pid)
    finally:
        _current.reset(token)
        _output.reset(output_token)
    if kept:
        outcome.output = output_tail("".join(kept))
    return outcome
