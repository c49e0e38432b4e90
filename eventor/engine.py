"""
The scheduler: turns triggers into tasks, task outcomes into triggers, and records it all.

The engine works in rounds. A round takes every message waiting in the inbox (task
outcomes, ctx.trigger requests), expires what came due on its one timer heap (delays,
retries, timeouts), propagates the resulting triggers through associations and expression
events to a fixpoint, starts what may start, writes all of it to the store in one
transaction, and only then hands the started tasks to their executors. Between rounds it
blocks on the inbox until the next timer is due: nothing polls, nothing sleeps.

What the engine does not decide lives beside it: which run and attempt, and what recovery
skips (`eventor.recovery`); pools (`eventor.resources`); retry policies (`eventor.retries`);
the rows the store writes (`eventor.store.base`); how tasks run (`eventor.executors`).
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from eventor.clock import EMPTY, Clock, SystemClock
from eventor.enums import RunMode, StepReplay, StepStatus
from eventor.exceptions import (
    EventorConfigError,
    EventorUsageError,
    ResourceDeadlock,
    RunClaimedError,
    StepTimeout,
    did_you_mean,
)
from eventor.executors.base import (
    Executor,
    Message,
    Outcome,
    Requeue,
    TaskRun,
    TriggerRequest,
    qualified_names,
)
from eventor.executors.registry import CHECKS, REGISTRY, executor_name
from eventor.graph import FlowGraph, StepSpec, holds
from eventor.joins import Joins
from eventor.log import EventLogger, null_logger
from eventor.options import UNSET, EngineOptions, StepOptions
from eventor.ready import ReadyTasks
from eventor.recovery import (
    Continued,
    Recovered,
    claim_attempt,
    fingerprint,
    load_continued,
    load_recovered,
    note_code_changes,
    pick_attempt,
    replay,
)
from eventor.resources import Pools
from eventor.retries import RetryPolicy, plan_retries
from eventor.store.base import (
    Batch,
    DelayFired,
    DelayRecord,
    Store,
    TryRecord,
)
from eventor.timers import Timers

__all__ = ["Engine", "EngineOptions", "Origin", "RunSummary", "Task"]

DEFAULT_SEQUENCE = "0"
TIMEOUT_MRO = qualified_names(StepTimeout)
POOL_POLL = 0.1  # seconds between looks at pools another program holds
_LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1", socket.gethostname()})


@dataclass(frozen=True, slots=True)
class Origin:
    """
    What fired a trigger: the user, a task's status, an association, an expression, or a
    task's ``ctx.trigger``. Recorded as data with the trigger, and as text for people.
    """

    kind: str  # user, status, assoc, expr, trigger, join
    step: str | None = None  # the task's step (status, trigger)
    sequence: str | None = None  # the task's sequence (trigger)
    via: str | None = None  # the status (status), or the event (assoc, join)
    text: str = field(default="", compare=False)  # as people read it (the store's ``source``)

    def __post_init__(self) -> None:
        if not self.text:
            text = (f"{self.step}:{self.via}" if self.kind == "status"
                    else f"{self.kind}:{self.via}" if self.kind in ("assoc", "join")
                    else f"{self.step}[{self.sequence}]:trigger" if self.kind == "trigger"
                    else self.kind)
            object.__setattr__(self, "text", text)

    def __str__(self) -> str:
        return self.text


USER = Origin("user")
EXPR = Origin("expr")
_TEXT = {status: status.value for status in StepStatus}  # as stored, without .value per task
_STARTED, _CHANGED = 1, 2  # Task.dirty: written narrowly (a TaskStart), or all of it


@dataclass(frozen=True, slots=True)
class _DelayDue:
    """A delayed association's target, due in a sequence."""

    event: str
    target: str
    sequence: str


@dataclass(frozen=True, slots=True)
class _RetryDue:
    """A failed task, due to be tried again."""

    task: Task


@dataclass(frozen=True, slots=True)
class _TimeoutDue:
    """A try of a running task, due to be stopped."""

    key: int
    tries: int


@dataclass(slots=True, eq=False)
class Task:
    """A step triggered in a sequence, as the engine tracks it."""

    key: int
    step: StepSpec
    sequence: str
    executor: str
    status: StepStatus
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    host: str | None = None
    pid: int | None = None
    result_kind: str | None = None
    result: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    exit_code: int | None = None
    output: str | None = None  # the end of what it printed
    tries: int = 0  # executions started (a retried task runs more than once)
    persisted: bool = False  # inserted in the store
    dirty: int = 0  # changed since: _STARTED (only started) or _CHANGED; see Engine._touch


@dataclass(frozen=True)
class StepPlan:
    """How each step of a graph runs under an engine's options: see `plan_steps`."""

    options_of: dict[str, StepOptions]  # its options, resolved over the engine's defaults
    executor_of: dict[str, str]  # its executor's registry name
    retry_of: dict[str, RetryPolicy]  # how it is retried, when it may be
    timeout_of: dict[str, tuple[float, float]]  # its (timeout, grace), when it has one

    def sent(self, name: str) -> bool:
        """Whether step ``name`` is sent elsewhere to run (ssh, dask), so checked on its own."""
        return self.executor_of[name] in CHECKS


def plan_steps(steps: Mapping[str, StepSpec], options: EngineOptions) -> StepPlan:
    """
    How ``steps`` run under ``options``, checked as far as can be without running anything:
    each step's executor can run it (a host it names is known, its function can be sent
    there or to a Dask cluster, nothing stops an ``invoke`` step at a timeout), and only
    dask steps ask for worker resources. The engine plans its graph so when it is made; an
    `Eventor` checks each step as it is added, and a `Flow` object its steps when it is made.

    Raises:
        EventorConfigError: naming the step, the key, and what to change.
    """
    plain = options.for_step(UNSET)  # what most steps run with: resolved once
    options_of = {name: plain if step.options is UNSET else options.for_step(step.options)
                  for name, step in steps.items()}
    names: dict[Any, str] = {}  # executor as configured -> its registry name, checked once
    executor_of = {name: _executor_for(step, options_of[name], options, names)
                   for name, step in steps.items()}
    for name in steps:
        if options_of[name].worker_resources and executor_of[name] != "dask":
            raise EventorConfigError(
                f"step {name!r} sets worker_resources, which only the dask executor uses; "
                "run it with executor='dask' (config key task_construct), or drop them",
                key=f"step {name!r} config worker_resources")
    for executor, check in CHECKS.items():
        runs = [s for s in steps.values() if executor_of[s.name] == executor]
        if runs:
            check(runs, options)
    retry_of, timeout_of = plan_retries(options_of, executor_of)
    return StepPlan(options_of, executor_of, retry_of, timeout_of)


