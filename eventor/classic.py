"""
The imperative API of Eventor 5.1: ``add_event``, ``add_step``, ``add_assoc``,
``trigger_event``, ``run``, ``close``. It builds the same `FlowGraph` as the declarative
front end and runs it on the same engine.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from eventor.builder import GraphBuilder
from eventor.clock import Clock
from eventor.config import Config, default_program
from eventor.context import StepCall
from eventor.engine import Engine, RunSummary, plan_steps
from eventor.enums import RunMode
from eventor.exceptions import (
    EventorConfigError,
    EventorUsageError,
    FlowDefinitionError,
    Problem,
    did_you_mean,
)
from eventor.graph import And, EventSpec, FlowGraph, JoinRef, Or, StepSpec, is_number
from eventor.options import UNSET, EngineOptions, StepOptions
from eventor.params import recorded
from eventor.recovery import RecoveryPlan, plan_recovery
from eventor.resources import units_of
from eventor.session import Session, new_run_id, note_changed_params
from eventor.steps import fit_signature, mark_of, spec_from_mark
from eventor.store import Store

__all__ = ["Eventor", "new_run_id"]


def _caller(depth: int = 2) -> str:
    frame = sys._getframe(depth)
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _name_of(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, EventSpec | StepSpec):
        return value.name
    name = getattr(value, "name", None)  # an Event attribute of a Flow class
    if isinstance(name, str) and not callable(value):
        return name
    raise EventorUsageError(
        f"{value!r} is not {what}: pass what add_event()/add_step() returned, or its name"
    )


def _events_of(value: Any) -> tuple[str, ...]:
    """``emits=``: one event or several, as names."""
    items = value if isinstance(value, tuple | list | set | frozenset) else () if value is None \
        else (value,)
    return tuple(_name_of(item, "an event") for item in items)


def _operand_of(value: Any) -> Any:
    """A joined event as the builder takes it: a name, or an expression (to_operand's forms)."""
    return value if isinstance(value, tuple | list | And | Or) else _name_of(value, "an event")


class Eventor:
    """
    A flow built call by call, run on the Eventor engine and recorded in a run store.

    Args:
        name: the flow's name (default: the program's file name).
        store: ``""`` for the default (the ``DATABASES`` tag that
            ``$EVENTOR_DB_CONFIG_TAG`` names, else ``{workdir}/{program}.run.db``),
            ``":memory:"``, a file path, a SQLAlchemy URL, a tag under the config's
            ``DATABASES``, or a `Store`.
        run_mode: RUN_RESTART for a new run; RUN_RECOVER for a new attempt of a run that
            skips what succeeded; RUN_CONTINUE to pick up a paused or crashed attempt.
        recovery_run: the attempt to recover from (with RUN_RECOVER; default the latest).
        run_id: the run's id in the store: generated for RUN_RESTART when empty; for
            RUN_RECOVER and RUN_CONTINUE the latest run of this program when empty.
        config: a dict, a YAML file path, or YAML text (see `eventor.config`).
        clock: a time source (tests pass a `MockClock`).
        config_tag: the config's root tag (default ``$EVENTOR_CONFIG_TAG`` or ``EVENTOR``).
        progress: called after every scheduling round with task counts (see `Engine`).
        resume_interrupted: when the store holds an interrupted run of this program and flow
            name (its engine was killed, or its host lost), recover that run (the latest)
            instead of starting a new one. The choice is made when the run starts (the first
            `run`); ``run_id`` and ``run_mode`` then say which. Of several programs started
            at once, one takes it.

    Raises:
        RunNotFoundError: RUN_RECOVER or RUN_CONTINUE found no such run in the store.
        EventorUsageError: without ``run_id``, a ``shared_db`` store holds several runs of
            the program.

    Attributes:
        name: The flow's name.
        run_id: The run's id in the store (the interrupted run taken up, with
            ``resume_interrupted``, once the run started).
        run_mode: The run mode asked for, as a `RunMode` (``recover`` once
            ``resume_interrupted`` took up a run).
        recovery_run: As given.
        resume_interrupted: As given; may be set until the run starts.
        expect_attempt: With RUN_RECOVER, recover only while this attempt is still the
            run's latest (else `RunClaimedError`), so that two programs taking up one
            interrupted run do not both recover it; None (the default) checks nothing.
        program: The program's name, recorded with the run (``$EVENTOR_PROGRAM``, else
            the script's file name).
        config: The loaded `Config`.
        store: The run store.
        progress: As given; may be set until the run starts.
        summary: The `RunSummary` of the latest `run`, or None before the first.
    """

    def __init__(
        self,
        name: str = "",
        store: str | Store = "",
        run_mode: RunMode | str = RunMode.restart,
        recovery_run: int | None = None,
        run_id: str = "",
        config: Mapping[str, Any] | str | Config | None = None,
        *,
        clock: Clock | None = None,
        config_tag: str | None = None,
        progress: Callable[[Mapping[str, int]], None] | None = None,
        resume_interrupted: bool = False,
    ) -> None:
        try:
            self.run_mode = RunMode(getattr(run_mode, "value", run_mode))
        except ValueError:
            raise EventorConfigError(
                f"run_mode={run_mode!r} is not a run mode: give RUN_RESTART, RUN_RECOVER or "
                "RUN_CONTINUE", key="run_mode") from None
        if resume_interrupted and (self.run_mode is not RunMode.restart or run_id):
            raise EventorUsageError(
                "resume_interrupted=True chooses the run itself: give it without run_mode= "
                f"({self.run_mode.name}) and run_id=, or recover a run with RUN_RECOVER")
        self.resume_interrupted = resume_interrupted  # may be set until the run starts
        # recover only while this attempt is the run's latest (RunClaimedError otherwise)
        self.expect_attempt: int | None = None
        self.recovery_run = recovery_run
        self.name = name or default_program()
        self._session = session = Session(self.name, store, config, config_tag=config_tag)
        self.config: Config = session.config
        self.program = session.program
        self._clock = clock
        self.progress = progress  # called after every round with task counts
        self.store: Store = session.store
        try:
            self.run_id = session.choose_run(run_id, self.run_mode)
        except BaseException:
            session.close()
            raise
        self._builder = GraphBuilder(self.name)
        self._early_triggers: list[tuple[str, Any]] = []
        self._params: dict[str, Any] = {}
        self._ref = ""  # the builder that made it, when the command line did (see _info)
        self._engine: Engine | None = None
        self._options: EngineOptions | None = None  # the config's, once a step is checked
        self._pool_limits = dict(self.config.POOLS)  # and the ResourcePools of steps so far
        self._plain_ok: set[bool] = set()  # steps of no options of their own found fine
        self._closed = False
        self.summary: RunSummary | None = None

    # -- building ----------------------------------------------------------------------

    def _check_open(self, doing: str) -> None:
        if self._closed:
            raise EventorUsageError(f"cannot {doing}: this Eventor is closed")
        if self._engine is not None:
            raise EventorUsageError(
                f"cannot {doing} after run() started: the flow is frozen then; "
                "add every event and step before the first run()"
            )

    def _raise_new_problems(self, before: int) -> None:
        if len(self._builder.problems) > before:
            problems = self._builder.problems[before:]
            del self._builder.problems[before:]
            raise FlowDefinitionError(self.name, problems)

    def add_event(self, name: str, expr: Any = None, *, join: Any = None) -> EventSpec:
        """
        Add an event; with ``expr`` an expression event (a tuple means *and*, `or_` means
        *or*); with ``join`` a join event: ``join=evr.join(loaded, over=found)`` or
        ``join=(loaded, found)`` fires once ``loaded`` fired in every sequence that the
        step emitting ``found`` started with ``ctx.trigger``.

        Args:
            name: The event's name, unique among the flow's events and steps.
            expr: For an expression event: what must have fired in a sequence for it to
                fire there. Events (what ``add_event`` returned, or names), a tuple or
                list of them (*and*), ``or_(...)`` (*or*), nested.
            join: For a join event: ``evr.join(joined, over=event)`` or a
                ``(joined, over)`` pair; ``joined`` may be an expression.

        Returns:
            The event, to pass to ``add_assoc``, ``triggers`` and ``trigger_event``.

        Raises:
            FlowDefinitionError: the name is taken or empty, or ``expr`` or ``join`` is
                not made of events.
            EventorUsageError: ``join`` has the wrong shape, or the run started (or the
                Eventor is closed).
        """
        self._check_open("add an event")
        before = len(self._builder.problems)
        joined = None
        if isinstance(join, JoinRef):
            joined = (_operand_of(join.event), _name_of(join.over, "an event"))
        elif join is not None:
            if not (isinstance(join, tuple | list) and len(join) == 2):
                raise EventorUsageError(
                    f"join={join!r} for event {name!r}: give evr.join(joined, over=event) or "
                    "a (joined, over) pair")
            joined = (_operand_of(join[0]), _name_of(join[1], "an event"))
        spec = self._builder.add_event(name, expr, where=_caller(), join=joined)
        self._raise_new_problems(before)
        return spec

    def add_step(
        self,
        name: str | Callable[..., Any],
        func: Callable[..., Any] | None = None,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        triggers: Mapping[Any, Any] | None = None,
        acquires: Iterable[Any] | None = None,
        releases: Iterable[Any] | None = None,
        recovery: Mapping[Any, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        host: str | None = None,
        *,
        emits: Iterable[Any] | None = None,
    ) -> StepSpec:
        """
        Add a step: ``func(*args, **kwargs)`` run as a task per triggered sequence.

        ``triggers`` maps a status (``STEP_SUCCESS``, ...) to an event or a tuple of events;
        ``emits`` lists the events the step may fire itself with ``ctx.trigger``;
        ``config`` may set ``task_construct``, ``max_concurrent`` and ``stop_on_exception``
        for this step.

        A function decorated with `@step` may be given alone (``add_step(extract)``): its
        name, its wiring (``on=`` becomes an association) and its options come from the
        decorator, and it gets a `StepContext` when it takes one. Arguments given here win.
        (With ``args`` or ``kwargs``, the decorator is not read.)

        Args:
            name: The step's name, unique among the flow's events and steps; or a function
                marked with `@step`, named after it.
            func: What a task calls.
            args: Positional arguments for ``func``.
            kwargs: Keyword arguments for ``func``.
            triggers: What the step's tasks fire: a status (``STEP_SUCCESS``,
                ``STEP_FAILURE``, ``STEP_COMPLETE``, ``STEP_READY``, ``STEP_ACTIVE``) to an
                event or a tuple of events, fired in the task's sequence.
            acquires: The pool units a task must hold to start, ``[(pool, n), ...]``; a
                pool is a `ResourcePool`, or the name of one in the config's ``POOLS``.
            releases: None (the default) gives back what the task acquired when it ends;
                ``[]`` keeps it; ``[pool, ...]`` gives back those pools' units held in the
                task's sequence.
            recovery: What a recovery does with a task of the step, by the status it had
                in the recovered attempt: ``{STEP_FAILURE: STEP_SKIP}``. Default: a
                success is skipped, anything else rerun.
            config: Step options under their config keys: ``task_construct``,
                ``max_concurrent``, ``stop_on_exception``, ``retries``, ``retry_delay``,
                ``backoff``, ``max_retry_delay``, ``retry_on``, ``timeout``,
                ``timeout_grace``, ``worker_resources``.
            host: Run the step on this host, over SSH (the config's ``HOSTS`` or
                ``~/.ssh/config``).
            emits: The events the step may fire itself with ``ctx.trigger``: one, or
                several.

        Returns:
            The step, to pass to ``add_assoc``.

        Raises:
            FlowDefinitionError: the name is taken or empty, or the decorator's wiring
                is wrong.
            EventorUsageError: an ``emits`` item is not an event, the run started, or the
                Eventor is closed.
        """
        self._check_open("add a step")
        if callable(name):
            func = name
            name = getattr(func, "__name__", "")
        mark = mark_of(func)
        where = _caller()
        before = len(self._builder.problems)
        on, delay = None, 0.0
        if mark is not None and not args and not kwargs:
            assert func is not None
            name = mark.name or name
            wants_ctx, problem, fix = fit_signature(func, False, name)
            if problem:
                self._builder.problems.append(Problem(f"step {name!r}", problem, fix, where))
            marked, delay = spec_from_mark(
                mark, StepCall(func, wants_ctx=wants_ctx, flow_name=self.name), name,
                event=lambda item, _option: _name_of(item, "an event"),
                problems=self._builder.problems, where=where)
            spec = StepSpec.make(  # arguments given here win over the mark
                name, marked.func, (), None,
                marked.triggers if triggers is None else triggers,
                marked.acquires if acquires is None else acquires,
                marked.releases if releases is None else releases,
                marked.recovery if recovery is None else recovery,
                host=marked.host if host is None else host,
                options=marked.options if config is None else StepOptions.from_config(config),
                context=wants_ctx, emits=marked.emits if emits is None else _events_of(emits))
            on = mark.on
        else:
            spec = StepSpec.make(name, func, args, kwargs, triggers, acquires, releases, recovery,
                                 config, host, emits=_events_of(emits))
        self._builder.check_name(spec.name, "step", where)
        self._builder.check_step(spec, where)  # now, not at run()
        if len(self._builder.problems) == before:  # sound: held to the config before it is added
            self._check_by_config(spec)
        self._raise_new_problems(before)  # a step refused is not added: it can be added, mended
        self._builder.add_step(spec, where=where)
        if on is not None:
            self._builder.add_assoc(_name_of(on, "an event"), spec.name, delay, where)
        self._raise_new_problems(before)
        return spec

    def _check_by_config(self, spec: StepSpec) -> None:
        """What the config says a step cannot do, found as it is added (as the engine would)."""
        if self._options is None:
            self._options = self.config.engine_options()
        # A step with no options or host of its own runs as every such step does: once
        # checked, the rest pass (with or without a function: invoke, or the default), unless
        # each must be sent somewhere (ssh, dask), which is checked step by step
        plain = spec.options is UNSET and spec.host is None
        if not plain or (spec.func is None) not in self._plain_ok:
            plan = plan_steps({spec.name: spec}, self._options)
            if plain and not plan.sent(spec.name):
                self._plain_ok.add(spec.func is None)
        if spec.acquires:
            limits = dict(self._pool_limits)
            units_of(spec, limits)
            self._pool_limits = limits  # only once the step is found fine

    def add_assoc(self, event: Any, *assocs: Any, delay: float = 0) -> None:
        """
        When ``event`` fires in a sequence, trigger each of ``assocs`` (events or steps) there.

        Args:
            event: The event (what ``add_event`` returned, or its name).
            *assocs: The events and steps to trigger, at least one.
            delay: Seconds to wait after ``event`` fires; the due time is recorded in the
                store, so a delay survives a crash.

        Raises:
            FlowDefinitionError: ``delay`` is not a number of seconds >= 0 (whether the
                events and steps exist is checked when `run` builds the flow: they may be
                added later).
            EventorUsageError: no ``assocs``, or the run started (or the Eventor is closed).
        """
        self._check_open("add an association")
        if not assocs:
            raise EventorUsageError("add_assoc needs at least one event or step to associate")
        source = _name_of(event, "an event")
        where = _caller()
        targets = [_name_of(target, "an event or a step") for target in assocs]
        if not is_number(delay) or delay < 0:
            raise FlowDefinitionError(self.name, [Problem(
                f"association {source} -> {', '.join(targets)}",
                f"delay {delay!r} is not a number of seconds >= 0.", "Use delay=0 for no delay.",
                where)])
        for target in targets:
            self._builder.add_assoc(source, target, delay, where)

    def trigger_event(self, event: Any, sequence: Any = None) -> None:
        """
        Fire ``event`` in ``sequence`` (any str or int; default ``0``) when the run proceeds.

        Before the first `run` the trigger is kept until the run starts; after, it goes to
        the running flow at once.

        Args:
            event: The event (what ``add_event`` returned, or its name).
            sequence: The sequence to fire it in, used as its ``str``; a new sequence
                starts an independent instance of the flow.

        Raises:
            EventorUsageError: no such event was added (a step's name is not an event's),
                it is a join event, which fires by itself, or the Eventor is closed.
        """
        name = _name_of(event, "an event")
        if self._closed:
            raise EventorUsageError("cannot trigger an event: this Eventor is closed")
        if self._engine is not None:
            self._engine.trigger(name, sequence)
            return
        spec = self._builder.event(name)
        if spec is None and name in self._builder:
            raise EventorUsageError(
                f"cannot trigger {name!r}: it is a step, not an event; trigger the event "
                "it is associated with (add_assoc)")
        if spec is None:
            raise EventorUsageError(
                f"cannot trigger {name!r}: no such event was added."
                + did_you_mean(name, self._builder.where)
            )
        if spec.join is not None:
            raise EventorUsageError(
                f"cannot trigger {name!r}: it is a join, which fires once its children arrive")
        self._early_triggers.append((name, sequence))

    def record_params(self, params: Mapping[str, Any]) -> None:
        """
        Record ``params`` (JSON values) with the run: what a program was built with, for its
        recover and continue to build it alike (the ``eventor`` command records a builder's
        parameters). On a recover or continue, parameters that differ from the recorded
        ones are logged.
        """
        self._check_open("record parameters")
        self._params = dict(params)

    # -- running -----------------------------------------------------------------------

    @property
    def graph(self) -> FlowGraph:
        """The validated graph (built, and frozen, on first use)."""
        return self._ensure_engine().graph

    def _ensure_engine(self) -> Engine:
        if self._engine is None:
            if self._closed:
                raise EventorUsageError("this Eventor is closed")
            graph = self._builder.build()
            if self.resume_interrupted and self.run_mode is RunMode.restart:
                self._take_interrupted(graph)
            if self._params and self._session.mode is not RunMode.restart:
                self._note_changed_params()
            engine = self._session.start(
                graph, clock=self._clock, progress=self.progress,
                attempt=self.recovery_run if self.run_mode is RunMode.recover else None,
                info=self._info())
            if engine.expect_latest is None:
                engine.expect_latest = self.expect_attempt
            for name, sequence in self._early_triggers:
                engine.trigger(name, sequence)
            self._early_triggers.clear()
            self._engine = engine
        return self._engine

    def _info(self) -> dict[str, Any] | None:
        """What the run records of this program: its parameters, and the builder that made it."""
        info: dict[str, Any] = {"params": self._params} if self._params else {}
        if self._ref:  # the command line recovers the run with it: eventor recover FILE:REF
            info["ref"] = self._ref
        return info or None

    def _take_interrupted(self, graph: FlowGraph) -> None:
        def start() -> Engine:
            return self._session.start(graph, clock=self._clock, progress=self.progress,
                                       info=self._info())

        row = self._session.resume_interrupted(self.name, recorded(self._params), start)
        if row is not None:
            self.run_id, self.run_mode = row["run_id"], RunMode.recover

    def _note_changed_params(self) -> None:
        before = (self.store.run(self.run_id) or {}).get("info", {}).get("params") or {}
        note_changed_params(self._session.log, self.run_id, before, self._params)

    def recovery_plan(self) -> RecoveryPlan:
        """
        What recovering this run would skip and rerun, and why; nothing is run.

        Call it after adding events and steps (the plan reads their recovery policies).
        """
        graph = self._engine.graph if self._engine is not None else self._builder.build()
        return plan_recovery(self.store, graph, self.run_id, self.recovery_run)

    def run(self, max_loops: int = -1) -> bool:
        """
        Run until nothing is pending (or for ``max_loops`` rounds).

        Returns:
            False when a step failed and no failure/complete trigger handled it; else True.
            The details are in ``self.summary``.
        """
        self.summary = self._ensure_engine().run(max_loops)
        return bool(self.summary)

    __call__ = run  # Eventor 1.x programs ran a flow with ev()

    def close(self) -> None:
        """
        Stop executors and close the store. No process or thread is left behind, but for a
        thread step past its timeout that has not returned within its ``timeout_grace``
        (Python cannot stop a thread): it is named in a warning.
        """
        self._closed = True
        self._session.close()

    def __enter__(self) -> Eventor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Eventor(name={self.name!r}, run_id={self.run_id!r}, store={self.store.address!r})"
