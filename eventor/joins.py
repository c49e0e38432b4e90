"""
Fan-out and join: which sequences are children of which, and when a join event is due.

A step that emits ``over`` and calls ``ctx.trigger(over, child)`` from sequence ``parent``
starts a child sequence of ``parent`` (``child`` may be ``parent`` itself: item 0 of a scan
run in sequence 0 is a child like the others). A join event ``join(event, over=over)`` is due in
``parent`` once every task there of a step that emits ``over`` has ended (the set of
children is then closed) and ``event`` has fired in every child. With no child, it is due
when those tasks end. The engine reports what happens (tasks created and ended, events
fired) and fires what `due` returns; everything here is rebuilt from the store on continue.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from eventor.graph import EventSpec, FlowGraph

__all__ = ["Joins", "waiting_in"]


@dataclass(slots=True)
class _Fan:
    """The children one sequence started through one event, and its fanning tasks not ended."""

    open: int = 0
    broken: bool = False  # a fanning task failed: its join does not fire in this attempt
    changed: bool = False  # recovery reran a task of the fan: the join's step runs again
    children: dict[str, None] = field(default_factory=dict)  # in the order they started
    done: dict[str, int] = field(default_factory=dict)  # join -> children that reached it


class Joins:
    """The fan-outs of one attempt and the joins waiting on them."""

    def __init__(self, graph: FlowGraph) -> None:
        joins = graph.joins()
        self.over: dict[str, list[EventSpec]] = {}  # over event -> its joins
        self.joined: dict[str, list[EventSpec]] = {}  # joined event -> its joins
        for ev in joins:
            assert ev.join is not None
            self.over.setdefault(ev.join.over, []).append(ev)
            self.joined.setdefault(ev.join.event, []).append(ev)
        self.fanners = {step.name: tuple(e for e in step.emits if e in self.over)
                        for step in graph.steps.values()}
        self.fanners = {name: events for name, events in self.fanners.items() if events}
        self.watched = frozenset(self.over) | frozenset(self.joined)  # events to report
        self.names = frozenset(ev.name for ev in joins)
        self.joiners = frozenset(_steps_after(graph, self.names))  # steps that read children
        self._fans: dict[tuple[str, str], _Fan] = {}  # (over, parent) -> fan
        self._of_parent: dict[str, list[_Fan]] = {}  # parent -> its fans
        self._parent: dict[tuple[str, str], str] = {}  # (over, child) -> parent
        self._dirty: set[tuple[str, str]] = set()  # (over, parent) to look at again

    def __bool__(self) -> bool:
        return bool(self.over)

    # -- what the engine reports -------------------------------------------------------

    def task_created(self, step: str, sequence: str) -> None:
        """A task of a step that emits an ``over`` event: its sequence's fan is open."""
        for over in self.fanners[step]:
            self._fan(over, sequence).open += 1

    def task_ended(self, step: str, sequence: str, ok: bool) -> None:
        """
        That task reached its final status: it starts no more children. When it failed, its
        fan-out may be partial, so the join does not fire (as a success trigger would not).
        """
        for over in self.fanners[step]:
            fan = self._fan(over, sequence)
            fan.open -= 1
            fan.broken = fan.broken or not ok
            self._dirty.add((over, sequence))

    def rerun(self, step: str, sequence: str) -> None:
        """
        Recovery ran a task again (or anew) and it ended otherwise than recorded: the joins
        its sequence belongs to changed, and their steps run again.
        """
        for over in self.fanners.get(step, ()):
            self._fan(over, sequence).changed = True
        for over in self.over:
            parent = self._parent.get((over, sequence))
            if parent is not None:
                self._fans[over, parent].changed = True

    def changed(self, sequence: str) -> bool:
        """True when recovery reran a task of a fan-out of ``sequence``."""
        return any(fan.changed for fan in self._of_parent.get(sequence, ()))

    def event_fired(self, event: str, sequence: str, parent: str | None,
                    fired: Mapping[str, set[str]]) -> None:
        """
        ``event`` fired in ``sequence``; ``parent`` is the sequence of the task whose
        ctx.trigger fired it (a child is starting, which may be that sequence itself).
        """
        added = parent is not None and event in self.over
        if added:
            assert parent is not None
            self._add_child(event, sequence, parent, fired)
        for ev in self.joined.get(event, ()):
            assert ev.join is not None
            if added and ev.join.over == event:
                continue  # join(found, over=found): counted as the child was added
            parent_of = self._parent.get((ev.join.over, sequence))
            if parent_of is not None:
                fan = self._fans[ev.join.over, parent_of]
                fan.done[ev.name] = fan.done.get(ev.name, 0) + 1
                self._dirty.add((ev.join.over, parent_of))

    def _add_child(self, over: str, child: str, parent: str, fired: Mapping[str, set[str]]) -> None:
        if (over, child) in self._parent:
            return  # one parent per child: the first fan-out that started it
        self._parent[over, child] = parent
        fan = self._fan(over, parent)
        fan.children[child] = None
        in_child = fired.get(child, set())
        for ev in self.over[over]:
            assert ev.join is not None
            if ev.join.event in in_child:  # a sequence that existed, and got there already
                fan.done[ev.name] = fan.done.get(ev.name, 0) + 1
        self._dirty.add((over, parent))

    def _fan(self, over: str, parent: str) -> _Fan:
        fan = self._fans.get((over, parent))
        if fan is None:
            fan = self._fans[over, parent] = _Fan()
            self._of_parent.setdefault(parent, []).append(fan)
        return fan

    # -- what the engine asks ----------------------------------------------------------

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    def due(self) -> list[tuple[str, str]]:
        """(join event, parent sequence) that may fire now (the engine fires each once)."""
        due: list[tuple[str, str]] = []
        for over, parent in self._dirty:
            fan = self._fans[over, parent]
            if fan.open or fan.broken:
                continue
            due.extend((ev.name, parent) for ev in self.over[over]
                       if fan.done.get(ev.name, 0) >= len(fan.children))
        self._dirty.clear()
        return due

    def children(self, parent: str) -> list[str]:
        """Every child sequence ``parent`` started, over any event, in the order they started."""
        found: dict[str, None] = {}
        for fan in self._of_parent.get(parent, ()):
            found.update(fan.children)
        return list(found)

    def waiting(self, fired: Mapping[str, set[str]]) -> Iterator[tuple[str, str, tuple[str, ...]]]:
        """(join, parent, children that did not reach it) for each join that did not fire."""
        for (over, parent), fan in self._fans.items():
            for ev in self.over[over]:
                assert ev.join is not None
                if ev.name in fired.get(parent, ()):
                    continue
                missing = tuple(sorted(c for c in fan.children
                                       if ev.join.event not in fired.get(c, ())))
                yield ev.name, parent, missing

    def rebuild(self, tasks: Iterable[tuple[str, str, str]],
                children: Iterable[tuple[str, str, str]], fired: Mapping[str, set[str]]) -> None:
        """
        The state of an attempt being continued: its tasks (step, sequence, status) and its
        children (over event, child, parent), with the events fired in each sequence.
        """
        for step, sequence, status in tasks:
            if step in self.fanners:
                self.task_created(step, sequence)
                if status in ("success", "failure"):
                    self.task_ended(step, sequence, status == "success")
        for over, child, parent in children:
            if over in self.over:
                self._add_child(over, child, parent, fired)
        self._dirty.update(self._fans)


