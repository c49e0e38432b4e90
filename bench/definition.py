"""
What defining a flow costs before it runs: a Flow object of an N-step chain (and its engine),
and N classic ``add_step`` calls, with and without options of their own.

    python bench/definition.py [--steps 10000] [--root OTHER_CHECKOUT]

``--root`` puts another checkout of Eventor first on ``sys.path``, to compare two commits
(run it for each, in alternation). Each figure is the best of ``--repeat`` tries in this
interpreter; the ratio is to building the same graph with no checks at all
(``GraphBuilder``), measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

QUIET = {"LOGGING": {"console": False}}


def best(repeat: int, work: Callable[[], Any]) -> float:
    """The least wall time of ``repeat`` calls of ``work``, in seconds."""
    least = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        least = min(least, time.perf_counter() - start)
    return least


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--root", help="another checkout to import eventor from")
    args = parser.parse_args()
    if args.root:
        sys.path.insert(0, args.root)
    from core import dsl_chain  # the chain bench/core.py runs (bench/ is on sys.path)

    import eventor as evr
    from eventor.builder import GraphBuilder
    from eventor.graph import StepSpec

    n = args.steps
    chain = dsl_chain(n)
    chain._compiled()  # the class's graph, made once: not what is measured

    def flow_object(engine: bool) -> Callable[[], None]:
        def make() -> None:
            flow = chain(store=":memory:", config=QUIET, executor="thread")
            if engine:
                flow.trigger("e0", 1)  # makes its engine
            flow.close()
        return make

    def classic(config: dict[str, Any] | None) -> Callable[[], None]:
        def add() -> None:
            ev = evr.Eventor(name="defined", store=":memory:", config=QUIET)
            for i in range(n):
                ev.add_step(f"s{i}", func=print, config=config)
            ev.close()
        return add

    def unchecked() -> None:
        builder = GraphBuilder("defined")
        for i in range(n):
            builder.add_step(StepSpec.make(f"s{i}", print))

    floor = best(args.repeat, unchecked)
    print(f"python {sys.version.split()[0]}, eventor from {evr.__file__.rsplit('/', 2)[0]}")
    print(f"{'case':52} {'ms':>8} {'us/step':>8} {'x floor':>8}")
    for name, work in (
        (f"GraphBuilder.add_step x {n}, no checks (the floor)", unchecked),
        (f"Flow(...) of a {n}-step chain", flow_object(False)),
        (f"Flow(...) of a {n}-step chain, then its engine", flow_object(True)),
        (f"Eventor.add_step x {n}, no options of their own", classic(None)),
        (f"Eventor.add_step x {n}, each with config=", classic({"task_construct": "thread"})),
    ):
        took = floor if work is unchecked else best(args.repeat, work)
        print(f"{name:52} {took * 1000:8.1f} {took * 1e6 / n:8.2f} {took / floor:8.2f}")


if __name__ == "__main__":
    main()
