"""
One way to build a `FlowGraph`: collect events, steps and associations, then validate the
whole graph once and freeze it. Both front ends (`eventor.dsl` and `eventor.classic`) use it.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from eventor.exceptions import Problem
from eventor.graph import Assoc, EventSpec, FlowGraph, Join, StepSpec, to_operand
from eventor.validate import step_problems, validate

__all__ = ["GraphBuilder"]


class GraphBuilder:
    """
    Collects events, steps and associations, then builds one validated `FlowGraph`.

    Problems found while adding (a duplicate name, say) are kept and reported together with
    the whole-graph checks by `build`, so that one error lists everything wrong.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._events: dict[str, EventSpec] = {}
        self._steps: dict[str, StepSpec] = {}
        self._assocs: list[Assoc] = []
        self._order: list[str] = []
        self.where: dict[str, str] = {}  # node or association -> "file.py:line"
        self.problems: list[Problem] = []

    def add_event(self, name: str, expr: Any = None, where: str = "", *,
                  join: tuple[Any, str] | None = None) -> EventSpec:
        """
        Add an event: plain, an expression event (``expr``), or a join event (``join``:
        the joined event or expression, and the event that starts the children).
        """
        operand = None
        if expr is not None:
            try:
                operand = to_operand(expr)
            except TypeError as exc:
                self.problems.append(Problem(f"event {name!r}", str(exc), where=where))
        spec = EventSpec(name, operand, self._join(name, join, where) if join is not None else None)
        self._add_node(name, "event", where)
        self._events.setdefault(name, spec)
        return spec

    def _join(self, name: str, join: tuple[Any, str], where: str) -> Join | None:
        joined, over = join
        try:
            operand = to_operand(joined)
        except TypeError as exc:
            self.problems.append(Problem(f"event {name!r}", f"join: {exc}", where=where))
            return None
        if not isinstance(operand, str):  # an expression joins as the event of its text
            text = str(operand)[1:-1]
            if text not in self._events:
                self.add_event(text, operand, where)
            operand = text
        return Join(operand, over if isinstance(over, str) else str(getattr(over, "name", over)))

    def add_step(self, spec: StepSpec, where: str = "") -> StepSpec:
        self._add_node(spec.name, "step", where)
        self._steps.setdefault(spec.name, spec)
        return spec

    def check_step(self, spec: StepSpec, where: str = "") -> None:
        """Check one step on its own now (as the classic API adds it); problems join the rest."""
        self.problems.extend(step_problems(spec, where))

    def add_assoc(self, event: str, target: str, delay: float = 0, where: str = "") -> Assoc:
        assoc = Assoc(event, target, delay)
        self._assocs.append(assoc)
        if where:
            self.where[str(assoc)] = where
        return assoc

    def check_name(self, name: str, kind: str, where: str = "") -> None:
        """Whether ``name`` may name a new event or step (``kind``); a problem joins the rest."""
        problem = self._name_problem(name, kind, where)
        if problem is not None:
            self.problems.append(problem)

    def _name_problem(self, name: str, kind: str, where: str) -> Problem | None:
        if not isinstance(name, str) or not name:
            return Problem(f"{kind} {name!r}", "a name must be a non-empty string.", where=where)
        if name in self._events or name in self._steps:
            other = "an event" if name in self._events else "a step"
            return Problem(
                f"{kind} {name!r}",
                f"the name is already used by {other}"
                + (f" defined at {self.where[name]}" if self.where.get(name) else "")
                + ".",
                "Give each event and step its own name.",
                where,
            )
        return None

    def _add_node(self, name: str, kind: str, where: str) -> None:
        problem = self._name_problem(name, kind, where)
        if problem is not None:
            self.problems.append(problem)
            return
        self._order.append(name)
        self.where[name] = where

    def __contains__(self, name: object) -> bool:
        return name in self._events or name in self._steps

    def event(self, name: str) -> EventSpec | None:
        """The event added under ``name``, or None (no such event, or it names a step)."""
        return self._events.get(name)

    def build(self) -> FlowGraph:
        """
        Freeze what was added into a `FlowGraph`.

        Raises:
            FlowDefinitionError: listing every problem found.
        """
        graph = FlowGraph(
            name=self.name,
            events=MappingProxyType(dict(self._events)),
            steps=MappingProxyType(dict(self._steps)),
            assocs=tuple(self._assocs),
            order=tuple(self._order),
        )
        validate(graph, self.problems, self.where)
        return graph
