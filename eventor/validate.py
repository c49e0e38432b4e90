"""
Small named checks over a `FlowGraph`; `validate` runs them all and reports every problem at once.

Each check is a function ``check_*(graph, where) -> Iterator[Problem]``; ``where`` maps a
node name (or an association's text) to the source location that defined it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from eventor.enums import StepReplay, StepStatus, executor_alias
from eventor.exceptions import FlowDefinitionError, Problem, did_you_mean
from eventor.graph import FlowGraph, event_names, is_number

Check = Callable[[FlowGraph, Mapping[str, str]], Iterator[Problem]]

_STATUSES = [s.value for s in StepStatus]
_REPLAYS = [r.value for r in StepReplay]


def check_expressions(graph: FlowGraph, where: Mapping[str, str]) -> Iterator[Problem]:
    """An expression names only defined events and never depends on itself."""
    for ev in graph.events.values():
        if ev.expr is None:
            continue
        for name in dict.fromkeys(event_names(ev.expr)):
            if name not in graph.events:
                hint = " (that is a step; expressions combine events)" if name in graph.steps else ""
                yield Problem(
                    f"event {ev.name!r}",
                    f"its expression {ev.expr} names unknown event {name!r}{hint}."
                    + did_you_mean(name, graph.events),
                    f"Define it with add_event({name!r}) or fix the name.",
                    where.get(ev.name, ""),
                )
    for ev in graph.events.values():
        if ev.expr is not None and _depends_on(graph, ev.name, ev.name, set()):
            yield Problem(
                f"event {ev.name!r}",
                "its expression depends on itself, so it could never fire.",
                "Remove the cycle between expression events.",
                where.get(ev.name, ""),
            )


def _depends_on(graph: FlowGraph, start: str, target: str, seen: set[str]) -> bool:
    spec = graph.events.get(start)
    if spec is None or spec.expr is None or start in seen:
        return False
    seen.add(start)
    return any(name == target or _depends_on(graph, name, target, seen) for name in event_names(spec.expr))


def check_assocs(graph: FlowGraph, where: Mapping[str, str]) -> Iterator[Problem]:
    """An association goes from a defined event to a defined event or step, with a delay >= 0."""
    for assoc in graph.assocs:
        if (assoc.event in graph.events and assoc.target in graph and is_number(assoc.delay)
                and assoc.delay >= 0):
            continue  # valid, as most are: no text is made for it
        loc = where.get(str(assoc), "")
        subject = f"association {assoc.event} -> {assoc.target}"
        if assoc.event not in graph.events:
            yield Problem(
                subject,
                f"{assoc.event!r} is not an event." + did_you_mean(assoc.event, graph.events),
                "The first argument of add_assoc is an event returned by add_event().",
                loc,
            )
        if assoc.target not in graph:
            yield Problem(
                subject,
                f"{assoc.target!r} is neither an event nor a step."
                + did_you_mean(assoc.target, list(graph.order)),
                "Associate an event with events or steps added to this flow.",
                loc,
            )
        if not is_number(assoc.delay) or assoc.delay < 0:
            yield Problem(
                subject,
                f"delay {assoc.delay!r} is not a number of seconds >= 0.",
                "Use delay=0 for no delay.",
                loc,
            )


def check_triggers(graph: FlowGraph, where: Mapping[str, str]) -> Iterator[Problem]:
    """A step's triggers fire defined events (their statuses: see `step_problems`)."""
    for step in graph.steps.values():
        loc = where.get(step.name, "")
        for status, names in step.triggers.items():
            for name in names:
                if isinstance(name, str) and name not in graph.events:
                    yield Problem(
                        f"step {step.name!r}",
                        f"triggers unknown event {name!r} on {status}."
                        + did_you_mean(name, graph.events),
                        f"Define it with add_event({name!r}) or fix the name.",
                        loc,
                    )


def check_joins(graph: FlowGraph, where: Mapping[str, str]) -> Iterator[Problem]:
    """A join joins an event something can fire, over an event a step emits."""
    if not graph.joins():
        return
    reachable = {a.target for a in graph.assocs} | {
        ev.name for ev in graph.events.values() if ev.expr is not None or ev.join is not None}
    emitted: set[str] = set()
    for step in graph.steps.values():
        for names in step.triggers.values():
            reachable.update(n for n in names if isinstance(n, str))
        emitted.update(n for n in step.emits if isinstance(n, str))
    reachable |= emitted
    emitters: dict[str, list[str]] = {}
    for step in graph.steps.values():
        for name in step.emits:
            emitters.setdefault(name, []).append(step.name)
    fired_by: dict[str, str] = {a.target: f"association {a}" for a in graph.assocs}
    for step in graph.steps.values():
        for status, names in step.triggers.items():
            fired_by.update({n: f"step {step.name!r} on {status}" for n in names if isinstance(n, str)})
        fired_by.update({n: f"step {step.name!r} (emits)" for n in step.emits if isinstance(n, str)})
    for ev in graph.joins():
        assert ev.join is not None
        subject, loc = f"event {ev.name!r}", where.get(ev.name, "")
        if ev.name in fired_by:
            yield Problem(subject, f"it is a join, but {fired_by[ev.name]} fires it too.",
                          "A join fires by itself once its children arrive; fire another event.",
                          loc)
        if len(emitters.get(ev.join.over, ())) > 1:
            fanners = " and ".join(repr(n) for n in emitters[ev.join.over])
            yield Problem(subject, f"over={ev.join.over!r} is emitted by {fanners}, so the join "
                          "could fire once the first of them ended, before the other's children.",
                          "Let one step fan out over an event; join several fan-outs with "
                          "one join each (and & between them).", loc)
        if ev.join.event not in graph.events:
            yield Problem(subject, f"it joins {ev.join.event!r}, which is not an event."
                          + did_you_mean(ev.join.event, graph.events),
                          "Join an event of the flow.", loc)
        elif ev.join.event not in reachable:
            yield Problem(subject, f"it joins {ev.join.event!r}, which no step fires, so the "
                          "children could never reach it.",
                          "Join an event a step fires (success=, failure=, ...).", loc)
        if ev.join.over not in emitted:
            others = [n for n in graph.events if n != ev.join.over]
            hint = did_you_mean(ev.join.over, emitted) or did_you_mean(ev.join.over, others)
            yield Problem(subject, f"over={ev.join.over!r} is not an event any step emits, so "
                          "no child would ever start." + hint,
                          "Give the event the fanning step triggers, and declare it in its "
                          "emits=.", loc)


