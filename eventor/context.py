"""
What a step sees while it runs (`StepContext`) and what a run returns (`RunResult`).

A step function that takes a ``ctx`` argument is wrapped in a `StepCall`, which builds the
context from the task the executor is running: the same in the engine's thread, in a worker
thread, and in a worker process. Results travel as the store keeps them, ``(kind, text)``,
and are decoded only when read.
"""

from __future__ import annotations

import base64
import inspect
import json
import logging
import pickle
import types
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from eventor.exceptions import EventorUsageError, ResultNotStoredError, did_you_mean
from eventor.executors.base import FORK_LOCK, StoredResult, TaskRun, TriggerRequest, current_task

__all__ = ["RunResult", "StepCall", "StepContext", "TaskResult", "decode_result"]


def decode_result(step: str, kind: str | None, text: str | None, *, allow_pickle: bool = False) -> Any:
    """
    A stored result as the value the step returned.

    Raises:
        ResultNotStoredError: when only the value's repr was stored, or it is a pickle and
            ``allow_pickle`` is false.
    """
    if kind is None or text is None:
        return None
    if kind == "json":
        return json.loads(text)
    if kind == "pickle":
        if not allow_pickle:
            raise ResultNotStoredError(
                f"step {step!r} stored its result as a pickle, and reading a pickle runs code; "
                "only a flow with pickle_results=True reads them.", step=step,
            )
        return pickle.loads(base64.b64decode(text))
    raise ResultNotStoredError(
        f"step {step!r} returned a value that is not JSON-serializable, so only its repr was "
        f"stored: {text[:200]}. Return JSON data (dict, list, str, number, bool, None), or set "
        "pickle_results=True on the flow to store pickles.", step=step,
    )


class Results(Mapping[str, Any]):
    """
    Earlier steps' results in one sequence, by step name, decoded when read; for a step on a
    join event, `each` reads its children's.
    """

    __slots__ = ("_allow_pickle", "_children", "_sequence", "_stored")

    def __init__(self, stored: Mapping[str, tuple[str, str]], sequence: str, allow_pickle: bool,
                 children: Mapping[str, Mapping[str, tuple[str, str]]] | None = None):
        self._stored = stored
        self._sequence = sequence
        self._allow_pickle = allow_pickle
        self._children = children

    def each(self, step: str) -> dict[str, Any]:
        """
        ``step``'s result in every child sequence of this one, by child sequence: what a step
        on a join event reads (``ctx.results.each("load")``). Children where ``step`` did
        not succeed, or returned None, are left out.

        Raises:
            EventorUsageError: this step is not on a join event, so it has no children here.
        """
        if self._children is None:
            raise EventorUsageError(
                f"results.each({step!r}) in sequence {self._sequence!r}: only a step on a join "
                "event (evr.join(...)) reads its children's results")
        return {child: decode_result(step, *stored[step], allow_pickle=self._allow_pickle)
                for child, stored in self._children.items() if step in stored}

    def __getitem__(self, step: str) -> Any:
        stored = self._stored.get(step)
        if stored is None:
            have = ", ".join(map(repr, self._stored)) or "none"
            raise KeyError(
                f"no result from step {step!r} in sequence {self._sequence!r}: it has not "
                f"succeeded here yet, or returned None (steps with results: {have})"
            )
        return decode_result(step, *stored, allow_pickle=self._allow_pickle)

    def __iter__(self) -> Iterator[str]:
        return iter(self._stored)

    def __len__(self) -> int:
        return len(self._stored)

    def __repr__(self) -> str:
        return f"<Results of sequence {self._sequence!r}: {', '.join(self._stored) or 'none'}>"


