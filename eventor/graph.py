"""
The flow graph as plain, immutable data: events, expression events, steps and associations.

Both front ends (the classic `Eventor` API and the declarative `Flow` classes) build a
`FlowGraph` through one `eventor.builder.GraphBuilder`; the engine only ever reads the
frozen result. This module does no I/O and imports nothing else of Eventor's but the enums
and the step options.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias

from eventor.enums import StepReplay, StepStatus
from eventor.options import UNSET, StepOptions

__all__ = [
    "And",
    "Assoc",
    "EventSpec",
    "FlowGraph",
    "Join",
    "JoinRef",
    "Operand",
    "Or",
    "StepSpec",
    "event_names",
    "holds",
    "join",
    "or_",
    "to_operand",
]

NOTHING: Mapping[Any, Any] = MappingProxyType({})  # a step's kwargs, triggers or recovery, when none


@dataclass(frozen=True, slots=True)
class And:
    """Holds in a sequence once every operand has fired there."""

    operands: tuple[Operand, ...]

    def holds(self, fired: Callable[[str], bool]) -> bool:
        return all(holds(op, fired) for op in self.operands)

    def names(self) -> Iterator[str]:
        for op in self.operands:
            yield from event_names(op)

    def __str__(self) -> str:
        return "(" + " & ".join(map(str, self.operands)) + ")"


@dataclass(frozen=True, slots=True)
class Or:
    """Holds in a sequence once any operand has fired there."""

    operands: tuple[Operand, ...]

    def holds(self, fired: Callable[[str], bool]) -> bool:
        return any(holds(op, fired) for op in self.operands)

    def names(self) -> Iterator[str]:
        for op in self.operands:
            yield from event_names(op)

    def __str__(self) -> str:
        return "(" + " | ".join(map(str, self.operands)) + ")"


Operand: TypeAlias = "str | And | Or"


def holds(op: Operand, fired: Callable[[str], bool]) -> bool:
    """True when ``op`` holds given which events have fired."""
    return fired(op) if isinstance(op, str) else op.holds(fired)


def event_names(op: Operand) -> Iterator[str]:
    """Every event name in ``op``, in order, with repeats."""
    if isinstance(op, str):
        yield op
    else:
        yield from op.names()


def to_operand(value: Any) -> Operand:
    """
    Normalize what users write for an event or an expression into an `Operand`.

    A name or an event object stands for itself, a tuple or list means *and* (the Eventor 5.1
    convention), and `or_(...)` means *or*; they nest.

    Raises:
        TypeError: for anything else, naming the value.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, And | Or):
        return value
    if isinstance(value, tuple | list):
        if not value:
            raise TypeError("an empty tuple is not an event expression; list the events to join")
        return And(tuple(to_operand(v) for v in value))
    name = getattr(value, "name", None)
    if isinstance(name, str) and not callable(value):
        return name
    raise TypeError(
        f"{value!r} is not an event: use an event returned by add_event(), its name, "
        "a tuple of events (and), or or_(...) (or)"
    )


def or_(*operands: Any) -> Or:
    """An expression that holds once any of ``operands`` fired: ``add_event('e', expr=or_(a, b))``."""
    if not operands:
        raise TypeError("or_() needs at least one event")
    return Or(tuple(to_operand(op) for op in operands))


@dataclass(frozen=True, slots=True)
class Join:
    """
    Fires in a sequence once ``event`` has fired in every child sequence that ``over``
    started there (by a step's ``ctx.trigger(over, child)``) and the steps that emit
    ``over`` there have ended.
    """

    event: str  # the joined event (an expression is named by its text)
    over: str  # the event whose ctx.trigger calls start the children

    def __str__(self) -> str:
        return f"join({self.event}, over={self.over})"


@dataclass(frozen=True, eq=False, slots=True)
class JoinRef:
    """
    What `join` returns: a join event that gets its name from a Flow class attribute
    (``all_loaded = join(loaded, over=found)``) or from ``add_event("all_loaded", join=...)``.
    """

    event: Any  # the joined event or expression (an object or a name)
    over: Any  # the event that starts the children (an object or a name)
    where: str = field(default="", compare=False)

    def __repr__(self) -> str:
        return f"join({_ref(self.event)}, over={_ref(self.over)})"