def _steps_after(graph: FlowGraph, joins: frozenset[str]) -> set[str]:
    """The steps that run on a join event, directly or through expressions and associations."""
    events, todo = set(joins), list(joins)
    steps: set[str] = set()
    while todo:
        event = todo.pop()
        nexts = [*graph.dependents(event), *(a.target for a in graph.assocs_from(event))]
        for name in nexts:
            if name in graph.steps:
                steps.add(name)
            elif name not in events:
                events.add(name)
                todo.append(name)
    return steps


def waiting_in(graph: Mapping[str, Any], triggers: Iterable[Mapping[str, Any]]
               ) -> list[tuple[str, str, tuple[str, ...], int]]:
    """
    From a run's recorded graph summary and the triggers of one attempt: (join, parent
    sequence, children that did not reach the joined event, children) for every join that
    has children and did not fire; what ``eventor show`` and the report print.
    """
    joins = [(e["name"], e["join"]["event"], e["join"]["over"])
             for e in graph.get("events", ()) if isinstance(e, Mapping) and e.get("join")]
    if not joins:
        return []
    fired: set[tuple[Any, Any]] = set()
    children: dict[tuple[Any, Any], dict[Any, None]] = {}
    for row in triggers:
        fired.add((row["event"], row["sequence"]))
        if row.get("origin") == "trigger":
            children.setdefault((row["event"], row["origin_sequence"]), {})[row["sequence"]] = None
    waiting = []
    for name, joined, over in joins:
        for (event, parent), kids in children.items():
            if event != over or (name, parent) in fired:
                continue
            missing = tuple(str(c) for c in kids if (joined, c) not in fired)
            waiting.append((str(name), str(parent), missing, len(kids)))
    return waiting