def _executor_for(step: StepSpec, resolved: StepOptions, options: EngineOptions,
                  names: dict[Any, str]) -> str:
    if step.func is None:
        return "invoke"
    if step.host is not None and (step.host in options.hosts or step.host not in _LOCAL_HOSTS):
        return "ssh"  # a host in HOSTS, or one that is not this
    executor = resolved.executor
    name = names.get(executor)
    if name is None:
        name = names[executor] = executor_name(
            executor, key=f"step {step.name!r} config task_construct")
    if name == "ssh":
        raise EventorConfigError(
            f"step {step.name!r} would run with the ssh executor, but names no host; give "
            "it host=... (a name in the config's HOSTS), which runs it there by itself",
            key=f"step {step.name!r} host")
    return name


@dataclass(frozen=True)
class RunSummary:
    """
    How a run (one call of `Engine.run`) ended; truthy when no failure went unhandled.

    The classic API keeps it as ``Eventor.summary`` after each ``run``; a flow's run wraps
    it in a `RunResult`.

    Attributes:
        run_id: The run's id in the store.
        attempt: The attempt this call ran: a new one (0 for a run's first, one more for
            each recovery), or the one it continued.
        status: ``failure`` when a failure went unhandled; else ``paused`` when work is
            left for a later run (``pending`` is not 0); else ``success``.
        counts: How many of the run's tasks ended in each status, by status name.
        failed: The ``(step, sequence)`` of every failure that no failure or complete
            trigger handled.
        pending: The work left for a later run: ready tasks, retries not yet due, delays
            not yet fired and joins still waiting for children.
        delays: The ``(target, sequence, due)`` of every delay not yet fired, earliest
            first; ``due`` is in clock seconds.
        joins: The ``(join, parent sequence, children that did not reach it)`` of every
            join event that did not fire.
    """

    run_id: str
    attempt: int
    status: str  # success, failure, or paused (work left: ready tasks or pending delays)
    counts: Mapping[str, int] = field(default_factory=dict)  # tasks per status
    failed: tuple[tuple[str, str], ...] = ()  # (step, sequence) of unhandled failures
    pending: int = 0  # ready tasks, delays and joins left for a later run
    delays: tuple[tuple[str, str, float], ...] = ()  # (target, sequence, due) not yet fired
    joins: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (join, parent, missing children)

    @property
    def next_due(self) -> float | None:
        """When the earliest pending delay is due (clock time), or None."""
        return min((due for _, _, due in self.delays), default=None)

    @property
    def ok(self) -> bool:
        """True when no failure went unhandled (``failed`` is empty), even if ``paused``."""
        return not self.failed

    def __bool__(self) -> bool:
        return self.ok


