"""
The declarative front end: `Event` attributes, the `@step` decorator, `Flow` classes and `@flow`.

Decorators only record: `@step(...)` attaches one frozen `StepMark` to the function and
returns the function itself. `FlowMeta` compiles a class body once, when the class is
created, into the same `FlowGraph` the classic API builds (through the same `GraphBuilder`),
and reports every problem in one `FlowDefinitionError`. Running a flow lives in `Flow`.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from os import PathLike
from types import MappingProxyType
from typing import Any, ClassVar, TypeAlias

from eventor.builder import GraphBuilder
from eventor.config import load_config
from eventor.enums import executor_alias
from eventor.exceptions import EventorConfigError, FlowDefinitionError, Problem, did_you_mean
from eventor.graph import And, FlowGraph, JoinRef, Operand, Or
from eventor.graph import or_ as names_or
from eventor.options import StepOptions
from eventor.params import Param, fits, type_name
from eventor.schedule import Schedule
from eventor.steps import StepMark, fit_signature, mark_of, spec_from_mark, step
from eventor.validate import executor_problems

__all__ = [
    "Event",
    "Expr",
    "FlowMeta",
    "Param",
    "StepMark",
    "compile_flow",
    "fit_signature",
    "mark_of",
    "or_",
    "step",
]

_NO_TRUTH = (
    "it has no truth value: use & not 'and', | not 'or' (a & b fires once both fired, "
    "a | b once either did)"
)


def _caller(depth: int) -> str:
    frame = sys._getframe(depth + 1)
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


class _Combinable:
    """What events and expressions share: & and | build expressions; no truth value."""

    __slots__ = ()

    def __and__(self, other: EventRef) -> Expr:
        return Expr("&", (self, other), _caller(1))

    def __rand__(self, other: EventRef) -> Expr:
        return Expr("&", (other, self), _caller(1))

    def __or__(self, other: EventRef) -> Expr:
        return Expr("|", (self, other), _caller(1))

    def __ror__(self, other: EventRef) -> Expr:
        return Expr("|", (other, self), _caller(1))

    def __bool__(self) -> bool:
        where = _caller(1)
        events = list(_events_in(self))
        body = sys._getframe(1).f_locals
        own = "__qualname__" in body and {id(v) for v in body.values() if isinstance(v, Event)}
        if own and events and all(e.flow is None and id(e) in own for e in events):
            # In the class body that defines these events (``ready = a and b``): noted on
            # them, and reported with the flow's other problems when the class is created.
            for event in events:
                event.misused = event.misused or where
            return True
        name = getattr(self, "name", None)
        what = (f"event {name!r}" if isinstance(name, str) else
                f"expression {self}" if isinstance(self, Expr) else "an Event")
        flow = getattr(self, "flow", None)
        raise FlowDefinitionError(flow if isinstance(flow, str) else "(being defined)", [Problem(
            what, _NO_TRUTH, "", where)])


def _events_in(value: Any) -> Iterator[Event]:
    """The `Event` objects an event or expression is made of."""
    if isinstance(value, Event):
        yield value
    elif isinstance(value, Expr):
        for operand in value.operands:
            yield from _events_in(operand)


class Event(_Combinable):
    """
    An event of a flow, named after the class attribute it is assigned to.

    Args:
        entry: start the flow with this event (by default, the entry events are those that
            nothing in the flow triggers).

    Attributes:
        name: The event's name: the class attribute it was first assigned to (None
            before).
        entry: As given.
        where: Where the event was created (``file.py:12``), for error messages.
        flow: The name of the first flow compiled with this event, or None.
    """

    __slots__ = ("entry", "flow", "misused", "name", "where")

    def __init__(self, *, entry: bool = False) -> None:
        self.name: str | None = None
        self.entry = entry
        self.where = _caller(1)
        self.flow: str | None = None  # the first flow compiled with this event
        self.misused = ""  # where it was given a truth value (``a and b``), in a class body

    def __set_name__(self, owner: type, name: str) -> None:
        if self.name is None:
            self.name = name

    def __repr__(self) -> str:
        if self.name is None:
            return "<Event without a name: assign it to an attribute of a Flow class>"
        text = f"Event({self.name!r}{', entry=True' if self.entry else ''})"
        if self.flow is None:
            return f"<{text}, in no flow: did you forget @flow, or to subclass Flow?>"
        return text


@dataclass(frozen=True, eq=False, slots=True)
class Expr(_Combinable):
    """An expression over events (``a & b``, ``a | b``); a class attribute names it."""

    op: str  # "&" or "|"
    operands: tuple[Any, ...]
    where: str = field(default="", compare=False)

    def __str__(self) -> str:
        return "(" + f" {self.op} ".join(
            o.name if isinstance(o, Event) and o.name else str(o) for o in self.operands
        ) + ")"

    def __repr__(self) -> str:
        return f"Expr{self}"


EventRef: TypeAlias = "Event | Expr | str | tuple[Any, ...]"


def or_(*operands: Any) -> Any:
    """
    Either of ``operands``: ``or_(a, b)`` is ``a | b`` (and works on names in the classic API).

    Args:
        *operands: The events or expressions, at least one: `Event` attributes of a flow
            class, or, in the classic API, events that ``add_event`` returned, their
            names, tuples of them (*and*) and other ``or_(...)`` expressions.

    Returns:
        An expression that holds in a sequence once any of ``operands`` fired there: a
        flow expression when an operand is an `Event` or an expression of a flow class,
        else one for the classic API (``add_event("e", or_("a", "b"))``).

    Raises:
        TypeError: no operand, or one that is not an event or an expression (classic
            form only; a flow class reports it when it is created).
    """
    if any(isinstance(op, _Combinable) for op in operands):
        return Expr("|", tuple(operands), _caller(1))
    return names_or(*operands)


@dataclass(slots=True)
class _StepMember:
    attr: str
    func: Callable[..., Any]
    mark: StepMark
    method: bool  # defined in a class body (gets self) rather than a module-level function


@dataclass(frozen=True, slots=True)
class StepInfo:
    """How a compiled flow calls one of its steps."""

    func: Callable[..., Any]
    method: bool
    wants_ctx: bool


@dataclass(frozen=True, slots=True)
class CompiledFlow:
    """The result of compiling a flow class: its graph, entry events, parameters and steps."""

    graph: FlowGraph
    entries: tuple[str, ...]
    inferred: bool  # the entries are the events nothing fires (none is marked entry=True)
    params: Mapping[str, Param]
    steps: Mapping[str, StepInfo]  # step name -> how to call it
    names: Mapping[int, str]  # id(Event or Expr object) -> event name
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # flow options


# Flow attributes and instance keywords a parameter must not shadow.
FLOW_OPTIONS = ("name", "store", "config", "max_concurrent", "executor", "stop_on_exception",
                "pickle_results", "strict_triggers", "schedule")
RESERVED = frozenset({*FLOW_OPTIONS, "run_id", "clock", "graph", "parameters", "param_values",
                      "run", "trigger", "recover", "resume", "recovery_plan", "close", "cli",
                      "options", "entry_events", "progress", "schedule"})


class _Compiler:
    """Turns the members of a flow class (and its bases) into a `CompiledFlow`."""

    def __init__(self, cls: type, flow_name: str, where: str) -> None:
        self.cls = cls
        self.flow = flow_name
        self.where = where
        self.problems: list[Problem] = []
        self.events: dict[str, Event | Expr | tuple[Any, ...]] = {}
        self.steps: dict[str, _StepMember] = {}
        self.params: dict[str, Param] = {}
        self.names: dict[int, str] = {}
        self.produced: set[str] = set()

    def problem(self, subject: str, message: str, fix: str = "", where: str = "") -> None:
        self.problems.append(Problem(subject, message, fix, where))

    # -- collecting the class and its bases ---------------------------------------------

    def collect(self) -> None:
        for klass in reversed(self.cls.__mro__):
            if klass is object or _is_root(klass, self.cls):
                continue
            self._collect_params(klass)
            for attr, value in vars(klass).items():
                if attr.startswith("__") and attr.endswith("__"):
                    continue
                self._collect(klass, attr, value)

    def _collect(self, klass: type, attr: str, value: Any) -> None:
        mark = mark_of(value)
        if isinstance(value, Event | Expr | JoinRef) or _is_event_tuple(value):
            if attr in self.steps:
                self.problem(f"event {attr!r}", f"it hides step {attr!r} of a base flow.",
                             "Give the event another name.", _where_of(value))
                return
            if isinstance(value, Event | Expr | JoinRef) and id(value) in self.names and (
                self.names[id(value)] != attr
            ):
                self.problem(
                    f"event {attr!r}",
                    f"it is the same object as event {self.names[id(value)]!r}.",
                    "Create a separate Event() for each name.", _where_of(value),
                )
                return
            self.events[attr] = value
            self.names[id(value)] = attr
        elif mark is not None:
            if attr in self.events:
                self.problem(f"step {attr!r}", f"it hides event {attr!r} of a base flow.",
                             "Give the step another name.", _where_of(value))
                return
            self.steps[attr] = _StepMember(attr, value, mark, _is_method(value, klass))
        elif attr in self.steps:
            inherited = self.steps[attr]
            if inspect.isfunction(value):  # a plain override keeps the step's wiring
                self.steps[attr] = _StepMember(attr, value, inherited.mark, _is_method(value, klass))
            else:
                self.problem(
                    f"step {attr!r}",
                    f"{klass.__qualname__}.{attr} = {value!r} hides the step of a base flow.",
                    "Override a step with a method (with or without @step).", self.where,
                )
        elif attr in self.params and not callable(value):
            if attr in inspect.get_annotations(klass):
                return  # this class's own annotated parameter: collected with its default
            old = self.params[attr]
            self.params[attr] = self._param(Param(attr, old.type, value, old.doc))  # a new default
        elif (_looks_like_parameter(attr, value) and klass is self.cls
              and attr not in inspect.get_annotations(klass)):  # annotated: reported as such
            self.problem(
                f"parameter {attr!r}",
                f"it has no type annotation, so it is not a parameter ({attr} = {value!r}).",
                f"Write `{attr}: {type(value).__name__} = {value!r}`; for a constant, "
                "use an UPPER_CASE or _private name.", self.where,
            )

    def _collect_params(self, klass: type) -> None:
        annotations = inspect.get_annotations(klass)
        module = sys.modules.get(klass.__module__)
        scope = {**vars(typing), **(vars(module) if module else {})}
        for name, raw in annotations.items():
            hint = raw
            if isinstance(raw, str):  # from __future__ import annotations
                # A name only the module's runtime knows keeps its text, and is not checked.
                with contextlib.suppress(Exception):
                    hint = eval(raw, scope, dict(vars(klass)))
            if _is_classvar(hint) or name.startswith("_"):
                continue
            if name in RESERVED:
                self.problem(
                    f"parameter {name!r}",
                    "the name is taken by a Flow option or method.",
                    "Rename the parameter.", self.where,
                )
                continue
            doc = ""
            if typing.get_origin(hint) is typing.Annotated:
                doc = next((m for m in typing.get_args(hint)[1:] if isinstance(m, str)), "")
                hint = typing.get_args(hint)[0]
            default = vars(klass).get(name, inspect.Parameter.empty)
            if isinstance(default, Event | Expr) or mark_of(default) is not None:
                continue  # an annotated event or step is not a parameter
            self.params[name] = self._param(Param(name, hint, default, doc))

    def _param(self, param: Param) -> Param:
        """``param``, after checking that its default is of its type."""
        if not param.required and not fits(param.default, param.type):
            self.problem(f"parameter {param.name!r}",
                         f"its default {param.default!r} is not {type_name(param.type)}.",
                         "Give a default of that type, or change the annotation.", self.where)
        return param

    # -- resolving references ------------------------------------------------------------

    def event_name(self, value: Any, subject: str, option: str, where: str) -> str | None:
        """The name of the event ``value`` refers to; a problem and None when it is none."""
        if isinstance(value, str):
            if value in self.events:
                return value
            hint = " (that is a step; a step runs on an event)" if value in self.step_names() else ""
            self.problem(subject, f"{option}={value!r} is not an event of flow {self.flow!r}{hint}."
                         + did_you_mean(value, self.events),
                         "Use an event defined in the flow.", where)
            return None
        if isinstance(value, Event | Expr | JoinRef | tuple):
            name = self.names.get(id(value))
            if name is not None:
                return name
            if isinstance(value, Event):
                if value.name is None:
                    self.problem(subject, f"{option}= holds an Event() that is not a flow attribute.",
                                 "Define the event as a class attribute and use that.", where)
                else:
                    self.problem(subject, f"{option}= holds event {value.name!r} of another flow.",
                                 "Use the events of this flow (a subclass inherits its base's).",
                                 where)
                return None
        if mark_of(value) is not None:
            self.problem(subject, f"{option}= holds step {getattr(value, '__name__', value)!r}, "
                         "not an event.",
                         "A step runs on an event; give its success= event instead.", where)
        else:
            self.problem(subject, f"{option}={value!r} is not an event.",
                         "Use an Event() attribute of the flow, or its name.", where)
        return None

    def operand(self, value: Any, subject: str, where: str, top: bool = False) -> Operand | None:
        """``value`` (an event, a name, an expression, a tuple meaning *and*) as an Operand."""
        if not top and isinstance(value, Expr | tuple) and id(value) in self.names:
            return self.names[id(value)]
        if isinstance(value, Expr):
            kind = And if value.op == "&" else Or
            parts: list[Operand] = []
            for item in value.operands:
                part = self.operand(item, subject, where)
                if part is None:
                    return None
                if isinstance(part, kind) and id(item) not in self.names:
                    parts.extend(part.operands)  # a & b & c is one And, not two
                else:
                    parts.append(part)
            return kind(tuple(parts))
        if isinstance(value, tuple | list):
            if not value:
                self.problem(subject, "an empty tuple is not an event expression.",
                             "List the events to join.", where)
                return None
            items = [self.operand(v, subject, where) for v in value]
            return None if None in items else And(tuple(i for i in items if i is not None))
        if isinstance(value, And | Or):  # or_() over names
            return value
        return self.event_name(value, subject, "on", where)

    def step_names(self) -> set[str]:
        return {m.mark.name if isinstance(m.mark.name, str) else m.attr for m in self.steps.values()}

    # -- building ------------------------------------------------------------------------

    def build(self) -> CompiledFlow:
        builder = GraphBuilder(self.flow)
        inline: dict[str, Operand] = {}
        for attr, value in self.events.items():
            where = _where_of(value)
            if isinstance(value, Event) and value.misused and value.name == attr:
                self.problems.insert(0, Problem(  # first: the problems it caused come after
                    f"event {attr!r}", "it was used as a truth value ('and', 'or', 'not', 'if'): "
                    + _NO_TRUTH, "", value.misused))
            if isinstance(value, Event):
                builder.add_event(attr, where=where)
            elif isinstance(value, JoinRef):
                subject = f"event {attr!r}"
                joined = self.operand(value.event, subject, where)
                over = self.event_name(value.over, subject, "over", where)
                if joined is not None and over is not None:
                    builder.add_event(attr, where=where, join=(joined, over))
                else:
                    builder.add_event(attr, where=where)
            else:
                builder.add_event(attr, self.operand(value, f"event {attr!r}", where, top=True), where)
        infos: dict[str, StepInfo] = {}
        for member in self.steps.values():
            built = self._step(member, builder, inline)
            if built is not None:
                infos[built[0]] = built[1]
        entries, inferred = self._entries()
        builder.problems[:0] = self.problems
        graph = builder.build()
        for value in self.events.values():
            if isinstance(value, Event) and value.flow is None:
                value.flow = self.flow
        return CompiledFlow(graph, entries, inferred, MappingProxyType(self.params),
                            MappingProxyType(infos), MappingProxyType(self.names))

    def _step(self, member: _StepMember, builder: GraphBuilder,
              inline: dict[str, Operand]) -> tuple[str, StepInfo] | None:
        mark, func = member.mark, member.func
        name = mark.name if mark.name is not None else member.attr
        subject = f"step {name!r}"
        where = _where_of(func)
        wants_ctx = self._signature(func, member.method, subject, where)

        def event(item: Any, option: str) -> str | None:
            if isinstance(item, Expr) and id(item) not in self.names:
                self.problem(subject, f"{option}= holds the expression {item}.",
                             "A step fires plain events; an expression fires by itself when "
                             "it holds.", where)
                return None
            resolved = self.event_name(item, subject, option, where)
            if resolved is not None:
                self.produced.add(resolved)
            return resolved

        spec, delay = spec_from_mark(mark, func, name, event=event, problems=self.problems,
                                     where=where)
        on = self._on(mark.on, subject, where, builder, inline)  # an inline expression first
        builder.add_step(spec, where)
        if on is not None:
            builder.add_assoc(on, name, delay, where)
        return (name, StepInfo(func, member.method, wants_ctx)) if isinstance(name, str) else None

    def _on(self, value: Any, subject: str, where: str, builder: GraphBuilder,
            inline: dict[str, Operand]) -> str | None:
        if value is None:
            self.problem(subject, "it has no on= event, so nothing would ever run it.",
                         "Write @step(on=some_event).", where)
            return None
        if isinstance(value, Expr | tuple | list) and id(value) not in self.names:
            operand = self.operand(value, subject, where, top=True)
            if operand is None:
                return None
            name = str(operand)[1:-1] if isinstance(operand, And | Or) else operand
            if name not in inline and name not in self.events:
                inline[name] = operand
                builder.add_event(name, operand, where)
            return name
        return self.event_name(value, subject, "on", where)

    def _signature(self, func: Callable[..., Any], method: bool, subject: str, where: str) -> bool:
        wants_ctx, problem, fix = fit_signature(func, method, subject[6:-1])
        if problem:
            self.problem(subject, problem, fix, where)
        return wants_ctx

    def _entries(self) -> tuple[tuple[str, ...], bool]:
        plain = {n: v for n, v in self.events.items() if isinstance(v, Event)}
        explicit = tuple(n for n, v in plain.items() if v.entry)
        if explicit:
            return explicit, False
        entries = tuple(n for n in plain if n not in self.produced)
        if not entries and self.steps:
            self.problem(f"flow {self.flow!r}", "it has no entry event: every event is fired by a "
                         "step or is an expression, so nothing could start it.",
                         "Add an event no step fires, or mark one Event(entry=True).", self.where)
        return entries, True


def _is_event_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and bool(value) and all(
        isinstance(v, Event | Expr) or _is_event_tuple(v) for v in value
    )


def _is_method(func: Any, klass: type) -> bool:
    qualname = getattr(func, "__qualname__", "")
    return bool(qualname == f"{klass.__qualname__}.{getattr(func, '__name__', '')}")


def _is_classvar(hint: Any) -> bool:
    return hint is ClassVar or typing.get_origin(hint) is ClassVar or (
        isinstance(hint, str) and hint.startswith(("ClassVar", "typing.ClassVar"))
    )


def _looks_like_parameter(attr: str, value: Any) -> bool:
    if attr.startswith("_") or attr.isupper() or callable(value):
        return False
    if isinstance(value, staticmethod | classmethod | property | types.MemberDescriptorType):
        return False
    return isinstance(value, str | int | float | bool | list | dict | tuple | set | type(None))


def _where_of(value: Any) -> str:
    if isinstance(value, Event | Expr | JoinRef):
        return value.where
    code = getattr(inspect.unwrap(value), "__code__", None) if callable(value) else None
    return f"{code.co_filename}:{code.co_firstlineno}" if code is not None else ""


def compile_flow(cls: type, name: str, where: str = "") -> CompiledFlow:
    """
    Compile a flow class (with its bases) into a `CompiledFlow`.

    Raises:
        FlowDefinitionError: listing every problem in the class and its bases.
    """
    compiler = _Compiler(cls, name, where)
    compiler.collect()
    return compiler.build()


def check_flow_options(options: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(message, fix) for each flow option (``max_concurrent=``, ...) whose value is wrong."""
    for key, value in options.items():
        if key == "name" and not (isinstance(value, str) and value):
            yield f"name={value!r} is not a non-empty string.", "Name the flow with a string."
        elif key in ("stop_on_exception", "pickle_results", "strict_triggers") and not isinstance(
                value, bool):
            yield f"{key}={value!r} is not True or False.", f"Give {key} a bool."
        elif key == "store" and not isinstance(value, str) and not hasattr(value, "begin_attempt"):
            yield (f"store={value!r} is not a store.", "Give a file path, a URL (sqlite:///run.db), "
                   "':memory:', a DATABASES tag of the config, or an open store.")
        elif key == "config" and not (value is None or isinstance(value, str | Mapping | PathLike)
                                      or hasattr(value, "engine_options")):
            yield (f"config={value!r} is not a config.",
                   "Give a dict, a YAML file path or YAML text.")
        elif key == "config" and value is not None:
            try:
                load_config(value)  # a mistake in it is found now, not at run()
            except EventorConfigError as exc:
                yield f"its config is wrong: {str(exc).rstrip('.')}.", ""
        elif key in ("max_concurrent", "executor"):
            option = StepOptions(**{key: value})
            for problem in option.problems():
                yield problem.message, problem.fix
        elif key == "schedule":
            try:
                as_schedule(value)
            except EventorConfigError as exc:
                yield f"{str(exc).rstrip('.')}.", ""


