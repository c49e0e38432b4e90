"""
Running declarative flows: the `Flow` base class and the `@flow` decorator.

``Etl(day="2026-11-01").run()`` checks the parameters, opens the run store, binds the
compiled graph's steps to the flow object, triggers the entry events and runs the engine;
it returns a `RunResult`. The flow object is one run: later ``trigger``/``run`` calls
continue it.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import hashlib
import signal
import sys
import threading
import types
import typing
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

from eventor.clock import Clock
from eventor.config import Config, load_config
from eventor.context import RunResult, StepCall, TaskResult
from eventor.dsl import FLOW_OPTIONS, Event, Expr, FlowMeta, _caller, as_schedule, check_flow_options
from eventor.engine import DEFAULT_SEQUENCE, Engine, RunSummary, StepPlan, plan_steps
from eventor.enums import RunMode
from eventor.exceptions import (
    EventorConfigError,
    EventorUsageError,
    ParameterError,
    RunClaimedError,
    StoreIntegrityError,
    did_you_mean,
)
from eventor.graph import FlowGraph
from eventor.params import Param, checked, coerce, recorded, type_name
from eventor.recovery import (
    RecoveryPlan,
    interrupted,
    owner_alive,
    pick_attempt,
    plan_recovery,
    user_triggers,
)
from eventor.resources import plan_pools
from eventor.schedule import Schedule, Scheduler
from eventor.session import Session, check_store, new_run_id, note_changed_params
from eventor.store import Store

__all__ = ["Flow", "coerce", "flow"]

T = TypeVar("T")


class _Compiled(Generic[T]):
    """A field of the flow's `CompiledFlow`, read from the class or an instance: ``Etl.graph``."""

    def __init__(self, field: str) -> None:
        self.field = field

    def __get__(self, obj: object, owner: FlowMeta) -> T:
        compiled = vars(owner).get("__eventor_flow__")
        if compiled is None:
            raise AttributeError(f"{owner.__qualname__} is the base of flows and has no "
                                 f"{self.field}; subclass it to define a flow")
        return typing.cast(T, getattr(compiled, self.field))