class StepContext:
    """
    The running task, as a step sees it: ``def load(self, ctx): ctx.results["extract"]``.

    Attributes:
        run_id: the run's id in the store.
        sequence: the sequence this task runs in.
        recovery: the attempt number of the run (0 for the first run, more in recoveries).
        step: the step's name.
        results: earlier steps' results in this sequence, by step name (read-only).
    """

    __slots__ = ("_emit", "_events", "_flow_name", "_key", "_log", "_logger_name", "recovery",
                 "results", "run_id", "sequence", "step")

    def __init__(self, task: TaskRun, emit: Callable[[Any], None] | None, *, flow_name: str,
                 events: frozenset[str] | None, allow_pickle: bool) -> None:
        self.run_id = task.run_id
        self.sequence = task.sequence
        self.recovery = task.recovery
        self.step = task.step
        self.results: Results = Results(task.results or {}, task.sequence, allow_pickle,
                                        task.children)
        self._key = task.key
        self._emit = emit
        self._events = events
        self._flow_name = flow_name
        self._logger_name = next(
            (v for k, v in task.env.items() if k.endswith("LOGGER_NAME")), f"eventor.{flow_name}"
        )
        self._log: Any = None

    @property
    def log(self) -> Any:
        """A structlog logger bound to the flow, run, step and sequence."""
        if self._log is None:
            structlog = _structlog()
            self._log = structlog.wrap_logger(
                logging.getLogger(self._logger_name),
                wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
                processors=[_render],
            ).bind(flow=self._flow_name, run_id=self.run_id, step=self.step, sequence=self.sequence)
        return self._log

    def trigger(self, event: Any, sequence: Any = None) -> None:
        """
        Fire ``event`` in ``sequence`` (default: this task's) as soon as the engine can.

        A new sequence starts an independent instance of the flow: this is how a step fans
        out over items or loops. The trigger is recorded before the engine acts on it.

        Args:
            event: The event: an `Event` of the flow, or its name.
            sequence: The sequence to fire it in; any value, used as its ``str``. None
                (the default) is this task's own sequence.

        Raises:
            EventorUsageError: the flow has no such event, or no engine is listening.
        """
        name = event if isinstance(event, str) else getattr(event, "name", None)
        if not isinstance(name, str):
            raise EventorUsageError(f"ctx.trigger({event!r}): give an event of the flow or its name")
        if self._events is not None and name not in self._events:
            raise EventorUsageError(
                f"ctx.trigger({name!r}): flow {self._flow_name!r} has no such event."
                + did_you_mean(name, self._events)
            )
        if self._emit is None:
            raise EventorUsageError("ctx.trigger() works only while the step runs under an engine")
        seq = self.sequence if sequence is None else str(sequence)
        self._emit(TriggerRequest(self._key, name, seq))

    def __repr__(self) -> str:
        return f"<StepContext {self.step}[{self.sequence}] run={self.run_id} attempt={self.recovery}>"


def _structlog() -> Any:
    """
    structlog, imported when a run first needs it: importing it loads its development
    console (and rich, when installed), which a run that never logs from a step does not use.
    """
    with FORK_LOCK:  # a worker forked in the middle of the import would hang on it
        import structlog
    return structlog


def _reads_log(func: Callable[..., Any]) -> bool:
    """Whether ``func``'s code, or a function defined in it, reads an attribute named ``log``."""
    code = getattr(inspect.unwrap(func), "__code__", None)
    codes = [code] if isinstance(code, types.CodeType) else []
    while codes:
        code = codes.pop()
        if "log" in code.co_names:
            return True
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return False


def _render(_logger: Any, _method: str, event_dict: Any) -> Any:
    """
    The event as one line, logged as if from the step's own function (its call site); its
    fields go with the record too, for the JSON renderer (``LOGGING.renderer: json``).
    """
    fields = dict(event_dict)
    event = event_dict.pop("event", "")
    context = " ".join(f"{k}={event_dict.pop(k)}" for k in ("step", "sequence")
                       if k in event_dict)
    event_dict.pop("flow", None)
    event_dict.pop("run_id", None)
    extra = " ".join(f"{k}={v!r}" for k, v in event_dict.items())
    text = " ".join(part for part in (event, extra, f"({context})" if context else "") if part)
    return (text,), {"stacklevel": 3,  # past structlog's two frames, to the step
                     "extra": {"eventor_fields": fields}}