def check_emits(graph: FlowGraph, where: Mapping[str, str]) -> Iterator[Problem]:
    """What a step declares it may trigger (``emits=``) are events of the flow."""
    for step in graph.steps.values():
        for name in step.emits:
            if not isinstance(name, str) or name not in graph.events:
                yield Problem(
                    f"step {step.name!r}",
                    f"emits={name!r} is not an event of the flow."
                    + did_you_mean(name, graph.events),
                    "Declare the events its ctx.trigger calls fire.",
                    where.get(step.name, ""),
                )


def check_steps(graph: FlowGraph, where: Mapping[str, str]) -> Iterator[Problem]:
    """A step's function is callable, its recovery policy is valid, its acquires are (pool, n)."""
    option_problems: dict[int, list[Any]] = {}  # most steps share one StepOptions: check it once
    for step in graph.steps.values():
        yield from step_problems(step, where.get(step.name, ""), option_problems)


def step_problems(step: Any, loc: str = "",
                  option_problems: dict[int, list[Any]] | None = None) -> Iterator[Problem]:
    """
    What is wrong with one step on its own (see `check_steps`): the classic API checks each
    step as it is added. ``option_problems`` keeps the problems of options shared by steps.
    """
    subject = f"step {step.name!r}"
    if step.func is not None and not callable(step.func):
        yield Problem(subject, f"func {step.func!r} is not callable.", "Pass a function or None.", loc)
    for status, names in step.triggers.items():
        if not isinstance(status, StepStatus):
            yield Problem(subject, f"triggers key {status!r} is not a step status."
                          + did_you_mean(status, _STATUSES), f"Use one of {', '.join(_STATUSES)}.",
                          loc)
        for name in names:
            if not isinstance(name, str):
                yield Problem(subject,
                              f"triggers {{{status}: ...}} holds {name!r}, which is not an event.",
                              "Give events returned by add_event() or their names.", loc)
    for status, replay in step.recovery.items():
        if not isinstance(status, StepStatus):
            yield Problem(
                subject,
                f"recovery key {status!r} is not a step status." + did_you_mean(status, _STATUSES),
                f"Use one of {', '.join(_STATUSES)}.",
                loc,
            )
        if not isinstance(replay, StepReplay):
            yield Problem(
                subject,
                f"recovery value {replay!r} for {status} is not a replay policy."
                + did_you_mean(replay, _REPLAYS),
                "Use STEP_SKIP or STEP_RERUN.",
                loc,
            )
    for item in step.acquires:
        if not (isinstance(item, tuple | list) and len(item) == 2 and _is_count(item[1])):
            yield Problem(
                subject,
                f"acquires item {item!r} is not a (pool, count) pair with count >= 1.",
                "Write acquires=[(pool, 1)].",
                loc,
            )
    problems = None if option_problems is None else option_problems.get(id(step.options))
    if problems is None:
        problems = list(step.options.problems())
        if option_problems is not None:
            option_problems[id(step.options)] = problems
    for problem in problems:
        yield Problem(subject, problem.message, problem.fix, loc)
    yield from executor_problems(step, loc)


def executor_problems(step: Any, loc: str = "", default: Any = None) -> Iterator[Problem]:
    """
    What the executor a step runs with (its own, else ``default``: its flow's) cannot do:
    stop an invoke step at a timeout, find an ssh step's host. A step with a host runs there
    over ssh, whatever its executor.
    """
    own = step.options.executor
    executor = executor_alias(own if own is not None else default)
    whose = "" if own is not None else "the flow's "
    subject = f"step {step.name!r}"
    timeout = step.options.to_config().get("timeout") if executor == "invoke" else None
    if timeout is not None and step.func is not None and step.host is None:
        yield Problem(subject, f"it has timeout={timeout!r}, but runs in the engine's thread "
                      f"({whose}executor='invoke'), where nothing can stop it.",
                      "Run it with executor='process' or 'thread', or drop the timeout.", loc)
    if executor == "ssh" and step.host is None:
        yield Problem(subject, f"{whose}executor='ssh' names no host to run it on.",
                      "Give it host=... (a name in the config's HOSTS), which runs it there "
                      "by itself.", loc)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


CHECKS: tuple[Check, ...] = (check_expressions, check_assocs, check_triggers, check_emits,
                             check_joins, check_steps)


def validate(
    graph: FlowGraph, problems: Iterable[Problem] = (), where: Mapping[str, str] | None = None
) -> None:
    """
    Run every check over ``graph``.

    Raises:
        FlowDefinitionError: listing ``problems`` found earlier and everything the checks find.
    """
    where = where or {}
    found = list(problems)
    for check in CHECKS:
        found.extend(check(graph, where))
    if found:
        raise FlowDefinitionError(graph.name, found)