class Flow(metaclass=FlowMeta):
    """
    Base class of declarative flows: events as `Event()` attributes, steps as `@step` methods.

    Instantiate with the flow's parameters (and, optionally, flow options or a ``run_id``);
    the object then records one run in the store.

    Args:
        run_id: the run's id in the store (generated when omitted).
        clock: a time source (tests pass a `MockClock`).
        progress: called after every scheduling round with the counts of tasks ``done``,
            ``failed``, ``running`` and ``waiting`` (ready, retrying, or behind a delay), one
            call at a time, on the thread that ran the round (the engine's, or a thread
            step's worker).
        **values: parameters by name, and flow options that override the class's:
            ``store``, ``config``, ``max_concurrent``, ``executor``,
            ``stop_on_exception``, ``pickle_results`` and ``strict_triggers``.
            ``schedule`` is accepted too, but only the class's is used (by `schedule`).

    Raises:
        ParameterError: an unknown or missing parameter, or a value of the wrong type.
        EventorConfigError: a flow option with a wrong value.

    Attributes:
        run_id: The id of the run this object records (the one taken up, after a
            ``run(resume_interrupted=True)`` found one).
        param_values: Every parameter's value, given or default, by name (read-only);
            each is also an attribute of the object (``self.day``).
        options: The flow options this object runs with: the class's, with those given
            here.
    """

    graph: _Compiled[FlowGraph] = _Compiled("graph")
    """The flow's compiled, validated graph (read from the class or an object)."""
    parameters: _Compiled[Mapping[str, Param]] = _Compiled("params")
    """The flow's parameters, by name: each with its type, default, and whether it is required."""
    entry_events: _Compiled[tuple[str, ...]] = _Compiled("entries")
    """
    The events `run` fires to start the flow (in its ``sequence``) when nothing was triggered
    before: those marked ``Event(entry=True)``, else every plain event that no step fires.
    """

    def __init__(self, *, run_id: str | None = None, clock: Clock | None = None,
                 progress: Callable[[Mapping[str, int]], None] | None = None, **values: Any):
        cls = type(self)
        compiled = cls._compiled()
        params = compiled.params
        flow_name = compiled.graph.name
        self.options: dict[str, Any] = dict(compiled.options)
        given: dict[str, Any] = {}
        for key, value in values.items():
            if key in params:
                given[key] = checked(flow_name, params[key], value)
            elif key == "schedule":
                raise EventorConfigError(
                    f"flow {flow_name!r}: schedule= is a class option (class "
                    f"{cls.__name__}(Flow, schedule=...)); to run on another schedule, give it "
                    f"to {cls.__name__}.schedule(...)", key=key)
            elif key in FLOW_OPTIONS and key != "name":
                for message, fix in check_flow_options({key: value}):
                    raise EventorConfigError(f"flow {flow_name!r}: {message} {fix}".rstrip(),
                                             key=key)
                self.options[key] = value
            else:
                known = ", ".join(params) or "none"
                raise ParameterError(
                    f"flow {flow_name!r} has no parameter {key!r}."
                    + did_you_mean(key, [*params, *FLOW_OPTIONS])
                    + f" Its parameters: {known}.", flow=flow_name, parameter=key,
                )
        for param in params.values():
            if param.name in given:
                continue
            if param.required:
                raise ParameterError(
                    f"flow {flow_name!r} needs parameter {param.name!r} "
                    f"({type_name(param.type)}): pass {cls.__name__}({param.name}=...).",
                    flow=flow_name, parameter=param.name,
                )
            given[param.name] = param.default
        self.param_values: Mapping[str, Any] = types.MappingProxyType(given)
        for key, value in given.items():
            setattr(self, key, value)
        self.run_id = run_id or new_run_id()
        self._given_run_id = run_id is not None
        self._clock = clock
        self._progress = progress
        self._engine: Engine | None = None
        self._held: list[Session] = []  # what the finalizer closes
        self._finalizer = weakref.finalize(self, _release, self._held)
        self._started = False
        self._triggered = False
        self._mode = RunMode.restart
        self._from_attempt: int | None = None
        self._config: Config | None = None  # read when it is made, where it records
        self._planned: tuple[FlowGraph, StepPlan, dict[str, Any]] | None = None
        if not _REBUILDING.get():  # where it records (not on a host that runs its steps)
            # Its store is opened when it runs; what the config says its steps cannot do (a
            # host it lacks, a pool it does not declare) and a store tag it lacks are found now
            self._config = config = load_config(self.options.get("config"))
            check_store(self.options.get("store", ""), config)
            graph, overrides = self._bound_graph(), self._overrides()
            plan = plan_steps(graph.steps, config.engine_options(**overrides))
            plan_pools(graph, config.POOLS)
            self._planned = (graph, plan, self._options_seen())  # for its engine

    def __reduce__(self) -> tuple[Any, ...]:
        """
        A flow object sent to run a step on another host: its class (by reference), run id
        and parameters. Attributes set on the object by other means do not travel.
        """
        return (_remote_flow, (type(self), self.run_id, dict(self.param_values)))

    # -- running -------------------------------------------------------------------------

    def trigger(self, event: Event | Expr | str, sequence: Any = None) -> None:
        """
        Fire ``event`` in ``sequence`` (default ``0``) when the flow next runs.

        A trigger before the first `run` replaces the entry events: unless given a
        ``sequence``, that run fires only what was triggered. The first call opens the run
        store.

        Args:
            event: An event of the flow: an `Event` attribute, a named expression, or its
                name.
            sequence: The sequence to fire it in; any value, used as its ``str``.

        Raises:
            EventorUsageError: the flow has no such event, or it is a join event (which
                fires by itself), or the flow is closed.
        """
        engine = self._ensure_engine()
        engine.trigger(self._event_name(event), sequence)
        self._triggered = True

    def run(self, sequence: Any = None, *, max_loops: int = -1,
            resume_interrupted: bool = False) -> RunResult:
        """
        Run the flow until nothing is left to do (or for ``max_loops`` rounds).

        The first run triggers the entry events in ``sequence`` (default ``0``) unless
        `trigger` was called first; later runs continue the same run, and trigger the entry
        events again only for a given ``sequence``.

        Args:
            sequence: the sequence the entry events fire in.
            max_loops: return after this many scheduling rounds, or once only delays are
                left to wait for (-1: no bound).
            resume_interrupted: when the store holds an interrupted run of this program and
                flow with the same parameters (its engine was killed, or its host lost), recover
                that run (the latest) instead of starting a new one, as `recover` would;
                ``run_id`` then names it. Of several programs started at once, one takes it.

        Returns:
            The `RunResult`: truthy when no failure went unhandled.
        """
        if resume_interrupted and self._given_run_id:
            raise EventorUsageError(
                f"{self!r} was given run_id=, and resume_interrupted=True picks the run itself; "
                f"drop one, or recover that run with {type(self).__name__}.recover(run_id)")
        if resume_interrupted and self._engine is None and not (self._started or self._triggered):
            self._resume_interrupted()
        engine = self._ensure_engine()
        if sequence is not None or not (self._started or self._triggered):
            compiled = type(self)._compiled()
            if compiled.inferred and len(compiled.entries) > 1 and not self._started:
                engine.log.warning("entry_events", events=", ".join(compiled.entries),
                                sequence=DEFAULT_SEQUENCE if sequence is None else str(sequence))
            for name in compiled.entries:
                engine.trigger(name, sequence)
        self._started, self._triggered = True, False
        try:
            summary = engine.run(max_loops)
        finally:
            engine.stop_executors()  # no worker outlives run(); the next run starts new ones
        return self._result(summary, engine)

    def _resume_interrupted(self) -> None:
        """Make this flow's run the latest interrupted one of its kind, if there is one."""
        session = self._session_held()

        def start() -> Engine:
            self._engine = None
            self.run_id = session.run_id
            return self._ensure_engine()

        own_id = self.run_id
        row = session.resume_interrupted(self.graph.name, recorded(self.param_values), start)
        if row is None:
            self._engine, self.run_id = None, own_id
            session.choose_run(own_id)
            return
        self._mode = RunMode.recover
        for event, sequence in user_triggers(session.store, self.run_id, row["attempt"]):
            self.trigger(event, sequence)

    @classmethod
    def recover(cls, run_id: str = "", *, recovery_run: int | None = None,
                clock: Clock | None = None, max_loops: int = -1,
                progress: Callable[[Mapping[str, int]], None] | None = None,
                expect_attempt: int | None = None, **values: Any) -> RunResult:
        """
        Recover a run: a new attempt that skips what succeeded and reruns the rest.

        The run's recorded parameters are used again unless ``values`` overrides them; the
        triggers its user made (the entry events, `trigger` calls) are fired again in their
        sequences, and each task the recovered attempt had is skipped or rerun by its step's
        ``recovery`` policy (see `recovery_plan`).

        A ``run_id`` the store never recorded (its first engine died before writing
        anything) is run from the start, as its first attempt.

        Args:
            run_id: the run; when empty, the latest run of this program in the store.
            recovery_run: the attempt to recover from (default: the latest).
            clock: a time source (tests pass a `MockClock`).
            max_loops: return after this many scheduling rounds, or once only delays are
                left to wait for (-1: no bound).
            progress: called after every scheduling round with task counts (see `Flow`).
            expect_attempt: recover only while this attempt is still the run's latest, else
                raise `RunClaimedError`: how a program that takes up an interrupted run it
                found makes sure that no other program took it up (or finished it) first.
            **values: parameter overrides and flow options (``store``, ``config``, ...).

        Returns:
            The `RunResult` of the new attempt: truthy when no failure went unhandled.

        Raises:
            RunNotFoundError: the store has no such run (or attempt).
            RunClaimedError: another program runs the run, or began recovering it first.
            EventorUsageError: without ``run_id``, a ``shared_db`` store holds several runs
                of the program.
        """
        flow = cls._reopen(run_id, RunMode.recover, recovery_run, clock, values)
        flow._progress = progress
        with flow:
            if flow._mode is RunMode.restart:  # never recorded: its first attempt, from the start
                return flow.run(max_loops=max_loops)
            engine = flow._ensure_engine()
            engine.expect_latest = expect_attempt
            store = engine.store
            attempt = pick_attempt(store, flow.run_id, recovery_run)["attempt"]
            for event, sequence in user_triggers(store, flow.run_id, attempt):
                flow.trigger(event, sequence)
            return flow.run(max_loops=max_loops)

    @classmethod
    def resume(cls, run_id: str = "", *, clock: Clock | None = None, max_loops: int = -1,
               progress: Callable[[Mapping[str, int]], None] | None = None,
               **values: Any) -> RunResult:
        """
        Continue a run where it stopped (a bounded run, pending delays, or a crash).

        Fired triggers are not fired again, matured delays fire, pending ones keep their due
        time, and tasks left ready (or active by an engine that died) start.

        Args:
            run_id: the run; when empty, the latest run of this program in the store. Its
                latest attempt is continued.
            clock: a time source (tests pass a `MockClock`).
            max_loops: return after this many scheduling rounds, or once only delays are
                left to wait for (-1: no bound).
            progress: called after every scheduling round with task counts (see `Flow`).
            **values: parameter overrides and flow options (``store``, ``config``, ...);
                the run's recorded parameters are used for the rest.

        Returns:
            The `RunResult` of the continued attempt: truthy when no failure went unhandled.

        Raises:
            RunNotFoundError: the store has no such run.
            RunClaimedError: a live engine still runs that attempt.
            EventorUsageError: without ``run_id``, a ``shared_db`` store holds several runs
                of the program.
        """
        flow = cls._reopen(run_id, RunMode.continue_, None, clock, values)
        flow._progress = progress
        flow._started = True  # the entry events fired in the attempt being continued
        with flow:
            return flow.run(max_loops=max_loops)

    @classmethod
    def schedule(cls, when: str | float | datetime.timedelta | Schedule | None = None, *,
                 param: str | None = None, catchup: bool | None = None, tz: str | None = None,
                 start: datetime.datetime | None = None, format: str | None = None,
                 runs: int | None = None, until: datetime.datetime | None = None,
                 name: str | None = None, clock: Clock | None = None,
                 **values: Any) -> list[RunResult]:
        """
        Run the flow once per slot of a schedule, until stopped: each slot is claimed in the
        run store first, so it runs once however many schedulers share the store.

        On start, runs this schedule left interrupted (its scheduler was killed mid-run) are
        recovered, and the slots missed since the store's latest claimed one are run (all of
        them with ``catchup``, else the latest); then each slot runs when it comes.
        SIGTERM ends it once the slot running then has finished; Ctrl-C ends it at once, and
        a slot's run it interrupts is recovered by the next scheduler to start (the
        `KeyboardInterrupt` is raised again).

        Args:
            when: a cron expression (``"0 2 * * *"``), an interval (``"15m"``, a timedelta,
                seconds) or a `Schedule`; default the class's ``schedule=`` option.
            param: the flow parameter that gets each slot's time (see `Schedule`).
            catchup: run every missed slot, not only the latest (see `Schedule`).
            tz: the time zone of the slots (see `Schedule`).
            start: where an interval's slots are counted from (see `Schedule`).
            format: a strftime format for a ``str`` ``param``.
            runs: stop after this many slot runs (default: never).
            until: stop before the first slot after this time.
            name: the schedule's name in the store (default ``{program}:{flow}`` and the
                parameters in ``values``, so that schedules of one flow with other
                parameters each run every slot).
            clock: a time source (tests pass a `MockClock`).
            **values: the flow's parameters and options (``store``, ``config``, ...) for
                every run.

        Returns:
            The result of every run this scheduler made, in order.

        Raises:
            EventorConfigError: no schedule given, or a wrong one (before anything runs).
            ParameterError: ``param`` is not a parameter of the flow, or ``values`` are wrong.
        """
        compiled = cls._compiled()
        declared = compiled.options.get("schedule")
        if when is None or isinstance(when, Schedule) or declared is None:
            base = when if when is not None else declared
        else:  # a new time for the class's schedule: its param, zone and format still hold
            base = declared.replace(when=when)
        if base is None:
            raise EventorConfigError(
                f"flow {compiled.graph.name!r} has no schedule: pass one "
                f"({cls.__name__}.schedule('0 2 * * *')), or declare it with "
                f"class {cls.__name__}(Flow, schedule='0 2 * * *')", key="schedule")
        schedule = as_schedule(base).replace(param=param, catchup=catchup, tz=tz, start=start,
                                             format=format)
        if schedule.param is not None and schedule.param not in cls.parameters:
            raise ParameterError(
                f"flow {compiled.graph.name!r} has no parameter {schedule.param!r} for the slot "
                f"time; its parameters: {', '.join(cls.parameters) or 'none'}",
                flow=compiled.graph.name, parameter=schedule.param)
        if runs is not None and runs < 1:
            raise EventorConfigError(f"runs={runs!r}: give a number of slot runs >= 1, or none "
                                     "to run until stopped", key="runs")
        if schedule.param is not None and schedule.param in values:
            raise ParameterError(
                f"parameter {schedule.param!r} is each slot's time; do not give it a value",
                flow=compiled.graph.name, parameter=schedule.param)
        cls(**values,  # mistakes in the values are found now
            **({schedule.param: schedule.value(0.0, cls.parameters[schedule.param].type)}
               if schedule.param else {})).close()
        results: list[RunResult] = []
        options = {k: v for k, v in values.items() if k in FLOW_OPTIONS}
        with cls._session(options) as session:
            key = name or _schedule_key(session.program, compiled.graph.name,
                                        {k: v for k, v in values.items() if k in cls.parameters})
            running: list[str] = []  # the run id of the slot running now

            def run_slot(slot: float, run_id: str) -> None:
                slot_values = dict(values)
                if schedule.param is not None:
                    slot_values[schedule.param] = schedule.value(
                        slot, cls.parameters[schedule.param].type)
                running.append(run_id)
                with cls(run_id=run_id, clock=clock, **slot_values) as flow:
                    result = flow.run()
                running.clear()
                session.log.info("slot_finished", schedule=key, run_id=run_id, status=result.status)
                results.append(result)

            def tend() -> None:  # a scheduler that died mid-slot, here or on another host
                cls._pick_up_slots(session, key, run_slot, clock, results, options)

            if schedule.same_text():
                session.log.warning("slot_format_repeats", schedule=key, format=schedule.format,
                                    why="slots in a row get the same text: their runs get the "
                                        "same parameter")
            scheduler = Scheduler(schedule, key, session.store, run_slot, new_run_id, clock=clock,
                                  log=session.log, runs=runs,
                                  until=until.timestamp() if until is not None else None,
                                  recheck=None if clock is not None else 60.0, tend=tend)
            with _stopped_by_sigterm(scheduler):
                try:
                    scheduler.run()
                except KeyboardInterrupt:
                    if running:  # its run is interrupted: a scheduler started again recovers it
                        session.log.warning("schedule_interrupted", schedule=key, run_id=running[0])
                        raise
                    session.log.info("schedule_stopped", schedule=key, why="Ctrl-C")
        return results

    @classmethod
    def _pick_up_slots(cls, session: Session, key: str, run_slot: Callable[[float, str], None],
                       clock: Clock | None, results: list[RunResult],
                       options: Mapping[str, Any]) -> None:
        """
        Finish the slots whose scheduler died: recover a run it left interrupted, and start
        the run of a slot it claimed but died before starting.
        """
        store, grace = session.store, session.config.heartbeat_grace
        claimed = store.slots(key, last=PICK_UP_SLOTS)
        if not claimed:
            return
        ids = {row["run_id"] for row in claimed}
        for row in interrupted(store, grace=grace, program=session.program, flow=cls.graph.name):
            if row["run_id"] not in ids:
                continue
            session.log.warning("slot_run_interrupted", schedule=key, run_id=row["run_id"])
            try:
                result = cls.recover(row["run_id"], clock=clock, expect_attempt=row["attempt"],
                                     **options)
            except RunClaimedError as exc:
                session.log.info("run_taken", run_id=row["run_id"], why=str(exc))
                continue
            session.log.info("slot_finished", schedule=key, run_id=row["run_id"],
                             status=result.status)
            results.append(result)
        for row in claimed:
            claim = {"ended_at": None, "heartbeat_at": row["claimed_at"], "host": row["host"],
                     "pid": row["pid"]}
            if owner_alive(claim, grace=grace) or store.run(row["run_id"]) is not None:
                continue
            session.log.warning("slot_never_started", schedule=key, run_id=row["run_id"])
            try:
                run_slot(row["slot_at"], row["run_id"])
            except StoreIntegrityError:  # another scheduler started it meanwhile
                session.log.info("run_taken", run_id=row["run_id"])

    @classmethod
    def cli(cls, args: list[str] | None = None) -> None:
        """
        Run the ``eventor`` commands for this flow: ``python etl.py run --day 2026-11-01``.

        ``run`` has one option per flow parameter; ``recover``, ``continue``, ``graph``,
        ``runs``, ``show``, ``logs``, ``report`` and ``purge`` work as in ``eventor``. With
        no arguments at all (``python etl.py``), the flow runs with its defaults.
        """
        from eventor.cli import flow_app, run_app  # typer is loaded only for command lines

        args = list(sys.argv[1:] if args is None else args) or ["run"]
        run_app(flow_app(cls), args, Path(sys.argv[0]).name or cls.__name__)

    @classmethod
    def recovery_plan(cls, run_id: str = "", *, recovery_run: int | None = None,
                      **options: Any) -> RecoveryPlan:
        """
        What `recover` would skip and rerun, and why; nothing is run.

        Args:
            run_id: the run; when empty, the latest run of this program in the store.
            recovery_run: the attempt a recovery would start from (default: the latest).
            **options: flow options that say where the store is (``store``, ``config``);
                the class's are used for the rest.

        Returns:
            The plan: per task of that attempt, skip or rerun and the rule that says so.

        Raises:
            RunNotFoundError: the store has no such run (or attempt).
        """
        with cls._session(options) as session:
            # a run the store never recorded has no plan (`recover` would start it afresh)
            chosen = session.choose_run(run_id, RunMode.recover, unrecorded_is_new=False)
            return plan_recovery(session.store, cls.graph, chosen, recovery_run)

    @classmethod
    def _session(cls, values: Mapping[str, Any]) -> Session:
        options = {**cls._compiled().options, **values}
        return Session(cls.graph.name, options.get("store", ""), options.get("config"))

    @classmethod
    def _reopen(cls, run_id: str, mode: RunMode, attempt: int | None, clock: Clock | None,
                values: dict[str, Any]) -> Flow:
        """A flow object on an existing run, with its recorded parameters unless overridden."""
        session = cls._session({k: v for k, v in values.items() if k in FLOW_OPTIONS})
        try:
            chosen = session.choose_run(run_id, mode)
            before = (session.store.run(chosen) or {}).get("info", {}).get("params", {})
            params = {k: coerce(cls.parameters[k], v) for k, v in before.items()
                      if k in cls.parameters and k not in values}
            given = {k: v for k, v in values.items() if k in cls.parameters}
            note_changed_params(session.log, chosen, before, recorded(given))
            flow = cls(run_id=chosen, clock=clock, **{**values, **params})
        except BaseException:
            session.close()
            raise
        flow._held.append(session)
        flow._mode, flow._from_attempt = session.mode, attempt
        return flow

    def close(self) -> None:
        """Stop the executors and close the store (when the flow opened it)."""
        if self._engine is not None:
            self._engine.close()
        self._finalizer()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.param_values.items())
        return f"{type(self).__name__}({params}) run_id={self.run_id!r}"

    # -- internals -----------------------------------------------------------------------

    def _event_name(self, event: Any) -> str:
        if isinstance(event, str):
            return event
        name = type(self)._compiled().names.get(id(event))
        if name is None:
            raise EventorUsageError(f"{event!r} is not an event of flow {self.graph.name!r}")
        return name

    def _ensure_engine(self) -> Engine:
        if self._engine is not None:
            return self._engine
        if not self._finalizer.alive:
            raise EventorUsageError(f"{self!r} is closed; create a new flow object to run again")
        session = self._session_held()
        if not session.run_id:  # a new run (a reopened one was chosen by _reopen)
            session.choose_run(self.run_id)
        planned = self._planned
        if planned is not None and planned[2] == self._options_seen():
            graph, plan = planned[0], planned[1]
        else:  # options changed since it was made (or it was rebuilt on a host): plan afresh
            graph, plan = self._bound_graph(), None
        self._engine = session.start(
            graph, attempt=self._from_attempt, clock=self._clock, progress=self._progress,
            info={"params": recorded(self.param_values), **_ref_of(type(self))}, plan=plan,
            **self._overrides())
        return self._engine

    def _options_seen(self) -> dict[str, Any]:
        """What of its options its plan and bound steps were made with."""
        return {**self._overrides(), "pickle_results": self.options.get("pickle_results")}

    def _overrides(self) -> dict[str, Any]:
        """The flow options that win over the config's engine options."""
        options = self.options
        return {"max_concurrent": options.get("max_concurrent"),
                "executor": options.get("executor"),
                "stop_on_exception": options.get("stop_on_exception"),
                "strict_triggers": options.get("strict_triggers")}

    def _session_held(self) -> Session:
        """The session this flow records its run through, opened on first use."""
        if not self._held:
            config = self._config if self._config is not None else self.options.get("config")
            self._held.append(Session(self.graph.name, self.options.get("store", ""), config))
        return self._held[0]

    @property
    def store(self) -> Store:
        """The run store this flow records its run in (opened on first use)."""
        return self._ensure_engine().store

    def _bound_graph(self) -> FlowGraph:
        """The class's graph with each step's function bound to this object."""
        compiled = type(self)._compiled()
        graph = compiled.graph
        events = frozenset(graph.events)
        allow_pickle = bool(self.options.get("pickle_results", False))
        steps = {}
        for name, spec in graph.steps.items():
            info = compiled.steps[name]
            call = StepCall(info.func, flow=self if info.method else None,
                            wants_ctx=info.wants_ctx, flow_name=graph.name, events=events,
                            allow_pickle=allow_pickle, owner=type(self), step=name)
            steps[name] = replace(spec, func=call, context=info.wants_ctx)
        return replace(graph, steps=types.MappingProxyType(steps))

    def _result(self, summary: RunSummary, engine: Engine) -> RunResult:
        allow_pickle = bool(self.options.get("pickle_results", False))
        tasks = tuple(
            TaskResult(t.step.name, t.sequence, t.status.value, t.result_kind, t.result,
                       f"{t.error_type}: {t.error_message}" if t.error_type else None,
                       allow_pickle, skipped=t.executor == "skip", tries=t.tries)
            for t in engine.tasks()
        )
        return RunResult(summary, tasks)