class Engine:
    """
    Runs one attempt of one run of a `FlowGraph`, recording everything in a `Store`.

    Args:
        graph: the validated flow.
        store: where the run is recorded.
        run_id: the run's identifier in the store.
        program: the program's name, recorded with the run.
        options: engine settings, with every step's defaults.
        clock: time source; tests pass a `MockClock`.
        log: an `EventLogger` (default: one that drops everything).
        executors: executors by name; missing ones come from the registry when first needed.
        mode: the attempt's run mode (recorded).
        logger_name: prefix of the logger names passed to steps.
        info: facts recorded with the run when it is created (e.g. the flow's parameters).
        attempt: with ``mode`` recover, the attempt to recover from; with continue, the
            attempt to continue (default: the latest).
        progress: called after every round with the counts of tasks ``done``, ``failed``,
            ``running`` and ``waiting`` (ready, retrying, or behind a delay); one call at a
            time, on the thread that ran the round (the engine's, or a thread step's).
        plan: what `plan_steps` made of ``graph`` under ``options``, when the caller has it.

    Raises:
        EventorConfigError: a step acquires an undeclared pool, has a timeout in the
            engine's thread, or runs on a host the config does not describe.
    """

    def __init__(
        self,
        graph: FlowGraph,
        store: Store,
        *,
        run_id: str,
        program: str = "eventor",
        options: EngineOptions | None = None,
        clock: Clock | None = None,
        log: EventLogger | None = None,
        executors: Mapping[str, Executor] | None = None,
        mode: RunMode = RunMode.restart,
        logger_name: str | None = None,
        info: Mapping[str, Any] | None = None,
        attempt: int | None = None,
        progress: Callable[[Mapping[str, int]], None] | None = None,
        plan: StepPlan | None = None,
    ) -> None:
        self.graph = graph
        self.store = store
        self.run_id = run_id
        self.program = program
        self.options = options or EngineOptions()
        self.clock: Clock = clock or SystemClock()
        self.log: EventLogger = log if log is not None else null_logger()
        self.mode = mode
        self.host = socket.gethostname()
        self.attempt: int | None = None
        self._attempt_no = -1  # the attempt, once opened
        self.info = {"flow": graph.name, **(info or {})}
        self._from_attempt = attempt
        self.expect_latest: int | None = None  # recover only while this is the latest attempt
        self._progress = progress
        self._done = self._failed = 0
        self._recovered: Recovered | None = None  # what the recovered attempt had
        self._logger_name = logger_name or f"eventor.{graph.name}"
        self._step_loggers: dict[str, str] = {}  # step -> the name of its tasks' logger
        self._executors: dict[str, Executor] = dict(executors or {})
        self._baton = threading.RLock()  # held by whoever runs a round: see _deliver
        self._inbox = _Inbox()
        self._in_run = False  # inside run(): a thread that finished a task may run a round
        self._inline_error: BaseException | None = None  # raised by a round run that way
        self._tasks: dict[tuple[str, str], Task] = {}
        self._running: dict[int, Task] = {}
        self._running_by_step: dict[str, int] = {}
        self._running_by_executor: dict[str, int] = {}
        self._capacity = self.options.capacity()  # tasks a bounded executor runs at once
        self._ready: ReadyTasks[Task] = ReadyTasks()
        self._fired: dict[str, set[str]] = {}
        self._pending: deque[tuple[str, str, Origin]] = deque()  # (event, sequence, origin)
        self._timers: Timers[_DelayDue | _RetryDue | _TimeoutDue] = Timers()
        self._held_delays: list[tuple[float, _DelayDue]] = []  # delays kept, not fired, once stopped
        self._failures: list[Task] = []
        self._refused: dict[int, str] = {}  # task key -> why its success does not count
        self._results: dict[str, dict[str, tuple[str, str]]] = {}  # sequence -> step -> stored
        self._result_order: dict[str, dict[str, int]] = {}  # sequence -> step -> when it was kept
        self._stopped = False
        self._closed = False
        self._keys = itertools.count(1)
        self._new: list[Task] = []
        self._starts: list[Task] = []  # started, nothing else changed: a narrow update
        self._dirty: list[Task] = []
        self._batch = Batch()
        prefix = self.options.envvar_prefix
        self._env_keys = tuple(f"{prefix}{k}" for k in
                               ("STEP_NAME", "STEP_SEQUENCE", "STEP_RECOVERY", "LOGGER_NAME"))
        self._exprs = {ev.name: ev.expr for ev in graph.events.values() if ev.expr is not None}
        if plan is None:
            plan = plan_steps(graph.steps, self.options)
        self._options_of: dict[str, StepOptions] = plan.options_of
        self._executor_of = plan.executor_of
        # Every step runs on threads, and no executor was given by the caller: a round may run
        # on a thread step's worker. Not with process steps (a worker is forked by the thread
        # that runs the flow, and inherits its state), nor invoke steps (they run in that thread).
        self._inline_ok = not executors and set(self._executor_of.values()) <= {"thread"}
        self._inline = False
        self._ran = False  # run() was called before: a later call resumes the attempt
        self._joins = Joins(graph)
        self._fanners = self._joins.fanners
        self._watched = self._joins.watched
        self._pools = Pools(graph, self.options.pools)
        self._pooled = frozenset(self._pools.wants) | frozenset(self._pools.releases)
        self._status_origins: dict[tuple[str, StepStatus], Origin] = {}
        self._assoc_origins: dict[str, Origin] = {}  # event -> the origin of what it reaches
        self._retry_of: dict[str, RetryPolicy] = plan.retry_of
        self._timeout_of = plan.timeout_of
        self._timed_out: dict[int, str] = {}  # key -> why, for tasks being stopped
        self._pool_wait = False  # ready tasks wait for leases: poll for other programs
        self._activated = False  # a task started in this pass fired its active trigger
        self._warned: set[tuple[str, str]] = set()  # (step, event) of undeclared ctx.triggers
        self._replays: dict[tuple[str, StepStatus], tuple[StepReplay, str]] = {}  # recovery's rules
        # A task's events are INFO: looked at once, not three times a task (bind keeps the level)
        self._log_tasks = self.log.enabled_for(logging.INFO)

    # -- public ------------------------------------------------------------------------

    def trigger(self, event: str, sequence: Any = None) -> None:
        """Fire ``event`` in ``sequence`` (default ``"0"``) at the next round."""
        if event not in self.graph.events:
            raise EventorUsageError(
                f"cannot trigger {event!r}: flow {self.graph.name!r} has no such event."
                + did_you_mean(event, self.graph.events)
            )
        if event in self._joins.names:
            raise EventorUsageError(
                f"cannot trigger {event!r}: it is a join, which fires once its children arrive")
        self._pending.append((event, DEFAULT_SEQUENCE if sequence is None else str(sequence), USER))

    def run(self, max_loops: int = -1) -> RunSummary:
        """
        Run until nothing is left to do, or for ``max_loops`` rounds.

        Returns when no trigger, task or timer is pending (or the bound is reached, after the
        running tasks finished and were recorded, or a bounded run has only delays left to
        wait for). Ready tasks that were not started and delays not yet due stay recorded
        for a later run or ``continue``.
        """
        if self._closed:
            raise EventorUsageError(f"run {self.run_id!r} is closed; create a new Eventor to run again")
        if self._ran:  # this attempt again: running, and by us (the store counts its rows anew)
            self.store.resume_attempt(self.run_id, self._attempt_no, now=self.clock.now(),
                                      host=self.host, pid=os.getpid())
        self.open()
        self._ran = True
        heartbeat = _Heartbeat(self.store, self.run_id, self._attempt_no,
                               self.options.heartbeat_interval, self.log)
        # Rounds may run on the thread that finished a task (no hop back to this one) when
        # every step runs on threads, on the real clock, with no bound on rounds.
        self._inline = max_loops <= 0 and type(self.clock) is SystemClock and self._inline_ok
        self._in_run = True
        try:
            return self._run(max_loops)
        finally:
            self._in_run = False  # first: a second Ctrl-C below must not leave it set
            with self._baton:  # and a round running on a worker finishes before run() returns
                pass
            heartbeat.stop()

    def _run(self, max_loops: int) -> RunSummary:
        loops = 0
        item: Message | object | None = None
        baton = self._baton
        while True:
            with baton:  # a round runs here, or on a thread that finished a task: one at a time
                self._raise_inline_error()
                self._round(item)
                loops += 1
                deadline = self._deadline()
                if (self._idle() or 0 < max_loops <= loops
                        or (max_loops > 0 and self._timers_alone(deadline))):
                    self._in_run = False  # no round runs on a worker from here on
                    break
            item = self._wait(deadline)
        while self._running:  # bounded run: let running tasks finish, start nothing new
            item = self.clock.wait(self._inbox, self._timers.next_of(_TimeoutDue))
            now = self.clock.now()
            for overdue in self._timers.expire_kind(_TimeoutDue, now):  # timeouts still hold
                assert isinstance(overdue, _TimeoutDue)
                self._stop_overdue(overdue, now)
            self._round(item, start=False, expire=False)
        summary = self._summary()
        assert self.attempt is not None
        if summary.status != "paused" and self._pools:  # a finished run holds nothing
            self.store.release_attempt(self.run_id, self.attempt, now=self.clock.now())
        self.store.end_attempt(self.run_id, self.attempt, summary.status, now=self.clock.now())
        self.log.info("run_finished", status=summary.status, run_id=self.run_id)
        return summary

    def _deliver(self, message: Message) -> None:
        """
        A thread step's messages: when no round is running and no other task runs, the thread
        that brings a task's outcome runs the round itself, rather than waking the engine's
        thread to do it (that hop cost as much as the round's commit: a chain of thread steps
        pays it at every step). One round at a time, in the order messages came: every
        message is taken from the inbox, and every round run, by the holder of the baton.
        The engine's thread is woken only when what it waits for changed.
        """
        inbox, baton = self._inbox, self._baton
        if not self._inline or not isinstance(message, Outcome):
            inbox.put(message)  # a step's ctx.trigger calls are taken together, as they come
            return
        inbox.put(message, wake=False)
        while inbox:
            if not baton.acquire(blocking=False):
                # another round runs, and may have looked at the inbox for the last time:
                # the engine's thread takes what is left, once that round is over
                inbox.wake()
                return
            try:
                if not self._in_run:
                    return  # run() returned: the messages wait for the next one
                if len(self._running) > 1:
                    # others will report soon: the engine's thread takes theirs with this one
                    # in one round (a round per outcome would cost a commit each)
                    inbox.wake()
                    return
                deadline, pool_wait = self._timers.next_deadline(), self._pool_wait
                try:
                    self._round(None)
                except BaseException as exc:  # the engine's thread raises it (the first one)
                    self._inline_error = self._inline_error or exc
                    inbox.wake()
                    return
                if (self._idle() or self._pool_wait != pool_wait
                        or self._timers.next_deadline() != deadline):
                    inbox.wake()  # what the engine's thread waits for changed
            finally:
                baton.release()

    def _raise_inline_error(self) -> None:
        error, self._inline_error = self._inline_error, None
        if error is not None:
            raise error

    def tasks(self) -> tuple[Task, ...]:
        """This attempt's tasks, in the order they were triggered."""
        return tuple(self._tasks.values())

    def stop_executors(self) -> None:
        """Stop the executors started so far (a later `run` starts them again when needed)."""
        executors, self._executors = self._executors, {}
        for executor in executors.values():
            executor.close()

    def close(self) -> None:
        """Stop every executor (killing child processes still running) and forget them."""
        if self._closed:
            return
        self._closed = True
        self.stop_executors()

    # -- attempts: restart, recover, continue ---------------------------------------------

    def open(self) -> int:
        """
        Begin this run's attempt in the store now, if not yet done (`run` does it first).

        A recovery's attempt is begun only while the attempt it recovers is still the run's
        latest, and a continue only takes an attempt no live engine runs.

        Returns:
            The attempt's number.

        Raises:
            RunClaimedError: another program runs the run, or began recovering it first.
        """
        if self.attempt is None:
            self._open_attempt()
        assert self.attempt is not None
        return self.attempt

    def _open_attempt(self) -> None:
        now, store, run_id = self.clock.now(), self.store, self.run_id
        if self.mode is RunMode.restart:
            info = dict(self.info)  # the graph's summary is kept by the store, not here
            info.setdefault("fingerprint", fingerprint(self.graph))
            info.setdefault("graph", self.graph.summary())
            self.attempt = store.begin_attempt(run_id, self.program, self.mode.value, now=now,
                                               host=self.host, pid=os.getpid(), info=info)
        elif self.mode is RunMode.recover:
            # The latest attempt is claimed (none may be running it), whichever one is recovered
            latest = pick_attempt(store, run_id, None)
            if self.expect_latest is not None and latest["attempt"] != self.expect_latest:
                raise RunClaimedError(
                    f"run {run_id!r} attempt {self.expect_latest} was taken up by another program "
                    f"first (its latest attempt is now {latest['attempt']}, {latest['status']})",
                    run_id=run_id)
            latest = claim_attempt(store, run_id, latest, now=now, log=self.log,
                                   grace=self.options.heartbeat_grace)
            prior = (latest if self._from_attempt in (None, latest["attempt"])
                     else pick_attempt(store, run_id, self._from_attempt))
            self.attempt = store.begin_attempt(run_id, self.program, self.mode.value, now=now,
                                               host=self.host, pid=os.getpid(), info=self.info,
                                               after=int(latest["attempt"]))
            self._recovered = load_recovered(store, run_id, prior)
            note_code_changes(store, run_id, self.graph, self.log)
        else:
            current = claim_attempt(store, run_id, pick_attempt(store, run_id, self._from_attempt),
                                    now=now, log=self.log, grace=self.options.heartbeat_grace)
            self.attempt = int(current["attempt"])
            self._pick_up(load_continued(store, run_id, self.attempt))
            store.resume_attempt(run_id, self.attempt, now=now, host=self.host, pid=os.getpid())
        self._attempt_no = self.attempt  # as an int, for the records of every round
        # every later event carries the run's context
        self.log = self.log.bind(flow=self.graph.name, run_id=run_id, attempt=self.attempt)
        self.log.info("run_started", store=store.address, run_id=run_id, attempt=self.attempt,
                      mode=self.mode.value)

    def _pick_up(self, state: Continued) -> None:
        """Rebuild the engine's state from the attempt being continued."""
        steps = self.graph.steps
        for seq, events in state.fired.items():
            self._fired[seq] = set(events)
        for row in state.tasks:
            step = steps.get(row["step"])
            if step is None:
                self.log.warning("step_gone", step=row["step"], sequence=row["sequence"])
                continue
            task = Task(next(self._keys), step, row["sequence"], self._executor_of[step.name],
                        StepStatus(row["status"]), row["created_at"], row["started_at"],
                        row["ended_at"], row["host"], row["pid"], row["result_kind"],
                        row["result"], row["error_type"], row["error_message"],
                        row["traceback"], row["exit_code"], row["output"], persisted=True)
            self._tasks[(step.name, task.sequence)] = task
            task.tries = state.tries.get((step.name, task.sequence), 0)  # the failed ones
            if task.status in (StepStatus.success, StepStatus.failure):
                task.tries += 1  # and the one that ended it
            if task.status is StepStatus.success:
                self._keep_result(task)
            elif task.status is StepStatus.failure:
                if not _handles_failure(step):
                    self._failures.append(task)
                    self._stopped = self._stopped or bool(self._options_of[step.name].stop_on_exception)
            else:  # ready, or active when its engine died: start it (again)
                task.status, task.started_at = StepStatus.ready, None
                self._touch(task)
                self._ready.append(task)
        for row in state.delays:
            self._timers.add(row["due_at"], _DelayDue(row["event"], row["target"], row["sequence"]))
        if self._joins:  # which sequences are whose children, and which fan-outs ended
            self._joins.rebuild(((t.step.name, t.sequence, t.status.value)
                                 for t in self._tasks.values()), state.children, self._fired)
        if self._stopped:
            self._hold_delays()

    # -- the round ---------------------------------------------------------------------

    def _round(self, item: Message | object | None, start: bool = True, expire: bool = True) -> None:
        now = self.clock.now()
        if item is not None and item is not EMPTY:
            self._on_message(item, now)  # type: ignore[arg-type]
        inbox = self._inbox
        while inbox:  # a round is the only taker of messages: what is here stays here
            self._on_message(inbox.get_nowait(), now)
        if expire and self._timers:
            self._expire(now)
        self._propagate(now)
        started: list[Task] = []
        while start:
            # A started task's `active` trigger can make more tasks ready: start them in this
            # round too, for nothing else may wake the engine before the task ends.
            self._activated = False
            more = self._start_ready(now)
            started += more
            if not (more and self._activated):
                break
        if self._pool_wait and not (self._running or started or self._pending
                                    or self._timers.count(_DelayDue)):
            self._check_deadlock(now)
            self._propagate(now)
        self._flush()
        for task in started:
            self._submit(task)
        if self._progress is not None:
            timers = self._timers
            self._progress({"done": self._done, "failed": self._failed,
                            "running": len(self._running),
                            "waiting": len(self._ready) + timers.count(_RetryDue)
                            + timers.count(_DelayDue) + len(self._held_delays)})

    def _idle(self) -> bool:
        if self._running or self._pending:
            return False
        timers = self._timers  # a timeout is no work left: its task is running, or ended
        return self._stopped or not (self._ready or timers.count(_DelayDue) or timers.count(_RetryDue))

    def _timers_alone(self, deadline: float | object | None) -> bool:
        """
        Nothing runs and nothing can start before a delay is due: a bounded run returns
        then, its delays pending, rather than wait for them (they are recorded: continue
        goes on). A retry's wait is not recorded, so a bounded run waits for it.
        """
        return (not self._running and not self._pool_wait and isinstance(deadline, float | int)
                and not self._timers.count(_RetryDue))

    def _deadline(self) -> float | object | None:
        """When the engine's thread must look again without a message (EMPTY: at once)."""
        deadline = self._timers.next_deadline()
        if self._pool_wait:  # a release by another program sends no message: look again soon
            poll = self.clock.now() + POOL_POLL
            deadline = poll if deadline is None else min(deadline, poll)
        if deadline is None and not self._running:
            return EMPTY
        return deadline

    def _wait(self, deadline: float | object | None) -> Message | object:
        if deadline is EMPTY:
            return EMPTY
        assert deadline is None or isinstance(deadline, float | int)
        if self._inline:  # the round takes the messages, under the baton
            self._inbox.wait(deadline)
            return EMPTY
        return self.clock.wait(self._inbox, deadline)

    def _expire(self, now: float) -> None:
        """Act on what came due: fire delays, make retried tasks ready, stop timed-out tasks."""
        for due in self._timers.expire(now):
            if isinstance(due, _DelayDue):
                self._batch.delays_fired.append(DelayFired(
                    self.run_id, self._attempt_no, due.event, due.target, due.sequence, now))
                self._reach(due.target, due.sequence, due.event, now)
            elif isinstance(due, _RetryDue):
                self._ready.append(due.task)
            else:
                self._stop_overdue(due, now)

    def _hold_delays(self) -> None:
        """After an unhandled failure, delays stop firing; they stay recorded for continue."""
        self._held_delays.extend(
            (due, item) for due, item in self._timers.remove(_DelayDue)
            if isinstance(item, _DelayDue))

    def _on_message(self, item: Message, now: float) -> None:
        if isinstance(item, Outcome):
            self._on_outcome(item, now)
        elif isinstance(item, TriggerRequest):
            task = self._running.get(item.key)
            if task is None:
                return  # from a task given up on (a thread step past its timeout)
            if item.event in self.graph.events:
                if item.event not in task.step.emits and not self._undeclared(task, item):
                    return
                origin = Origin("trigger", task.step.name, task.sequence)
                self._pending.append((item.event, item.sequence, origin))
            else:  # StepContext.trigger checks first; this guards other callers
                self._refused[item.key] = (
                    f"it triggered {item.event!r}, which is not an event of flow {self.graph.name!r}."
                    + did_you_mean(item.event, self.graph.events)
                )
        elif isinstance(item, Requeue):
            self._hand_over(self._running[item.task.key].executor, item.task)

    def _undeclared(self, task: Task, request: TriggerRequest) -> bool:
        """
        A ctx.trigger of an event the step does not declare in ``emits``: warned of once per
        step and event; True when it fires anyway, False when ``strict_triggers`` refuses it
        (and so fails the task).
        """
        name = task.step.name
        if request.event in self._joins.over or request.event in self._joins.names:
            self._refused[request.key] = (
                f"it triggered {request.event!r}, which " + (
                    "a join fires by itself" if request.event in self._joins.names else
                    f"starts the children of a join: only a step that declares it in emits= "
                    f"may trigger it (step {name!r} does not)"))
            return False
        if self.options.strict_triggers:
            self._refused[request.key] = (
                f"it triggered {request.event!r}, which step {name!r} does not declare; add it "
                f"to emits= (strict_triggers is on)")
            return False
        if (name, request.event) not in self._warned:
            self._warned.add((name, request.event))
            self.log.warning("undeclared_trigger", step=name, sequence=task.sequence,
                             fired=request.event)
        return True

    def _on_outcome(self, outcome: Outcome, now: float) -> None:
        refused = self._refused.pop(outcome.key, None) if self._refused else None
        if refused is not None and outcome.ok:
            outcome = Outcome(outcome.key, False, error_type="EventorUsageError",
                              error_message=refused, pid=outcome.pid, output=outcome.output)
        task = self._running.pop(outcome.key, None)
        if task is None:
            return  # a thread step given up on at its timeout, ending after all
        name = task.step.name
        self._running_by_step[name] -= 1
        self._running_by_executor[task.executor] -= 1
        why = self._timed_out.pop(outcome.key, None)
        if why is not None:  # stopped at its timeout, however it ended
            outcome = Outcome(outcome.key, False, error_type="StepTimeout", error_message=why,
                              exit_code=outcome.exit_code, pid=outcome.pid, error_mro=TIMEOUT_MRO,
                              output=outcome.output)
        task.ended_at = now
        task.pid = outcome.pid
        if outcome.host:
            task.host = outcome.host
        task.result_kind, task.result = outcome.result_kind, outcome.result
        task.error_type, task.error_message = outcome.error_type, outcome.error_message
        task.traceback, task.exit_code = outcome.traceback, outcome.exit_code
        task.output = outcome.output
        self._touch(task)
        if name in self._pooled:
            self._batch.releases.extend(self._pools.released(
                self.run_id, self._attempt_no, name, task.sequence, task.ended_at))
        if not outcome.ok and self._retry(task, outcome, now):
            return
        self._finish(task, outcome.ok)

    def _retry(self, task: Task, outcome: Outcome, now: float) -> bool:
        """Record a failed try and schedule the next, if the step's retry policy allows one."""
        policy = self._retry_of.get(task.step.name)
        if policy is None or task.tries > policy.retries:
            return False
        if policy.retry_on is not None and not policy.retry_on.intersection(outcome.error_mro):
            return False
        self._batch.tries.append(TryRecord(
            self.run_id, self._attempt_no, task.step.name, task.sequence, task.tries,
            task.started_at, now, task.pid, task.error_type, task.error_message,
            task.traceback, task.exit_code))
        wait = policy.wait(task.tries)
        self.log.warning("step_retry", step=task.step.name, sequence=task.sequence,
                         attempt=task.tries, of=policy.retries + 1, delay=round(wait, 3),
                         error=f"{task.error_type}: {task.error_message}")
        task.status, task.started_at, task.ended_at = StepStatus.ready, None, None
        # A new key for the next try: what the abandoned try (a timed-out thread) still sends
        # under the old one is ignored, never taken for the next try's.
        task.key = next(self._keys)
        self._timers.add(now + wait, _RetryDue(task), rank=1)  # due with a delay: after it
        return True

    def _stop_overdue(self, due: _TimeoutDue, now: float) -> None:
        """Stop a task past its timeout: a process is killed; a thread is given up on."""
        task = self._running.get(due.key)
        if task is None or task.tries != due.tries:
            return  # it ended, or this deadline was for an earlier try
        timeout, grace = self._timeout_of[task.step.name]
        why = f"step {task.step.name!r} timed out after {timeout:g} s"
        executor = self._executors.get(task.executor)
        if executor is not None and executor.cancel(due.key, grace):
            self._timed_out[due.key] = why + " and was stopped"
        else:
            self.log.warning("step_abandoned", step=task.step.name, sequence=task.sequence)
            self._on_outcome(Outcome(due.key, False, error_type="StepTimeout", error_mro=TIMEOUT_MRO,
                                     error_message=why + "; its thread cannot be stopped and "
                                     "was left to finish unobserved"), now)

    def _finish(self, task: Task, ok: bool) -> None:
        """Record a task's final status (run, or skipped by recovery) and fire its triggers."""
        step, name = task.step, task.step.name
        self._done += 1
        if name in self._fanners:
            self._joins.task_ended(name, task.sequence, ok)
        if self._recovered is not None and self._joins and task.executor != "skip":
            self._note_rerun(task, ok)
        if ok:
            task.status = StepStatus.success
            self._keep_result(task)
            if self._log_tasks:
                self.log.info("step_succeeded", step=name, sequence=task.sequence, result=task.result)
            if step.triggers:
                self._status_triggers(task, StepStatus.success)
        else:
            task.status = StepStatus.failure
            self._failed += 1
            handled = _handles_failure(step)
            self.log.log(
                logging.WARNING if handled else logging.ERROR, "step_failed", step=name,
                sequence=task.sequence, error=f"{task.error_type}: {task.error_message}",
                handled=handled,
            )
            self._status_triggers(task, StepStatus.failure)
            if not handled:
                self._failures.append(task)
                if self._options_of[name].stop_on_exception and not self._stopped:
                    self._stopped = True
                    self._hold_delays()
        if step.triggers:
            self._status_triggers(task, StepStatus.complete)

    def _note_rerun(self, task: Task, ok: bool) -> None:
        """A task recovery ran: when it ended otherwise than recorded, its joins changed."""
        prior = self._recovered.tasks.get((task.step.name, task.sequence)) if self._recovered else None
        status = StepStatus.success if ok else StepStatus.failure
        if prior is None or prior["status"] != status.value or prior["result"] != task.result:
            self._joins.rerun(task.step.name, task.sequence)

    def _keep_result(self, task: Task) -> None:
        if task.result_kind is not None and task.result is not None:
            seq, name = task.sequence, task.step.name
            kept = self._results.setdefault(seq, {})
            if name not in kept:
                order = self._result_order.setdefault(seq, {})
                order[name] = len(order)
            kept[name] = (task.result_kind, task.result)

    def _status_triggers(self, task: Task, status: StepStatus) -> None:
        events = task.step.triggers.get(status)  # as triggered_by, a call less per task
        if events:
            key = (task.step.name, status)
            origin = self._status_origins.get(key)
            if origin is None:
                origin = self._status_origins[key] = Origin("status", key[0], via=status.value)
            self._pending.extend((event, task.sequence, origin) for event in events)

    def _spread(self, now: float) -> None:
        pending, triggers, fired_in = self._pending, self._batch.triggers, self._fired
        run_id, attempt, watched = self.run_id, self._attempt_no, self._watched
        assocs_from, dependents = self.graph.assocs_from, self.graph.dependents
        while pending:
            event, seq, origin = pending.popleft()
            fired = fired_in.get(seq)
            if fired is None:
                fired = fired_in[seq] = set()
            if event in fired:
                if event in watched and origin.kind == "trigger" and event in self._joins.over:
                    self.log.warning("child_already_started", fired=event, sequence=seq,
                                     parent=origin.sequence)
                continue  # an event fires at most once per sequence
            fired.add(event)
            triggers.append((run_id, attempt, event, seq, now, origin.text,  # a TriggerRecord's
                             origin.kind, origin.step, origin.sequence, True))  # fields (see Batch)
            if event in watched:
                self._joins.event_fired(event, seq, origin.sequence if origin.kind == "trigger"
                                        else None, self._fired)
            for assoc in assocs_from(event):
                if assoc.delay > 0:
                    # In recovery a delay keeps its first activation: only the rest is waited.
                    started = now if self._recovered is None else \
                        self._recovered.delays_started.get((event, assoc.target, seq), now)
                    self._schedule(event, assoc.target, seq, started + assoc.delay, started)
                else:
                    self._reach(assoc.target, seq, event, now)
            for dependent in dependents(event):
                if dependent not in fired and holds(self._exprs[dependent], fired.__contains__):
                    pending.append((dependent, seq, EXPR))

    def _propagate(self, now: float) -> None:
        """Fire every pending trigger and what follows from it, joins included, to a fixpoint."""
        self._spread(now)
        while self._joins.dirty:  # every trigger is in: are joins due? (they fire in turn)
            self._fire_joins()
            if not self._pending:
                break
            self._spread(now)

    def _fire_joins(self) -> None:
        for name, parent in self._joins.due():
            if name not in self._fired.get(parent, ()):
                join = self.graph.events[name].join
                assert join is not None
                self._pending.append((name, parent, Origin("join", via=join.event)))

    def _reach(self, target: str, seq: str, via: str, now: float) -> None:
        if target in self.graph.events:
            origin = self._assoc_origins.get(via)
            if origin is None:
                origin = self._assoc_origins[via] = Origin("assoc", via=via)
            self._pending.append((target, seq, origin))
            return
        key = (target, seq)
        if key in self._tasks:
            return  # at most one task per (step, sequence) in an attempt
        step = self.graph.steps[target]
        task = Task(next(self._keys), step, seq, self._executor_of[target], StepStatus.ready, now)
        self._tasks[key] = task
        self._new.append(task)
        if target in self._fanners:
            self._joins.task_created(target, seq)
        if step.triggers:
            self._status_triggers(task, StepStatus.ready)
        if self._recovered is not None and self._recover_skips(task, now):
            return
        self._ready.append(task)

    def _recover_skips(self, task: Task, now: float) -> bool:
        """Apply the step's recovery policy to a task the recovered attempt had; True if skipped."""
        recovered = self._recovered
        assert recovered is not None
        step, seq = task.step, task.sequence
        found = recovered.recorded(step.name, seq)
        if found is None:
            return False  # new in this attempt
        status, prior = found
        rule = self._replays.get((step.name, status))
        if rule is None:
            rule = self._replays[step.name, status] = replay(step, status)
        decision, reason = rule
        if (decision is StepReplay.skip and step.name in self._joins.joiners
                and self._joins.changed(seq)):
            decision, reason = StepReplay.rerun, "a child it joins ran again"
        if decision is not StepReplay.skip:
            self.log.info("step_rerun", step=step.name, sequence=seq, was=_TEXT[status],
                          reason=reason)
            return False
        task.executor = "skip"
        task.started_at = task.ended_at = now
        task.host, task.pid = prior["host"], prior["pid"]  # where its outcome was made
        task.result_kind, task.result = prior["result_kind"], prior["result"]
        task.error_type, task.error_message = prior["error_type"], prior["error_message"]
        if self._log_tasks:
            self.log.info("step_skipped", step=step.name, sequence=seq, was=_TEXT[status],
                          reason=reason)
        self._finish(task, status is not StepStatus.failure)
        calls = recovered.triggered.get((step.name, seq))
        if calls:
            origin = Origin("trigger", step.name, seq)
            for event, at in calls:
                self._pending.append((event, at, origin))  # its ctx.trigger calls, again
        return True

    def _schedule(self, event: str, target: str, seq: str, due: float, now: float) -> None:
        item = _DelayDue(event, target, seq)
        if self._stopped:
            self._held_delays.append((due, item))
        else:
            self._timers.add(due, item)
        self._batch.delays.append(
            DelayRecord(self.run_id, self._attempt_no, event, target, seq, now, due))

    def _start_ready(self, now: float) -> list[Task]:
        """Start ready tasks, in order, as far as concurrency limits and resources allow."""
        ready, cap, pools = self._ready, self.options.max_concurrent, self._pools
        self._pool_wait = False
        if self._stopped or not ready:
            return []
        slots = cap - len(self._running) if cap > 0 else len(ready)
        kept: list[Task] = []  # stay ready, in their order
        planned: dict[str, int] = {}  # tasks chosen per step, for per-step limits
        running = self._running_by_executor
        room = {name: limit - running.get(name, 0) for name, limit in self._capacity.items()}
        chosen = self._pick(slots, kept, planned, room, with_resources=True)
        wants = pools.wants
        asking = [t for t in chosen if t.step.name in wants] if wants else []
        if asking:
            if self._batch.releases:
                # Commit this round so far (final statuses with their releases) first: a
                # grant must see what was released, and a release goes with its status.
                self._flush()
            granted = self.store.acquire(
                [pools.request(t.key, self.run_id, self._attempt_no, t.step.name, t.sequence)
                 for t in asking], now=now)
            refused = [t for t in asking if t.key not in granted]
            if refused:  # they hold no slot while they wait; others behind them may start
                self._pool_wait = True
                kept.extend(refused)
                chosen = [t for t in chosen if t.key in granted or t.step.name not in wants]
                for task in refused:
                    planned[task.step.name] -= 1
                    if task.executor in room:
                        room[task.executor] += 1
                chosen += self._pick(len(refused), kept, planned, room, with_resources=False)
        if kept:
            ready.put_back(kept)
        for task in chosen:
            name = task.step.name
            running[task.executor] = running.get(task.executor, 0) + 1
            task.status = StepStatus.active
            task.started_at = now
            task.host = task.step.host if task.executor == "ssh" else self.host
            task.tries += 1
            if task.persisted and not task.dirty:
                task.dirty = _STARTED
                self._starts.append(task)
            self._running[task.key] = task
            if name in self._timeout_of:
                self._timers.add(now + self._timeout_of[name][0], _TimeoutDue(task.key, task.tries),
                                 rank=2)
            self._running_by_step[name] = self._running_by_step.get(name, 0) + 1
            if task.step.triggered_by(StepStatus.active):
                self._status_triggers(task, StepStatus.active)
                self._propagate(now)
                self._activated = True
        return chosen

    def _pick(self, slots: int, kept: list[Task], planned: dict[str, int], room: dict[str, int],
              *, with_resources: bool) -> list[Task]:
        """
        Take up to ``slots`` ready tasks that executors' ``room`` and per-step limits allow;
        the ones per-step limits hold back go to ``kept``.
        """
        chosen: list[Task] = []
        if slots <= 0:
            return chosen
        wants, options_of = self._pools.wants, self._options_of
        for task in self._ready.take(room):
            name = task.step.name
            limit = options_of[name].max_concurrent or -1
            if (0 < limit <= self._running_by_step.get(name, 0) + planned.get(name, 0)
                    or (not with_resources and name in wants)):
                kept.append(task)
                continue
            chosen.append(task)
            planned[name] = planned.get(name, 0) + 1
            if task.executor in room:
                room[task.executor] -= 1
            slots -= 1
            if not slots:
                break
        return chosen

    def _check_deadlock(self, now: float) -> None:
        """Fail tasks waiting for pools only this run holds, when nothing can release them."""
        waiting = [t for t in self._ready if self._pools.asks(t.step.name)]
        held = self._pools.deadlock(self.run_id, [(t.step.name, t.sequence) for t in waiting],
                                    self.store.leases(held=True))
        if held is None:
            return
        for task in waiting:
            self._ready.remove(task)
            task.ended_at = now
            task.error_type = ResourceDeadlock.__name__
            task.error_message = (
                f"step {task.step.name!r} waits for {self._pools.wants[task.step.name]!r}, held by "
                f"this run ({held}) with nothing left running to release it; release it with "
                "releases=None (the default) or a later step's releases=[pool]")
            self._touch(task)
            self._finish(task, False)
        self._pool_wait = False

    def _touch(self, task: Task) -> None:
        """
        The task changed: the round writes all of it. (A task that only started since it was
        written is written narrowly, as a `TaskStart`: see `_start_ready`.)
        """
        if task.persisted and task.dirty != _CHANGED:
            task.dirty = _CHANGED
            self._dirty.append(task)

    def _flush(self) -> None:
        batch = self._batch
        if self._new:
            batch.new_tasks = [self._record(t) for t in self._new]
        if self._starts:
            run_id, attempt = self.run_id, self._attempt_no
            batch.task_starts = [
                (run_id, attempt, t.step.name, t.sequence, _TEXT[t.status], t.started_at, t.host)
                for t in self._starts if t.dirty == _STARTED]
        if self._dirty:
            batch.task_updates = [self._record(t) for t in self._dirty]
        self.store.write(batch)
        for task in self._new:
            task.persisted = True
        for task in self._starts:
            task.dirty = 0
        for task in self._dirty:
            task.dirty = 0
        self._new, self._starts, self._dirty, self._batch = [], [], [], Batch()

    def _record(self, t: Task) -> tuple[Any, ...]:
        """The task as the store writes it: a `TaskRecord`'s fields, as a plain tuple (see Batch)."""
        return (self.run_id, self._attempt_no, t.step.name, t.sequence, _TEXT[t.status], t.executor,
                t.created_at, t.started_at, t.ended_at, t.host, t.pid, t.result_kind, t.result,
                t.error_type, t.error_message, t.traceback, t.exit_code, t.output)

    # -- running tasks -----------------------------------------------------------------

    def _submit(self, task: Task) -> None:
        step = task.step
        logger_name = self._step_loggers.get(step.name)
        if logger_name is None:
            logger_name = self._step_loggers[step.name] = f"{self._logger_name}.{step.name}"
        k_name, k_seq, k_recovery, k_logger = self._env_keys
        env = {k_name: step.name, k_seq: task.sequence, k_recovery: str(self.attempt),
               k_logger: logger_name}
        extra: dict[str, Any] | None = None
        if self.options.sequence_arg_name or self.options.pass_logger_to_task:
            extra = {}
            if self.options.sequence_arg_name:
                extra[self.options.sequence_arg_name] = task.sequence
            if self.options.pass_logger_to_task:
                extra["logger"] = logging.getLogger(logger_name)
        results = children = None
        if step.context:
            kept = self._results.get(task.sequence)  # a view, not a copy: see ResultsSoFar
            results = ResultsSoFar(kept, self._result_order[task.sequence]) if kept else None
            if step.name in self._joins.joiners:  # a joining step reads its children's results
                children = {c: self._results.get(c, {}) for c in self._joins.children(task.sequence)}
        run = TaskRun(task.key, self.run_id, step.name, task.sequence, self._attempt_no,
                      step.func, step.args, step.kwargs, env, extra, results, children,
                      step.host if task.executor == "ssh" else None)
        if self._log_tasks:
            self.log.info("step_started", step=step.name, sequence=task.sequence)
        self._hand_over(task.executor, run)

    def _hand_over(self, executor: str, run: TaskRun) -> None:
        try:
            done = self._deliver if executor == "thread" else self._inbox.put
            self._executor(executor).submit(run, done)
        except Exception as exc:  # e.g. fork refused: the task fails, the engine goes on
            self._inbox.put(Outcome(run.key, False, error_type=type(exc).__qualname__,
                                    error_message=f"could not start: {exc}"))

    def _executor(self, name: str) -> Executor:
        executor = self._executors.get(name)
        if executor is None:
            if self._closed:
                raise EventorUsageError(f"run {self.run_id!r} is closed")
            executor = REGISTRY[name](self.graph, self.options)
            self._executors[name] = executor
        return executor

    def _summary(self) -> RunSummary:
        counts: dict[str, int] = {}
        for task in self._tasks.values():
            text = _TEXT[task.status]
            counts[text] = counts.get(text, 0) + 1
        failed = tuple((t.step.name, t.sequence) for t in self._failures)
        delays = sorted([*self._timers.pending(_DelayDue), *self._held_delays],
                        key=lambda d: d[0])
        joins = tuple(self._joins.waiting(self._fired)) if self._joins else ()
        pending = len(self._ready) + len(delays) + self._timers.count(_RetryDue) + len(joins)
        status = "failure" if failed else "paused" if pending else "success"
        return RunSummary(self.run_id, self.attempt or 0, status, MappingProxyType(counts), failed,
                          pending, tuple((d.target, d.sequence, due) for due, d in delays
                                         if isinstance(d, _DelayDue)), joins)



