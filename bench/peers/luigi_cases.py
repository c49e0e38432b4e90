"""
Luigi: one no-op task, a chain of N, or a fan-out of N joined by one final task.

    python luigi_cases.py one|chain|fanout N [--home DIR]

Idiomatic Luigi: task classes whose requires() name their dependencies, run by
luigi.build(..., local_scheduler=True) with one worker (tasks run in this process).
Each no-op task writes its output target, an empty LocalTarget file, as Luigi tasks do:
Luigi knows a task is done only by its output existing (a task without outputs is never
complete, and the task after it fails with an unfulfilled dependency). The target files
are all Luigi leaves on disk; it records no task run, state, time or error (the local
scheduler keeps task states in memory). Targets go to a new folder under --home for every
run, so no run finds the previous run's targets. Prints one JSON line: the wall seconds
from before the tasks are built to after luigi.build returned.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import luigi

RAN: list[str] = []
TARGETS = Path(".")  # this run's folder of output targets, set by main()


class Target(luigi.Task):
    """A no-op task whose output is an empty file named after the task."""

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(TARGETS / self.task_id))

    def run(self) -> None:
        with self.output().open("w"):
            pass
        RAN.append(self.task_id)


class Noop(Target):
    """A no-op task; ``i`` tells the instances apart."""

    i = luigi.IntParameter()


class Link(Target):
    """Link i of a chain: requires link i - 1."""

    i = luigi.IntParameter()

    def requires(self):
        return Link(i=self.i - 1) if self.i > 0 else []


class Join(Target):
    """The final task of a fan-out: requires the N no-op tasks."""

    n = luigi.IntParameter()

    def requires(self):
        return [Noop(i=i) for i in range(self.n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["one", "chain", "fanout"])
    parser.add_argument("n", type=int)
    parser.add_argument("--home", help="the folder for output targets (default: a new temporary one)")
    args = parser.parse_args()
    global TARGETS
    home = args.home or tempfile.mkdtemp(prefix="luigi-cases-")
    TARGETS = Path(tempfile.mkdtemp(prefix=f"{args.case}-{os.getpid()}-", dir=home))
    start = time.perf_counter()
    if args.case == "one":
        root, expected = Noop(i=0), 1
    elif args.case == "chain":
        root, expected = Link(i=args.n - 1), args.n
    else:
        root, expected = Join(n=args.n), args.n + 1
    ok = luigi.build([root], local_scheduler=True, workers=1)
    seconds = time.perf_counter() - start
    if not ok or len(RAN) != expected:
        sys.exit(f"luigi {args.case}: failed or incomplete ({len(RAN)}/{expected} tasks ran)")
    print(json.dumps({"peer": "luigi", "version": luigi.__version__, "case": args.case, "n": args.n,
                      "tasks": len(RAN), "seconds": seconds,
                      "targets": len(os.listdir(TARGETS))}))


if __name__ == "__main__":
    main()
