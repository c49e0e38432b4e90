"""
The scheduler: turns triggers into tasks, task outcomes into triggers, and records it all.

The engine works in rounds. A round takes every task outcome waiting in the inbox, fires
matured delays, propagates the resulting triggers through associations and expression
events to a fixpoint, starts what may start, writes all of it to the store in one
transaction, and only then hands the started tasks to their executors. Between rounds it
blocks on the inbox (bounded by the next delay's due time): nothing polls, nothing sleeps.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import queue
import socket
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from eventor.clock import EMPTY, Clock, SystemClock
from eventor.config import Config
from eventor.enums import RunMode, StepReplay, StepStatus
from eventor.exceptions import EventorUsageError, NotSupportedError
from eventor.executors import REGISTRY, Executor, Outcome, TaskRun, executor_name
from eventor.executors.base import Requeue, TriggerRequest, qualified_names
from eventor.graph import FlowGraph, StepSpec, holds
from eventor.recovery import changed_steps, fingerprint, owner_alive, pick_attempt, replay
from eventor.resources import plan_pools
from eventor.retries import plan_retries
from eventor.store import Batch, Row, Store
from eventor.validate import did_you_mean

__all__ = ["Engine", "EngineOptions", "RunSummary", "Task"]

DEFAULT_SEQUENCE = "0"
TIMEOUT_MRO = qualified_names(TimeoutError)
POOL_POLL = 0.1  # seconds between looks at pools another program holds
_LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1", socket.gethostname()})


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """Engine-wide settings (the config keys of the same names)."""

    max_concurrent: int = -1  # running tasks at once; -1 for no limit
    stop_on_exception: bool = True  # after an unhandled failure, start nothing new
    task_construct: Any = "process"  # default executor
    envvar_prefix: str = "EVENTOR_"
    thread_workers: int = 32  # threads of the thread executor (more tasks wait in its queue)
    max_tasks_per_child: int = 0  # tasks a process worker runs before it is replaced; 0: no limit
    sequence_arg_name: str | None = None  # pass the sequence to steps as this keyword
    pass_logger_to_task: bool = False  # pass the step's logger as ``logger=``
    pools: Mapping[str, int] = field(default_factory=dict)  # pools declared in the config
    retries: int = 0  # tries after the first, for a step that fails (steps may say otherwise)
    retry_delay: float = 0.0  # seconds before the first retry
    backoff: float = 1.0  # each retry waits this many times longer than the one before
    max_retry_delay: float | None = None  # cap on the wait before a retry
    timeout: float | None = None  # seconds a step may run
    timeout_grace: float = 3.0  # seconds between SIGTERM and SIGKILL for a timed-out process

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> EngineOptions:
        """The options a loaded `Config` asks for; ``overrides`` that are not None win."""
        options = cls(
            max_concurrent=config.max_concurrent,
            stop_on_exception=config.stop_on_exception,
            task_construct=config.task_construct,
            envvar_prefix=config.envvar_prefix,
            thread_workers=config.max_concurrent if config.max_concurrent > 0 else 32,
            sequence_arg_name=config.sequence_arg_name,
            pass_logger_to_task=config.pass_logger_to_task,
            max_tasks_per_child=config.max_tasks_per_child,
            pools=config.POOLS,
            retries=config.retries,
            retry_delay=config.retry_delay,
            backoff=config.backoff,
            max_retry_delay=config.max_retry_delay,
            timeout=config.timeout,
            timeout_grace=config.timeout_grace,
        )
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if overrides.get("max_concurrent", 0) > 0:
            overrides.setdefault("thread_workers", overrides["max_concurrent"])
        return replace(options, **overrides)


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
    tries: int = 0  # executions started (a retried task runs more than once)
    persisted: bool = False  # inserted in the store
    dirty: bool = False  # changed since, waiting in the round's update list


@dataclass(frozen=True)
class RunSummary:
    """How a run (one call of `Engine.run`) ended; truthy when no failure went unhandled."""

    run_id: str
    attempt: int
    status: str  # success, failure, or paused (work left: ready tasks or pending delays)
    counts: Mapping[str, int] = field(default_factory=dict)  # tasks per status
    failed: tuple[tuple[str, str], ...] = ()  # (step, sequence) of unhandled failures
    pending: int = 0  # ready tasks and delays left for a later run
    delays: tuple[tuple[str, str, float], ...] = ()  # (target, sequence, due) not yet fired

    @property
    def next_due(self) -> float | None:
        """When the earliest pending delay is due (clock time), or None."""
        return min((due for _, _, due in self.delays), default=None)

    @property
    def ok(self) -> bool:
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
        options: engine settings.
        clock: time source; tests pass a `MockClock`.
        log: a structlog logger.
        executors: executors by name; missing ones come from the registry when first needed.
        mode: the attempt's run mode (recorded).
        logger_name: prefix of the logger names passed to steps.
        info: facts recorded with the run when it is created (e.g. the flow's parameters).
        attempt: with ``mode`` recover, the attempt to recover from; with continue, the
            attempt to continue (default: the latest).
        progress: called after every round with the counts of tasks ``done``, ``failed``,
            ``running`` and ``waiting`` (ready, retrying, or behind a delay).
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
        log: Any = None,
        executors: Mapping[str, Executor] | None = None,
        mode: RunMode = RunMode.restart,
        logger_name: str | None = None,
        info: Mapping[str, Any] | None = None,
        attempt: int | None = None,
        progress: Callable[[Mapping[str, int]], None] | None = None,
    ) -> None:
        self.graph = graph
        self.store = store
        self.run_id = run_id
        self.program = program
        self.options = options or EngineOptions()
        self.clock: Clock = clock or SystemClock()
        self.log = log if log is not None else _NullLog()
        self.mode = mode
        self.host = socket.gethostname()
        self.attempt: int | None = None
        self.info = {"flow": graph.name, **(info or {})}
        self._from_attempt = attempt
        self._progress = progress
        self._done = self._failed = 0
        # Recovery: the recovered attempt's tasks, the triggers its tasks made with
        # ctx.trigger, and when its delays started.
        self._prior: dict[tuple[str, str], Row] = {}
        self._prior_zombie = False
        self._prior_triggers: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self._prior_delays: dict[tuple[str, str, str], float] = {}
        self._logger_name = logger_name or f"eventor.{graph.name}"
        self._executors: dict[str, Executor] = dict(executors or {})
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._tasks: dict[tuple[str, str], Task] = {}
        self._running: dict[int, Task] = {}
        self._running_by_step: dict[str, int] = {}
        self._ready: deque[Task] = deque()
        self._fired: dict[str, set[str]] = {}
        self._pending: deque[tuple[str, str, str]] = deque()
        self._delays: list[tuple[float, int, str, str, str]] = []  # (due, n, event, target, seq)
        self._failures: list[Task] = []
        self._refused: dict[int, str] = {}  # task key -> why its success does not count
        self._results: dict[str, dict[str, tuple[str, str]]] = {}  # sequence -> step -> stored
        self._stopped = False
        self._closed = False
        self._keys = itertools.count(1)
        self._new: list[Task] = []
        self._dirty: list[Task] = []
        self._batch = Batch()
        prefix = self.options.envvar_prefix
        self._env_keys = tuple(f"{prefix}{k}" for k in
                               ("STEP_NAME", "STEP_SEQUENCE", "STEP_RECOVERY", "LOGGER_NAME"))
        self._exprs = {ev.name: ev.expr for ev in graph.events.values() if ev.expr is not None}
        self._executor_of, self._limit_of, self._stop_of = self._plan_steps()
        self._wants, self._releases = plan_pools(graph, self.options.pools)
        self._retry_of, self._timeout_of = plan_retries(graph, self.options, self._executor_of)
        self._retrying: list[tuple[float, int, Task]] = []  # (due, key, task) waiting to retry
        self._deadlines: list[tuple[float, int, int]] = []  # (due, key, try) of timed steps
        self._timed_out: dict[int, str] = {}  # key -> why, for tasks being stopped
        self._pool_wait = False  # ready tasks wait for leases: poll for other programs
        self._wants_results = frozenset(
            s.name for s in graph.steps.values() if getattr(s.func, "__eventor_context__", False)
        )

    def _plan_steps(self) -> tuple[dict[str, str], dict[str, int], dict[str, bool]]:
        default = executor_name(self.options.task_construct)
        executor_of, limit_of, stop_of = {}, {}, {}
        for step in self.graph.steps.values():
            if step.host not in (None, *_LOCAL_HOSTS):
                raise NotSupportedError(
                    "running steps on other hosts (host=)",
                    f"step {step.name!r} asks for host {step.host!r}; remove host= to run it here",
                )
            construct = step.config.get("task_construct")
            executor_of[step.name] = (
                "invoke" if step.func is None
                else default if construct is None
                else executor_name(construct, key=f"step {step.name!r} config task_construct")
            )
            limit_of[step.name] = step.config.get("max_concurrent", -1)
            stop_of[step.name] = bool(
                step.config.get("stop_on_exception", self.options.stop_on_exception)
            )
        return executor_of, limit_of, stop_of

    # -- public ------------------------------------------------------------------------

    def trigger(self, event: str, sequence: Any = None, source: str = "user") -> None:
        """Fire ``event`` in ``sequence`` (default ``"0"``) at the next round."""
        if event not in self.graph.events:
            raise EventorUsageError(
                f"cannot trigger {event!r}: flow {self.graph.name!r} has no such event."
                + did_you_mean(event, self.graph.events)
            )
        self._pending.append((event, DEFAULT_SEQUENCE if sequence is None else str(sequence), source))

    def run(self, max_loops: int = -1) -> RunSummary:
        """
        Run until nothing is left to do, or for ``max_loops`` rounds.

        Returns when no trigger, task or delay is pending (or the bound is reached, after the
        running tasks finished and were recorded). Ready tasks that were not started and
        delays not yet due stay recorded for a later run or ``continue``.
        """
        if self._closed:
            raise EventorUsageError(f"run {self.run_id!r} is closed; create a new Eventor to run again")
        if self.attempt is None:
            self._open_attempt()
        loops = 0
        item: Any = None
        while True:
            self._round(item)
            loops += 1
            if self._idle() or 0 < max_loops <= loops:
                break
            item = self._wait()
        while self._running:  # bounded run: let running tasks finish, start nothing new
            self._round(self._inbox.get(), start=False)
        summary = self._summary()
        assert self.attempt is not None
        if summary.status != "paused" and self._wants:  # a finished run holds nothing
            self.store.release_attempt(self.run_id, self.attempt, now=self.clock.now())
        self.store.end_attempt(self.run_id, self.attempt, summary.status, now=self.clock.now())
        self.log.info("run_finished", status=summary.status, run_id=self.run_id)
        return summary

    # -- attempts: restart, recover, continue ---------------------------------------------

    def _open_attempt(self) -> None:
        now, store = self.clock.now(), self.store
        if self.mode is RunMode.restart:
            self.info.setdefault("fingerprint", fingerprint(self.graph))
            self.info.setdefault("graph", self.graph.summary())
            self.attempt = store.begin_attempt(self.run_id, self.program, self.mode.value,
                                               now=now, host=self.host, pid=os.getpid(),
                                               info=self.info)
        elif self.mode is RunMode.recover:
            prior = self._owned(pick_attempt(store, self.run_id, self._from_attempt))
            self._load_prior(prior, now)
            self.attempt = store.begin_attempt(self.run_id, self.program, self.mode.value,
                                               now=now, host=self.host, pid=os.getpid())
        else:
            current = self._owned(pick_attempt(store, self.run_id, self._from_attempt))
            self.attempt = int(current["attempt"])
            self._load_state(self.attempt)
            store.resume_attempt(self.run_id, self.attempt, now=now, host=self.host,
                                 pid=os.getpid())
        if hasattr(self.log, "bind"):  # every later event carries the run's context
            self.log = self.log.bind(flow=self.graph.name, run_id=self.run_id, attempt=self.attempt)
        self.log.info("run_started", store=getattr(store, "address", "?"), run_id=self.run_id,
                      attempt=self.attempt, mode=self.mode.value)

    def _owned(self, attempt: Mapping[str, Any]) -> Mapping[str, Any]:
        """``attempt``, unless a live engine still runs it; a dead engine's attempt is ended."""
        if owner_alive(attempt):
            raise EventorUsageError(
                f"run {self.run_id!r} attempt {attempt['attempt']} is still running (pid "
                f"{attempt['pid']} on {attempt['host']}); wait for it to end, or stop it first"
            )
        if attempt["ended_at"] is None:  # its engine died (killed, power lost)
            self.store.release_attempt(self.run_id, attempt["attempt"], now=self.clock.now())
            self.store.end_attempt(self.run_id, attempt["attempt"], "crashed", now=self.clock.now())
            self.log.warning("zombie_attempt", run_id=self.run_id, attempt=attempt["attempt"],
                             pid=attempt["pid"])
        return attempt

    def _load_prior(self, prior: Mapping[str, Any], now: float) -> None:
        """Read what recovery needs of the attempt it recovers from."""
        store, run_id, attempt = self.store, self.run_id, prior["attempt"]
        self._prior_zombie = prior["ended_at"] is None
        self._prior = {(r["step"], r["sequence"]): r for r in store.tasks(run_id, attempt)}
        for row in store.triggers(run_id, attempt):
            origin = self._trigger_origin(row["source"])
            if origin is not None:
                self._prior_triggers.setdefault(origin, []).append((row["event"], row["sequence"]))
        self._prior_delays = {(d["event"], d["target"], d["sequence"]): d["activated_at"]
                              for d in store.delays(run_id, attempt)}
        run = store.run(run_id) or {}
        info = dict(run.get("info") or {})
        now_print = fingerprint(self.graph)
        changed = changed_steps(info.get("fingerprint") or {}, now_print)
        if changed:
            self.log.warning("code_changed", run_id=run_id, steps=", ".join(changed))
        if info.get("fingerprint") != now_print:
            store.update_run_info(run_id, {**info, "fingerprint": now_print})

    def _trigger_origin(self, source: str) -> tuple[str, str] | None:
        """(step, sequence) of a ``step[sequence]:trigger`` source, else None."""
        if not source.endswith("]:trigger"):
            return None
        head = source[: -len(":trigger")]
        at = head.find("[")
        while at > 0:
            if head[:at] in self.graph.steps:
                return head[:at], head[at + 1:-1]
            at = head.find("[", at + 1)
        return None

    def _load_state(self, attempt: int) -> None:
        """Rebuild the engine's state from the attempt being continued."""
        store, run_id, steps = self.store, self.run_id, self.graph.steps
        for row in store.triggers(run_id, attempt):
            self._fired.setdefault(row["sequence"], set()).add(row["event"])
        tried: dict[tuple[str, str], int] = {}
        for row in store.tries(run_id, attempt):
            key = (row["step"], row["sequence"])
            tried[key] = max(tried.get(key, 0), row["try"])
        for row in store.tasks(run_id, attempt):
            step = steps.get(row["step"])
            if step is None:
                self.log.warning("step_gone", step=row["step"], sequence=row["sequence"])
                continue
            task = Task(next(self._keys), step, row["sequence"], self._executor_of[step.name],
                        StepStatus(row["status"]), row["created_at"], row["started_at"],
                        row["ended_at"], row["host"], row["pid"], row["result_kind"],
                        row["result"], row["error_type"], row["error_message"],
                        row["traceback"], row["exit_code"], persisted=True)
            self._tasks[(step.name, task.sequence)] = task
            task.tries = tried.get((step.name, task.sequence), 0)
            if task.status is StepStatus.success:
                if task.result_kind is not None and task.result is not None:
                    self._results.setdefault(task.sequence, {})[step.name] = (
                        task.result_kind, task.result)
            elif task.status is StepStatus.failure:
                if not (step.triggered_by(StepStatus.failure)
                        or step.triggered_by(StepStatus.complete)):
                    self._failures.append(task)
                    self._stopped = self._stopped or self._stop_of[step.name]
            else:  # ready, or active when its engine died: start it (again)
                task.status, task.started_at = StepStatus.ready, None
                self._touch(task)
                self._ready.append(task)
        for row in store.delays(run_id, attempt):
            if row["fired_at"] is None:
                heapq.heappush(self._delays, (row["due_at"], next(self._keys), row["event"],
                                              row["target"], row["sequence"]))

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

    # -- the round ---------------------------------------------------------------------

    def _round(self, item: Any, start: bool = True) -> None:
        now = self.clock.now()
        if item is not None and item is not EMPTY:
            self._on_item(item, now)
        while True:
            try:
                self._on_item(self._inbox.get_nowait(), now)
            except queue.Empty:
                break
        if self._delays and not self._stopped:
            self._mature_delays(now)
        if self._retrying:
            self._mature_retries(now)
        if self._deadlines:
            self._expire(now)
        self._propagate(now)
        started = self._start_ready(now) if start else []
        if self._pool_wait and not (self._running or started or self._pending or self._delays):
            self._check_deadlock(now)
            self._propagate(now)
        self._flush()
        for task in started:
            self._submit(task)
        if self._progress is not None:
            self._progress({"done": self._done, "failed": self._failed,
                            "running": len(self._running),
                            "waiting": len(self._ready) + len(self._retrying) + len(self._delays)})

    def _idle(self) -> bool:
        if self._running or self._pending:
            return False
        return self._stopped or not (self._ready or self._delays or self._retrying)

    def _wait(self) -> Any:
        times = [h[0][0] for h in (self._retrying, self._deadlines) if h]
        if self._delays and not self._stopped:
            times.append(self._delays[0][0])
        deadline = min(times) if times else None
        if self._pool_wait:  # a release by another program sends no message: look again soon
            poll = self.clock.now() + POOL_POLL
            deadline = poll if deadline is None else min(deadline, poll)
        if deadline is None and not self._running:
            return EMPTY
        return self.clock.wait(self._inbox, deadline)

    def _on_item(self, item: Outcome | TriggerRequest | Requeue, now: float) -> None:
        if isinstance(item, Requeue):
            self._hand_over(self._running[item.task.key].executor, item.task)
        elif isinstance(item, TriggerRequest):
            task = self._running.get(item.key)
            if task is None:
                return  # from a task given up on (a thread step past its timeout)
            origin = f"{task.step.name}[{task.sequence}]" if task is not None else "?"
            if item.event in self.graph.events:
                self._pending.append((item.event, item.sequence, f"{origin}:trigger"))
            else:  # StepContext.trigger checks first; this guards other callers
                self._refused[item.key] = (
                    f"it triggered {item.event!r}, which is not an event of flow {self.graph.name!r}."
                    + did_you_mean(item.event, self.graph.events)
                )
        else:
            self._on_outcome(item, now)

    def _on_outcome(self, outcome: Outcome, now: float) -> None:
        refused = self._refused.pop(outcome.key, None) if self._refused else None
        if refused is not None and outcome.ok:
            outcome = Outcome(outcome.key, False, error_type="EventorUsageError",
                              error_message=refused, pid=outcome.pid)
        running = self._running.pop(outcome.key, None)
        if running is None:
            return  # a thread step given up on at its timeout, ending after all
        task, name = running, running.step.name
        self._running_by_step[name] -= 1
        why = self._timed_out.pop(outcome.key, None)
        if why is not None:  # stopped at its timeout, however it ended
            outcome = Outcome(outcome.key, False, error_type="TimeoutError", error_message=why,
                              exit_code=outcome.exit_code, pid=outcome.pid, error_mro=TIMEOUT_MRO)
        task.ended_at = now
        task.pid = outcome.pid
        task.result_kind, task.result = outcome.result_kind, outcome.result
        task.error_type, task.error_message = outcome.error_type, outcome.error_message
        task.traceback, task.exit_code = outcome.traceback, outcome.exit_code
        self._touch(task)
        if name in self._wants or name in self._releases:
            self._release(task)
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
        self._batch.tries.append({
            "run_id": self.run_id, "attempt": self.attempt, "step": task.step.name,
            "sequence": task.sequence, "try": task.tries, "started_at": task.started_at,
            "ended_at": now, "pid": task.pid, "error_type": task.error_type,
            "error_message": task.error_message, "traceback": task.traceback,
            "exit_code": task.exit_code,
        })
        wait = policy.wait(task.tries)
        self.log.warning("step_retry", step=task.step.name, sequence=task.sequence,
                         attempt=task.tries, of=policy.retries + 1, delay=round(wait, 3),
                         error=f"{task.error_type}: {task.error_message}")
        task.status, task.started_at, task.ended_at = StepStatus.ready, None, None
        heapq.heappush(self._retrying, (now + wait, task.key, task))
        return True

    def _mature_retries(self, now: float) -> None:
        while self._retrying and self._retrying[0][0] <= now:
            self._ready.append(heapq.heappop(self._retrying)[2])

    def _expire(self, now: float) -> None:
        """Stop the tasks past their timeout: a process is killed; a thread is given up on."""
        while self._deadlines and self._deadlines[0][0] <= now:
            _, key, tries = heapq.heappop(self._deadlines)
            task = self._running.get(key)
            if task is None or task.tries != tries:
                continue
            timeout, grace = self._timeout_of[task.step.name]
            why = f"step {task.step.name!r} timed out after {timeout:g} s"
            cancel = getattr(self._executors.get(task.executor), "cancel", None)
            if cancel is not None and cancel(key, grace):
                self._timed_out[key] = why + " and was stopped"
            else:
                self.log.warning("step_abandoned", step=task.step.name, sequence=task.sequence)
                self._on_outcome(Outcome(key, False, error_type="TimeoutError", error_mro=TIMEOUT_MRO,
                                         error_message=why + "; its thread cannot be stopped and "
                                         "was left to finish unobserved"), now)

    def _finish(self, task: Task, ok: bool) -> None:
        """Record a task's final status (run, or skipped by recovery) and fire its triggers."""
        step, name = task.step, task.step.name
        self._done += 1
        if ok:
            task.status = StepStatus.success
            if task.result_kind is not None and task.result is not None:
                self._results.setdefault(task.sequence, {})[name] = (task.result_kind, task.result)
            self.log.info("step_succeeded", step=name, sequence=task.sequence, result=task.result)
            self._status_triggers(task, StepStatus.success)
        else:
            task.status = StepStatus.failure
            self._failed += 1
            handled = bool(step.triggered_by(StepStatus.failure) or step.triggered_by(StepStatus.complete))
            self.log.log(
                logging.WARNING if handled else logging.ERROR, "step_failed", step=name,
                sequence=task.sequence, error=f"{task.error_type}: {task.error_message}",
                handled=handled,
            )
            self._status_triggers(task, StepStatus.failure)
            if not handled:
                self._failures.append(task)
                if self._stop_of[name]:
                    self._stopped = True
        self._status_triggers(task, StepStatus.complete)

    def _status_triggers(self, task: Task, status: StepStatus) -> None:
        events = task.step.triggered_by(status)
        if events:
            source = f"{task.step.name}:{status.value}"
            self._pending.extend((event, task.sequence, source) for event in events)

    def _propagate(self, now: float) -> None:
        pending, graph, batch = self._pending, self.graph, self._batch
        while pending:
            event, seq, source = pending.popleft()
            fired = self._fired.get(seq)
            if fired is None:
                fired = self._fired[seq] = set()
            if event in fired:
                continue  # an event fires at most once per sequence
            fired.add(event)
            batch.triggers.append({
                "run_id": self.run_id, "attempt": self.attempt, "event": event, "sequence": seq,
                "created_at": now, "source": source, "acted": True,
            })
            for assoc in graph.assocs_from(event):
                if assoc.delay > 0:
                    # In recovery a delay keeps its first activation: only the rest is waited.
                    started = self._prior_delays.get((event, assoc.target, seq), now)
                    self._schedule(event, assoc.target, seq, started + assoc.delay, started)
                else:
                    self._reach(assoc.target, seq, event, now)
            for dependent in graph.dependents(event):
                if dependent not in fired and holds(self._exprs[dependent], fired.__contains__):
                    pending.append((dependent, seq, "expr"))

    def _reach(self, target: str, seq: str, via: str, now: float) -> None:
        if target in self.graph.events:
            self._pending.append((target, seq, f"assoc:{via}"))
            return
        key = (target, seq)
        if key in self._tasks:
            return  # at most one task per (step, sequence) in an attempt
        step = self.graph.steps[target]
        task = Task(next(self._keys), step, seq, self._executor_of[target], StepStatus.ready, now)
        self._tasks[key] = task
        self._new.append(task)
        self._status_triggers(task, StepStatus.ready)
        prior = self._prior.get(key) if self._prior else None
        if prior is not None and self._recover_skips(task, prior, now):
            return
        self._ready.append(task)

    def _recover_skips(self, task: Task, prior: Row, now: float) -> bool:
        """Apply the step's recovery policy to a task the recovered attempt had; True if skipped."""
        status = StepStatus(prior["status"])
        if self._prior_zombie and status is StepStatus.ready:
            status = StepStatus.active  # its engine died: it may have been handed out
        decision, reason = replay(task.step, status)
        if decision is not StepReplay.skip:
            self.log.info("step_rerun", step=task.step.name, sequence=task.sequence,
                          was=status.value, reason=reason)
            return False
        task.executor = "skip"
        task.started_at = task.ended_at = now
        task.result_kind, task.result = prior["result_kind"], prior["result"]
        task.error_type, task.error_message = prior["error_type"], prior["error_message"]
        self.log.info("step_skipped", step=task.step.name, sequence=task.sequence,
                      was=status.value, reason=reason)
        self._finish(task, status is not StepStatus.failure)
        origin = f"{task.step.name}[{task.sequence}]"
        for event, seq in self._prior_triggers.get((task.step.name, task.sequence), ()):
            self._pending.append((event, seq, f"{origin}:trigger"))  # its ctx.trigger calls
        return True

    def _schedule(self, event: str, target: str, seq: str, due: float, now: float) -> None:
        heapq.heappush(self._delays, (due, next(self._keys), event, target, seq))
        self._batch.delays.append({
            "run_id": self.run_id, "attempt": self.attempt, "event": event, "target": target,
            "sequence": seq, "activated_at": now, "due_at": due, "fired_at": None,
        })

    def _mature_delays(self, now: float) -> None:
        delays = self._delays
        while delays and delays[0][0] <= now:
            _, _, event, target, seq = heapq.heappop(delays)
            self._batch.delays_fired.append({
                "run_id": self.run_id, "attempt": self.attempt, "event": event,
                "target": target, "sequence": seq, "fired_at": now,
            })
            self._reach(target, seq, event, now)

    def _start_ready(self, now: float) -> list[Task]:
        """Start ready tasks, in order, as far as concurrency limits and resources allow."""
        ready, cap = self._ready, self.options.max_concurrent
        self._pool_wait = False
        if self._stopped or not ready:
            return []
        slots = cap - len(self._running) if cap > 0 else len(ready)
        kept: list[Task] = []  # stay ready, in their order
        planned: dict[str, int] = {}  # tasks chosen per step, for per-step limits
        chosen = self._pick(slots, kept, planned, with_resources=True)
        asking = [t for t in chosen if t.step.name in self._wants]
        if asking:
            if self._batch.releases:
                # Commit this round so far (final statuses with their releases) first: a
                # grant must see what was released, and a release goes with its status.
                self._flush()
            granted = self.store.acquire([self._request(t) for t in asking], now=now)
            refused = [t for t in asking if t.key not in granted]
            if refused:  # they hold no slot while they wait; others behind them may start
                self._pool_wait = True
                kept.extend(refused)
                chosen = [t for t in chosen if t.key in granted or t.step.name not in self._wants]
                for task in refused:
                    planned[task.step.name] -= 1
                chosen += self._pick(len(refused), kept, planned, with_resources=False)
        if kept:
            kept.sort(key=lambda t: t.key)
            ready.extendleft(reversed(kept))
        for task in chosen:
            name = task.step.name
            task.status = StepStatus.active
            task.started_at = now
            task.host = self.host
            task.tries += 1
            self._touch(task)
            self._running[task.key] = task
            if name in self._timeout_of:
                due = now + self._timeout_of[name][0]
                heapq.heappush(self._deadlines, (due, task.key, task.tries))
            self._running_by_step[name] = self._running_by_step.get(name, 0) + 1
            if task.step.triggered_by(StepStatus.active):
                self._status_triggers(task, StepStatus.active)
                self._propagate(now)
        return chosen

    def _pick(self, slots: int, kept: list[Task], planned: dict[str, int], *,
              with_resources: bool) -> list[Task]:
        """Take up to ``slots`` ready tasks that per-step limits allow; the rest go to ``kept``."""
        ready, chosen = self._ready, []
        while ready and slots > 0:
            task = ready.popleft()
            name = task.step.name
            count = self._running_by_step.get(name, 0) + planned.get(name, 0)
            if 0 < self._limit_of[name] <= count or (not with_resources and name in self._wants):
                kept.append(task)
                continue
            chosen.append(task)
            planned[name] = planned.get(name, 0) + 1
            slots -= 1
        return chosen

    def _request(self, task: Task) -> Row:
        return {"key": task.key, "run_id": self.run_id, "attempt": self.attempt,
                "step": task.step.name, "sequence": task.sequence,
                "wants": self._wants[task.step.name]}

    def _release(self, task: Task) -> None:
        """Release, with the task's final status, what its step says it releases."""
        name, at = task.step.name, task.ended_at
        releases = self._releases.get(name)
        if releases is None:
            if name in self._wants:
                self._batch.releases.append({"run_id": self.run_id, "attempt": self.attempt,
                                             "step": name, "sequence": task.sequence,
                                             "released_at": at})
        else:
            self._batch.releases.extend(
                {"run_id": self.run_id, "sequence": task.sequence, "pool": pool,
                 "released_at": at} for pool in releases)

    def _check_deadlock(self, now: float) -> None:
        """Fail tasks waiting for pools only this run holds, when nothing can release them."""
        waiting = [t for t in self._ready if t.step.name in self._wants]
        pools = {pool for t in waiting for pool, _, _ in self._wants[t.step.name]}
        holders = [r for r in self.store.leases(held=True) if r["pool"] in pools]
        if not holders or any(r["run_id"] != self.run_id for r in holders):
            return  # another program holds some: its release will come
        held = ", ".join(sorted({f"{r['pool']} by {r['step']}[{r['sequence']}]" for r in holders}))
        for task in waiting:
            self._ready.remove(task)
            task.ended_at = now
            task.error_type = "ResourceDeadlock"
            task.error_message = (
                f"step {task.step.name!r} waits for {self._wants[task.step.name]!r}, held by "
                f"this run ({held}) with nothing left running to release it; release it with "
                "releases=None (the default) or a later step's releases=[pool]")
            self._touch(task)
            self._finish(task, False)
        self._pool_wait = False

    def _touch(self, task: Task) -> None:
        if task.persisted and not task.dirty:
            task.dirty = True
            self._dirty.append(task)

    def _flush(self) -> None:
        batch = self._batch
        if self._new:
            batch.new_tasks = [self._row(t) for t in self._new]
        if self._dirty:
            batch.task_updates = [self._row(t) for t in self._dirty]
        self.store.write(batch)
        for task in self._new:
            task.persisted = True
        for task in self._dirty:
            task.dirty = False
        self._new, self._dirty, self._batch = [], [], Batch()

    def _row(self, t: Task) -> Row:
        return {
            "run_id": self.run_id, "attempt": self.attempt, "step": t.step.name,
            "sequence": t.sequence, "status": t.status.value, "executor": t.executor,
            "created_at": t.created_at, "started_at": t.started_at, "ended_at": t.ended_at,
            "host": t.host, "pid": t.pid, "result_kind": t.result_kind, "result": t.result,
            "error_type": t.error_type, "error_message": t.error_message,
            "traceback": t.traceback, "exit_code": t.exit_code,
        }

    # -- running tasks -----------------------------------------------------------------

    def _submit(self, task: Task) -> None:
        step = task.step
        logger_name = f"{self._logger_name}.{step.name}"
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
        results = None
        if step.name in self._wants_results:
            results = dict(self._results.get(task.sequence, {}))  # a copy: it crosses to the task
        run = TaskRun(task.key, self.run_id, step.name, task.sequence, self.attempt or 0,
                      step.func, step.args, step.kwargs, env, extra, results)
        self.log.info("step_started", step=step.name, sequence=task.sequence)
        self._hand_over(task.executor, run)

    def _hand_over(self, executor: str, run: TaskRun) -> None:
        try:
            self._executor(executor).submit(run, self._inbox.put)
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
            counts[task.status.value] = counts.get(task.status.value, 0) + 1
        failed = tuple((t.step.name, t.sequence) for t in self._failures)
        pending = len(self._ready) + len(self._delays) + len(self._retrying)
        status = "failure" if failed else "paused" if pending else "success"
        delays = tuple((target, seq, due) for due, _, _, target, seq in sorted(self._delays))
        return RunSummary(self.run_id, self.attempt or 0, status, MappingProxyType(counts),
                          failed, pending, delays)


class _NullLog:
    """A logger that drops everything (the engine's default when none is given)."""

    def __getattr__(self, _name: str) -> Any:
        return lambda *args, **kwargs: None