def join(event: Any, *, over: Any) -> JoinRef:
    """
    An event that fires in a sequence once ``event`` has fired in every child sequence that
    ``over`` started there, and the steps that emit ``over`` there have ended.

    ``event`` may be an expression (``loaded | load_failed``), to join failures too.
    Assign it to a Flow class attribute (``all_loaded = join(loaded, over=found)``), which
    names it, or pass it to the classic ``add_event("all_loaded", join=...)``.

    Args:
        event: The event (or expression) each child sequence must reach: an event object,
            or its name.
        over: The event that starts the children: a step that declares it in ``emits``
            calls ``ctx.trigger(over, child)`` once per child sequence.

    Returns:
        A join marker, named by the attribute or ``add_event`` call that takes it.
    """
    frame = sys._getframe(1)
    return JoinRef(event, over, f"{frame.f_code.co_filename}:{frame.f_lineno}")


def _ref(value: Any) -> str:
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else str(value)


@dataclass(frozen=True, slots=True)
class EventSpec:
    """
    An event; with ``expr`` an expression event that fires when the expression holds; with
    ``join`` a join event that fires once a fan-out's children all reached an event.
    """

    name: str
    expr: Operand | None = None
    join: Join | None = None

    def __str__(self) -> str:
        if self.join is not None:
            return f"{self.name} = {self.join}"
        return self.name if self.expr is None else f"{self.name} = {self.expr}"