class StepCall:
    """
    A step's function bound to its flow instance (for methods) and given a `StepContext`.

    The engine sees a plain callable; the step's spec says (``context=True``) that its
    tasks need the sequence's earlier results.
    """

    __slots__ = ("_flow", "_kept", "allow_pickle", "events", "flow_name", "func", "owner", "step",
                 "wants_ctx")

    def __init__(self, func: Callable[..., Any], *, flow: Any = None, wants_ctx: bool,
                 flow_name: str, events: frozenset[str] | None = None,
                 allow_pickle: bool = False, owner: type | None = None, step: str = "") -> None:
        self.func = func
        # A weak reference: the engine holds its steps, and must not keep the flow alive.
        self._flow = None if flow is None else weakref.ref(flow)
        self._kept: Any = None  # the flow itself, in a copy sent to another host
        self.wants_ctx = wants_ctx
        self.flow_name = flow_name
        self.events = events
        self.allow_pickle = allow_pickle
        self.owner = owner  # the Flow class, and
        self.step = step  # the step's name there: how a copy finds its function on another host
        if wants_ctx and _reads_log(func):
            # ctx.log, most likely: import structlog now, in the thread defining the flow,
            # so that the process workers forked for its run inherit it rather than each
            # importing it (70-130 ms); a step whose helper logs imports it when it asks.
            _structlog()

    def __reduce__(self) -> tuple[Any, ...]:
        """Sent to another host by reference: the flow class, the step's name, the flow's
        parameters (see `Flow.__reduce__`), never the function's code."""
        flow = self._flow() if self._flow is not None else None
        if self.owner is None:
            return (_rebuilt_call, (self.func, None, flow, self.wants_ctx, self.flow_name,
                                    self.events, self.allow_pickle))
        return (_rebuilt_call, (self.owner, self.step, flow, self.wants_ctx, self.flow_name,
                                self.events, self.allow_pickle))

    def __call__(self) -> Any:
        args: tuple[Any, ...] = ()
        if self._kept is not None:
            args = (self._kept,)
        elif self._flow is not None:
            flow = self._flow()
            if flow is None:
                raise EventorUsageError(f"step {self.func.__name__!r}: its flow object is gone")
            args = (flow,)
        if self.wants_ctx:
            current = current_task()
            if current is None:
                raise EventorUsageError(f"step {self.func.__name__!r} was called outside a run")
            task, emit = current
            ctx = StepContext(task, emit, flow_name=self.flow_name, events=self.events,
                              allow_pickle=self.allow_pickle)
            args = (*args, ctx)
        value = self.func(*args)
        if self.allow_pickle and value is not None:
            try:
                json.dumps(value)
            except (TypeError, ValueError, RecursionError):
                text = base64.b64encode(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
                return StoredResult("pickle", text.decode("ascii"))
        return value

    def __repr__(self) -> str:
        return f"<step {getattr(self.func, '__qualname__', self.func)!r}>"


def _rebuilt_call(func_or_owner: Any, step: str | None, flow: Any, wants_ctx: bool, flow_name: str,
                  events: frozenset[str] | None, allow_pickle: bool) -> StepCall:
    """A `StepCall` unpickled on another host, holding its flow (nothing else does there)."""
    func = func_or_owner
    owner = None
    if step is not None:  # a step of a Flow class: its function, found by the step's name
        owner, func = func_or_owner, func_or_owner._compiled().steps[step].func
    call = StepCall(func, wants_ctx=wants_ctx, flow_name=flow_name, events=events,
                    allow_pickle=allow_pickle, owner=owner, step=step or "")
    call._kept = flow
    return call


@dataclass(frozen=True, slots=True)
class TaskResult:
    """
    One task of a run: its step, sequence, final status, stored result and error.

    Attributes:
        step: The step's name.
        sequence: The sequence the task ran in.
        status: Its status when the run returned: ``success`` or ``failure``, or
            ``ready`` or ``active`` for a task left for a later run.
        result_kind: How its result is stored: ``json``, ``pickle``, or ``repr`` (only
            the value's repr, which cannot be read back); None when it returned nothing.
        result_text: The stored result, in that form.
        error: ``"ErrorType: message"`` for a failed task, else None.
        allow_pickle: Whether `value` may read a pickled result (the flow's
            ``pickle_results``).
        skipped: Recovery kept the recovered attempt's outcome instead of running it.
        tries: Executions started: more than one when the step was retried, 0 when it
            never started (skipped by recovery, or still waiting).
    """

    step: str
    sequence: str
    status: str
    result_kind: str | None = None
    result_text: str | None = None
    error: str | None = None  # "ErrorType: message" for a failed task
    allow_pickle: bool = False
    skipped: bool = False  # recovery kept the recovered attempt's outcome instead of running it
    tries: int = 1  # executions (more than one when the step was retried)

    @property
    def value(self) -> Any:
        """The step's return value (decoded from the store's JSON, or its pickle)."""
        return decode_result(self.step, self.result_kind, self.result_text,
                             allow_pickle=self.allow_pickle)


class RunResult:
    """
    How a flow's run ended; truthy when no step failure went unhandled.

    ``result["extract"]`` is the return value of step ``extract`` when it ran in one
    sequence; ``result["extract", "2026-11-01"]`` picks the sequence.

    Attributes:
        summary: The engine's `RunSummary` of the run: its status, task counts, unhandled
            failures and pending work.
        tasks: Every task of the attempt, in the order they were triggered.
    """

    def __init__(self, summary: Any, tasks: tuple[TaskResult, ...]) -> None:
        self.summary = summary
        self.tasks = tasks

    @property
    def run_id(self) -> str:
        """The run's id in the store: what `Flow.recover` and ``eventor show`` take."""
        return str(self.summary.run_id)

    @property
    def attempt(self) -> int:
        """The attempt this run made (0 for a run's first) or, for a resume, continued."""
        return int(self.summary.attempt)

    @property
    def status(self) -> str:
        """``success``, ``failure``, or ``paused`` (work left for a later run)."""
        return str(self.summary.status)

    @property
    def statuses(self) -> dict[tuple[str, str], str]:
        """(step, sequence) -> final status of that task."""
        return {(t.step, t.sequence): t.status for t in self.tasks}

    @property
    def next_due(self) -> float | None:
        """When the earliest delay left pending is due (clock seconds), or None."""
        return self.summary.next_due

    @property
    def failed(self) -> tuple[tuple[str, str], ...]:
        """(step, sequence) of failures no failure/complete trigger handled."""
        return tuple(self.summary.failed)

    def __bool__(self) -> bool:
        return bool(self.summary)

    def task(self, step: str, sequence: Any = None) -> TaskResult:
        """
        The task of ``step`` (in ``sequence``; optional when it ran in one only).

        Args:
            step: The step's name.
            sequence: The sequence it ran in (compared as text); None when the step ran in
                one sequence only.

        Returns:
            The task, with its status, result and error.

        Raises:
            KeyError: the step did not run (in that sequence), or it ran in several
                sequences and none was given.
        """
        found = [t for t in self.tasks
                 if t.step == step and (sequence is None or t.sequence == str(sequence))]
        if len(found) == 1:
            return found[0]
        if not found:
            where = "" if sequence is None else f" in sequence {sequence!r}"
            ran = ", ".join(dict.fromkeys(t.step for t in self.tasks)) or "none"
            raise KeyError(f"step {step!r} did not run{where} (steps that ran: {ran})")
        seqs = ", ".join(repr(t.sequence) for t in found)
        raise KeyError(f"step {step!r} ran in several sequences ({seqs}); "
                       f"ask for one: result[{step!r}, sequence]")

    def __getitem__(self, key: str | tuple[str, Any]) -> Any:
        step, sequence = (key, None) if isinstance(key, str) else key
        return self.task(step, sequence).value

    def __repr__(self) -> str:
        return (f"RunResult(run_id={self.run_id!r}, status={self.status!r}, "
                f"tasks={len(self.tasks)}, failed={list(self.failed)!r})")