class _Inbox:
    """
    The engine's inbox: task outcomes and requests, first in, first out. When rounds may run
    on the threads that finished tasks (see `Engine._deliver`), messages are taken only by
    a round, under the engine's baton, so they keep their order; the engine's thread then
    waits for a message (`wait`) without taking it.
    """

    __slots__ = ("_items", "_signal", "_woken")

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._signal = threading.Condition(threading.Lock())
        self._woken = False  # a wake that came while nobody waited: the next wait returns

    def __bool__(self) -> bool:
        return bool(self._items)

    def put(self, item: Any, wake: bool = True) -> None:
        self._items.append(item)
        if wake:
            self.wake()

    def wake(self) -> None:
        """Wake the engine's thread: now if it waits, else at its next `wait`."""
        with self._signal:
            self._woken = True
            self._signal.notify()

    def wait(self, deadline: float | None) -> None:
        """Until a message is here, `wake` was called, or ``deadline`` (a wall-clock time)."""
        with self._signal:
            if not self._items and not self._woken:
                self._signal.wait(None if deadline is None else max(0.0, deadline - time.time()))
            self._woken = False

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        try:
            return self._items.popleft()
        except IndexError:
            if not block:
                raise queue.Empty from None
        end = None if timeout is None else time.monotonic() + timeout
        with self._signal:
            while not self._items:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    raise queue.Empty
                self._signal.wait(left)
        return self._items.popleft()

    def get_nowait(self) -> Any:
        return self.get(block=False)