@dataclass(frozen=True, slots=True, eq=True)
class StepSpec:
    """
    A step: what to call, which events its statuses trigger, and how it runs.

    ``triggers`` maps a status (`StepStatus`) to event names; ``recovery`` maps a status to a
    `StepReplay`; ``options`` says how it runs (executor, limits, retries, timeout). Keys or
    values that are not valid stay as given, for validation to report.
    """

    name: str
    func: Callable[..., Any] | None = None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=lambda: NOTHING)
    triggers: Mapping[Any, tuple[Any, ...]] = field(default_factory=lambda: NOTHING)
    acquires: tuple[Any, ...] = ()
    releases: tuple[Any, ...] | None = None
    recovery: Mapping[Any, Any] = field(default_factory=lambda: NOTHING)
    options: StepOptions = UNSET  # shared and frozen: every step with no option set
    host: str | None = None
    context: bool = False  # func takes a StepContext: its task gets the sequence's results
    emits: tuple[Any, ...] = ()  # events its task may fire with ctx.trigger (declared edges)

    @classmethod
    def make(
        cls,
        name: str,
        func: Callable[..., Any] | None = None,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        triggers: Mapping[Any, Any] | None = None,
        acquires: Iterable[Any] | None = None,
        releases: Iterable[Any] | None = None,
        recovery: Mapping[Any, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        host: str | None = None,
        options: StepOptions | None = None,
        context: bool = False,
        emits: Iterable[Any] = (),
    ) -> StepSpec:
        """
        Build a spec from the loose values users write (events as objects, statuses as text).

        ``config`` is the classic spelling of ``options`` (``{"task_construct": "thread"}``).
        """
        return cls(
            name=name,
            func=func,
            args=tuple(args),
            kwargs=_frozen(dict(kwargs or {})),
            triggers=_frozen({_status(k): _event_names(v) for k, v in (triggers or {}).items()}),
            acquires=tuple(acquires or ()),
            releases=None if releases is None else tuple(releases),
            recovery=_frozen({_status(k): _replay(v) for k, v in (recovery or {}).items()}),
            options=options if options is not None else StepOptions.from_config(config),
            host=host,
            context=context,
            emits=_event_names(tuple(emits)) if emits else (),
        )

    @property
    def config(self) -> Mapping[str, Any]:
        """The options that are set, under their config keys (the classic ``config=``)."""
        return MappingProxyType(self.options.to_config())

    def triggered_by(self, status: StepStatus) -> tuple[str, ...]:
        """Event names to fire when a task of this step reaches ``status``."""
        return self.triggers.get(status, ())

    def __str__(self) -> str:
        return self.name


def _frozen(mapping: dict[Any, Any]) -> Mapping[Any, Any]:
    """A read-only view of ``mapping``; the one shared `NOTHING` when it is empty (most are)."""
    return MappingProxyType(mapping) if mapping else NOTHING


def _status(key: Any) -> Any:
    try:
        return StepStatus(getattr(key, "value", key))
    except ValueError:
        return key


def _replay(value: Any) -> Any:
    try:
        return StepReplay(getattr(value, "value", value))
    except ValueError:
        return value


def _event_names(value: Any) -> tuple[Any, ...]:
    items = value if isinstance(value, tuple | list | set | frozenset) else (value,)
    out = []
    for item in items:
        try:
            op = to_operand(item)
        except TypeError:
            out.append(item)  # reported by validation, with the step that holds it
            continue
        out.append(op if isinstance(op, str) else item)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Assoc:
    """When ``event`` fires in a sequence, trigger ``target`` (an event or a step) there after ``delay`` s."""

    event: str
    target: str
    delay: float = 0.0

    def __str__(self) -> str:
        if not self.delay:
            return f"{self.event} -> {self.target}"
        delay = f"{self.delay:g}" if is_number(self.delay) else repr(self.delay)  # shown by checks
        return f"{self.event} -> {self.target} (delay {delay}s)"


@dataclass(frozen=True)
class FlowGraph:
    """
    A validated, immutable flow: its events, steps and associations in definition order.

    Iterating yields every event and step name in the order they were defined;
    ``graph[name]`` returns the `EventSpec` or `StepSpec`, ``name in graph`` tells whether
    it has an event or step of that name, and ``len(graph)`` counts both.
    ``to_text``, ``to_mermaid`` and ``to_dot`` draw it.

    Attributes:
        name: The flow's name.
        events: Every event by name, in definition order: each with its expression
            (``expr``) or ``join`` when it has one.
        steps: Every step by name, in definition order: what it calls, the events its
            statuses trigger, its recovery policy and its options.
        assocs: The associations: when an event fires in a sequence, its target (an event
            or a step) is triggered there, after the association's ``delay`` seconds.
        order: The names of every event and step, in definition order.
    """

    name: str
    events: Mapping[str, EventSpec]
    steps: Mapping[str, StepSpec]
    assocs: tuple[Assoc, ...]
    order: tuple[str, ...]
    _assocs_from: Mapping[str, tuple[Assoc, ...]] = field(init=False, repr=False, compare=False)
    _dependents: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_event: dict[str, list[Assoc]] = {}
        for assoc in self.assocs:
            by_event.setdefault(assoc.event, []).append(assoc)
        dependents: dict[str, list[str]] = {}
        for ev in self.events.values():
            if ev.expr is not None:
                for name in dict.fromkeys(event_names(ev.expr)):
                    dependents.setdefault(name, []).append(ev.name)
        object.__setattr__(
            self, "_assocs_from", MappingProxyType({k: tuple(v) for k, v in by_event.items()})
        )
        object.__setattr__(
            self, "_dependents", MappingProxyType({k: tuple(v) for k, v in dependents.items()})
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)

    def __contains__(self, name: object) -> bool:
        return name in self.events or name in self.steps

    def __getitem__(self, name: str) -> EventSpec | StepSpec:
        if name in self.events:
            return self.events[name]
        return self.steps[name]

    def assocs_from(self, event: str) -> tuple[Assoc, ...]:
        """The associations that fire when ``event`` fires."""
        return self._assocs_from.get(event, ())

    def dependents(self, event: str) -> tuple[str, ...]:
        """Expression events whose expression mentions ``event``."""
        return self._dependents.get(event, ())

    def entry_events(self) -> tuple[str, ...]:
        """Plain events that nothing in the flow triggers: only a user can start them."""
        produced = {a.target for a in self.assocs}
        for step in self.steps.values():
            for names in (*step.triggers.values(), step.emits):
                produced.update(n for n in names if isinstance(n, str))
        return tuple(
            ev.name for ev in self.events.values()
            if ev.expr is None and ev.join is None and ev.name not in produced
        )

    def joins(self) -> tuple[EventSpec, ...]:
        """The join events, in definition order."""
        return tuple(ev for ev in self.events.values() if ev.join is not None)

    def summary(self) -> dict[str, Any]:
        """The graph as plain JSON data (recorded with each run, drawn by run reports)."""
        return {
            "name": self.name,
            "events": [{"name": e.name, "expr": None if e.expr is None else str(e.expr),
                        **({"join": {"event": e.join.event, "over": e.join.over}}
                           if e.join is not None else {})}
                       for e in self.events.values()],
            "steps": [{"name": s.name,
                       "triggers": {str(k): [str(n) for n in v] for k, v in s.triggers.items()},
                       "emits": [str(n) for n in s.emits],
                       **({"acquires": [[str(getattr(pool, "name", pool)), amount]
                                        for pool, amount in s.acquires]} if s.acquires else {})}
                      for s in self.steps.values()],
            "assocs": [{"event": a.event, "target": a.target, "delay": a.delay}
                       for a in self.assocs],
            "order": list(self.order),
        }

    def to_text(self) -> str:
        """The graph as indented text: events (with expressions), then steps and their wiring."""
        into: dict[str, list[str]] = {}
        for a in self.assocs:
            into.setdefault(a.target, []).append(a.event + (f" (after {a.delay:g}s)" if a.delay else ""))
        lines = [f"flow {self.name}", "  events:"]
        for ev in self.events.values():
            lines.append(f"    {ev.name}" + (f" = {ev.expr}" if ev.expr is not None else "")
                         + (f" = {ev.join}" if ev.join is not None else ""))
            lines.extend(f"      -> {a.target}" for a in self.assocs_from(ev.name)
                         if a.target in self.events)
        lines.append("  steps:")
        for step in self.steps.values():
            on = ", ".join(into.get(step.name, [])) or "(nothing)"
            lines.append(f"    {step.name}  on {on}")
            lines.extend(f"      {status} -> {', '.join(map(str, names))}"
                         for status, names in step.triggers.items())
            if step.emits:
                lines.append(f"      emits -> {', '.join(map(str, step.emits))}")
        return "\n".join(lines) + "\n"

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart (events as rounded nodes, steps as boxes)."""
        ids = {name: name if name.isidentifier() else f"n{i}" for i, name in enumerate(self.order)}
        lines = ["flowchart LR"]
        for name in self.order:
            label = name if name.isidentifier() else '"' + name.replace('"', "#quot;") + '"'
            shape = f"([{label}])" if name in self.events else f"[{label}]"
            lines.append(f"    {ids[name]}{shape}")
        for ev in self.events.values():
            if ev.expr is not None:
                lines.extend(f"    {ids[n]} -. expr .-> {ids[ev.name]}"
                             for n in dict.fromkeys(event_names(ev.expr)) if n in ids)
            if ev.join is not None and ev.join.event in ids:
                lines.append(f"    {ids[ev.join.event]} ==>|join over {ev.join.over}| {ids[ev.name]}")
        for a in self.assocs:
            label = f"|delay {a.delay:g}s|" if a.delay else ""
            lines.append(f"    {ids[a.event]} -->{label} {ids[a.target]}")
        for step in self.steps.values():
            for status, names in step.triggers.items():
                lines.extend(f"    {ids[step.name]} -->|{status}| {ids[n]}" for n in names)
            lines.extend(f"    {ids[step.name]} -.->|emits| {ids[n]}" for n in step.emits if n in ids)
        return "\n".join(lines) + "\n"

    def to_dot(self) -> str:
        """The graph in Graphviz DOT (events as ellipses, steps as boxes)."""
        def q(name: str) -> str:
            return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = [f"digraph {q(self.name)} {{", "    rankdir=LR;"]
        for name in self.order:
            shape = "ellipse" if name in self.events else "box"
            lines.append(f"    {q(name)} [shape={shape}];")
        for ev in self.events.values():
            if ev.expr is not None:
                lines.extend(
                    f"    {q(n)} -> {q(ev.name)} [style=dashed];" for n in dict.fromkeys(event_names(ev.expr))
                )
            if ev.join is not None:
                lines.append(f'    {q(ev.join.event)} -> {q(ev.name)} '
                             f'[label="join over {ev.join.over}", style=bold];')
        for a in self.assocs:
            label = f' [label="delay {a.delay:g}s"]' if a.delay else ""
            lines.append(f"    {q(a.event)} -> {q(a.target)}{label};")
        for step in self.steps.values():
            for status, names in step.triggers.items():
                lines.extend(f'    {q(step.name)} -> {q(n)} [label="{status}"];' for n in names)
            lines.extend(f'    {q(step.name)} -> {q(n)} [label="emits", style=dashed];'
                         for n in step.emits)
        lines.append("}")
        return "\n".join(lines) + "\n"


def is_number(value: Any) -> bool:
    """True for a finite int or float (not bool): what a delay or a count must be."""
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    )