PICK_UP_SLOTS = 20  # how many of a schedule's latest slots a scheduler looks after


def _ref_of(cls: type) -> dict[str, str]:
    """
    ``{"ref": name}``: the name that finds ``cls`` in its module, which the command line's
    ``eventor recover FILE:NAME`` needs (a flow's name may differ); nothing for a class
    defined inside a function.
    """
    name = cls.__qualname__
    return {} if "<locals>" in name else {"ref": name}


def _schedule_key(program: str, flow: str, params: Mapping[str, Any]) -> str:
    """
    A schedule's name in the store: ``program:flow``, and the parameters it runs with, so
    that schedules of one flow with other parameters claim slots of their own.
    """
    if not params:
        return f"{program}:{flow}"
    shown = ", ".join(f"{k}={v}" for k, v in sorted(recorded(params).items()))
    if len(shown) > 160:
        shown = hashlib.sha1(shown.encode()).hexdigest()[:16]
    return f"{program}:{flow}({shown})"


@contextlib.contextmanager
def _stopped_by_sigterm(scheduler: Scheduler) -> Iterator[None]:
    """While a scheduler runs in the main thread, SIGTERM (systemd's stop) ends it gently."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    def stop(*_: Any) -> None:
        scheduler.log.warning("schedule_stopping", schedule=scheduler.name, why="SIGTERM")
        scheduler.stop()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


_REBUILDING: contextvars.ContextVar[bool] = contextvars.ContextVar("rebuilding", default=False)


def _remote_flow(cls: type[Flow], run_id: str, params: dict[str, Any]) -> Flow:
    """A flow object rebuilt on another host, to run its steps there (its store is not here)."""
    token = _REBUILDING.set(True)
    try:
        return cls(run_id=run_id, **params)
    finally:
        _REBUILDING.reset(token)


def _release(held: list[Any]) -> None:
    while held:
        held.pop().close()


@overload
def flow(cls: type, /) -> Any: ...


@overload
def flow(
    *,
    name: str | None = None,
    store: str | Store | None = None,
    config: Mapping[str, Any] | str | None = None,
    max_concurrent: int | None = None,
    executor: str | None = None,
    stop_on_exception: bool | None = None,
    pickle_results: bool | None = None,
    strict_triggers: bool | None = None,
    schedule: str | float | datetime.timedelta | Schedule | None = None,
) -> Callable[[type], Any]: ...


def flow(cls: type | None = None, /, **options: Any) -> Any:
    """
    Make a plain class a flow: ``@flow`` or ``@flow(store="sqlite:///etl.db", max_concurrent=4)``.

    Returns a `Flow` subclass of the class, so ``super()`` and ``isinstance`` keep working.
    The options are those a `Flow` subclass takes as class keywords
    (``class Etl(Flow, max_concurrent=4)``); an option given as None is left unset.

    Args:
        cls: The class, when ``@flow`` is used bare.

    Keyword Args:
        name (str): The flow's name, in the store and the logs (default: the class name).
        store (str | Store): Where runs are recorded: ``""`` for the default (the
            ``DATABASES`` tag that ``$EVENTOR_DB_CONFIG_TAG`` names, else
            ``{workdir}/{program}.run.db``), ``":memory:"``, a file path, a SQLAlchemy
            URL, a tag under the config's ``DATABASES``, or an open store.
        config (dict | str): A dict, a YAML file path, or YAML text (see `Config`).
        max_concurrent (int): Tasks running at once across all executors (-1: no limit);
            overrides the config's.
        executor (str): The executor of steps that name none (``"process"``,
            ``"thread"``, ...); overrides the config's ``task_construct``.
        stop_on_exception (bool): The steps' default: after a failure no trigger handles,
            start no new task.
        pickle_results (bool): Store a result that is not JSON as a pickle, and read
            pickles back (reading a pickle runs code).
        strict_triggers (bool): A ``ctx.trigger`` of an event its step does not declare
            in ``emits`` fails the task.
        schedule (str | float | timedelta | Schedule): A cron expression, an interval or
            a `Schedule`, run by the class's `schedule` method.

    Returns:
        The `Flow` subclass; or, called without a class, a decorator that makes one.

    Raises:
        FlowDefinitionError: an unknown option, an option with a wrong value, or a
            problem in the class's events and steps (all of them at once).
        TypeError: the class is a `Flow` already (give it options as class keywords).
    """
    options = {k: v for k, v in options.items() if v is not None}
    where = _caller(1)

    def make(plain: type) -> Any:
        if isinstance(plain, FlowMeta):
            raise TypeError(f"{plain.__qualname__} is already a Flow; give options as class "
                            f"keywords: class {plain.__name__}(Flow, max_concurrent=4)")
        ns = {"__module__": plain.__module__, "__qualname__": plain.__qualname__,
              "__doc__": plain.__doc__}
        return FlowMeta(plain.__name__, (plain, Flow), ns, __where__=where, **options)

    return make(cls) if cls is not None else make