class ResultsSoFar(Mapping[str, tuple[str, str]]):
    """
    The results a sequence's steps had kept when a task started, as the task reads them: a
    view of the engine's own table, fixed at the length it had, rather than a copy of it
    (copying made a chain of n Flow-class steps cost n^2). Safe across threads: each step
    keeps one result per sequence, so the tables only grow, and ``order`` numbers each
    result as it is kept. Pickled (for a process, a host or Dask), it is a plain dict.
    """

    __slots__ = ("_kept", "_n", "_order")

    def __init__(self, kept: dict[str, tuple[str, str]], order: dict[str, int]) -> None:
        self._kept, self._order, self._n = kept, order, len(order)

    def __getitem__(self, name: str) -> tuple[str, str]:
        if self._order.get(name, self._n) >= self._n:  # none, or kept after the task started
            raise KeyError(name)
        return self._kept[name]

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, at in list(self._order.items()) if at < self._n])

    def __len__(self) -> int:
        return self._n

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, ([(name, self._kept[name]) for name in self],))


class _Heartbeat:
    """
    Records, every ``interval`` seconds of real time while a run goes on, that its engine is
    alive: an attempt silent for longer than the grace counts as dead, on any host.
    """

    def __init__(self, store: Store, run_id: str, attempt: int, interval: float,
                 log: EventLogger) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(store, run_id, attempt, interval, log),
                                        name=f"eventor-heartbeat-{run_id}", daemon=True)
        self._thread.start()

    def _beat(self, store: Store, run_id: str, attempt: int, interval: float,
              log: EventLogger) -> None:
        while not self._stop.wait(interval):
            try:
                store.heartbeat(run_id, attempt, at=time.time())
            except Exception as exc:  # the store is away for a moment: the next beat may do
                log.warning("heartbeat_failed", error=f"{type(exc).__name__}: {exc}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _handles_failure(step: StepSpec) -> bool:
    """True when a failure of ``step`` fires a failure or complete trigger."""
    return bool(step.triggered_by(StepStatus.failure) or step.triggered_by(StepStatus.complete))
