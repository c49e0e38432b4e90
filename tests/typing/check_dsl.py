"""
Checked by mypy in CI (not run by pytest): the decorators keep the types users wrote.

The assignments and ``assert_type`` calls fail the type check if ``@step`` erased a
signature; ``warn_unused_ignores`` turns the deliberate mistakes into checks too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import assert_type

import eventor as evr
from eventor import Event, Flow, RunResult, StepContext, step


@step(on="start", success="extracted")
def extract(ctx: StepContext) -> list[int]:
    return [1, 2, 3]


@step
def bare() -> str:
    return "x"


keeps: Callable[[StepContext], list[int]] = extract
# If @step erased the signature (to Any), this ignore would be unused, and mypy would fail.
wrong: Callable[[], int] = extract  # type: ignore[assignment]


def uses_the_signature(ctx: StepContext) -> None:
    rows: list[int] = extract(ctx)
    assert_type(rows, list[int])
    assert_type(bare(), str)


class Etl(Flow):
    day: str = "today"
    start = Event()
    done = Event()
    ready = start & done
    either = start | done

    @step(on=start, success=done, delay=1.5, executor="thread")
    def load(self, ctx: StepContext) -> int:
        assert_type(ctx.sequence, str)
        assert_type(ctx.run_id, str)
        ctx.trigger(self.done, 2)
        return 1

    extract = extract


def runs() -> None:
    flow = Etl(day="2026-11-01")
    bound: Callable[[StepContext], int] = flow.load
    assert_type(bound, Callable[[StepContext], int])
    result = flow.run(sequence="x", max_loops=3)
    assert_type(result, RunResult)
    assert_type(result.status, str)
    graph: evr.FlowGraph = Etl.graph
    assert graph.to_mermaid()
    flow.trigger(Etl.start, 1)
    flow.close()