def as_schedule(value: Any) -> Schedule:
    """A `Schedule` from what ``schedule=`` takes: a Schedule, a cron expression or an interval."""
    return value if isinstance(value, Schedule) else Schedule(value)


def _is_root(klass: type, cls: type) -> bool:
    """True for the base of all flows (`Flow`): a FlowMeta class that is no compiled flow."""
    return isinstance(klass, FlowMeta) and klass is not cls and "__eventor_flow__" not in vars(klass)


class FlowMeta(type):
    """
    Compiles each `Flow` subclass, once, when it is created; see `compile_flow`.

    The class then carries one `CompiledFlow`, ``__eventor_flow__``: its graph, entry
    events, parameters, how to call its steps, and its flow options.
    """

    __eventor_flow__: CompiledFlow

    def __new__(mcs, cls_name: str, bases: tuple[type, ...], ns: dict[str, Any], /,
                **options: Any) -> FlowMeta:
        cls = super().__new__(mcs, cls_name, bases, ns)
        if not any(isinstance(b, FlowMeta) for b in bases):
            return cls  # the base of flows (Flow itself) is not a flow
        where = options.pop("__where__", None) or _caller(1)
        base = next((vars(b)["__eventor_flow__"] for b in cls.__mro__[1:]
                     if "__eventor_flow__" in vars(b)), None)
        inherited = dict(base.options) if base is not None else {}
        inherited.pop("name", None)  # a subclass is its own flow
        problems = [
            Problem(f"flow {cls_name!r}", f"unknown option {key!r}." + did_you_mean(key, FLOW_OPTIONS),
                    f"Flow options are {', '.join(FLOW_OPTIONS)}.", where)
            for key in options if key not in FLOW_OPTIONS
        ]
        given = {k: v for k, v in options.items() if k in FLOW_OPTIONS}
        problems += [Problem(f"flow {cls_name!r}", message, fix, where)
                     for message, fix in check_flow_options(given)]
        merged = {**inherited, **given}
        flow_name = merged.get("name") or cls_name
        try:
            compiled = compile_flow(cls, flow_name, where)
        except FlowDefinitionError as exc:
            if problems:
                raise FlowDefinitionError(flow_name, [*problems, *exc.problems]) from None
            raise exc.with_traceback(None) from None
        if executor_alias(merged.get("executor")) == "invoke":  # the flow's, for its steps
            problems += [problem for spec in compiled.graph.steps.values()
                         if spec.options.executor is None
                         for problem in executor_problems(spec, _where_of(spec.func), "invoke")]
        if "schedule" in given and not problems:
            merged["schedule"] = schedule = as_schedule(given["schedule"])
            if schedule.param is not None and schedule.param not in compiled.params:
                problems.append(Problem(
                    f"flow {cls_name!r}", f"its schedule passes each slot's time as parameter "
                    f"{schedule.param!r}, which it does not have.",
                    f"Declare it (e.g. {schedule.param}: datetime.date) or give param= one of "
                    f"{', '.join(compiled.params) or 'its parameters (it has none)'}.", where))
        if problems:
            raise FlowDefinitionError(flow_name, problems)
        cls.__eventor_flow__ = replace(compiled, options=MappingProxyType(merged))
        return cls

    def __init__(cls, cls_name: str, bases: tuple[type, ...], ns: dict[str, Any], /,
                 **options: Any) -> None:
        super().__init__(cls_name, bases, ns)

    def _compiled(cls) -> CompiledFlow:
        compiled = vars(cls).get("__eventor_flow__")
        if compiled is None:
            raise TypeError(f"{cls.__qualname__} is the base of flows; subclass it to define one")
        return typing.cast(CompiledFlow, compiled)
