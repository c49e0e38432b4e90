"""
Dagster: one no-op op, a chain of N, or a fan-out of N joined by one final op.

    python dagster_cases.py one|chain|fanout N [--home DIR]

Idiomatic Dagster: a @job of ops (each an alias of one no-op op), the chain wired by
Nothing inputs (start after the previous op), the fan-out's N ops fanned in to one final
op, executed in this process with job.execute_in_process(instance=...). The instance is
DagsterInstance.get() on DAGSTER_HOME = --home (default: a new temporary folder), which
has no dagster.yaml storage settings, so it is Dagster's default sqlite instance: runs in
DAGSTER_HOME/history/runs.db and every event of a run (run and step starts, outputs,
successes, logs) in its event log, DAGSTER_HOME/history/runs/<run_id>.db. Telemetry is
switched off in dagster.yaml (this machine reaches no such service). Logging to the
console is Dagster's default.

Prints one JSON line: the wall seconds from before the job is built (and the instance
opened) to after execute_in_process returned.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["one", "chain", "fanout"])
    parser.add_argument("n", type=int)
    parser.add_argument("--home", help="DAGSTER_HOME (default: a new temporary folder)")
    args = parser.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="dagster-cases-"))
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    import dagster
    from dagster import DagsterInstance, In, Nothing, job, op

    ran: list[str] = []
    start = time.perf_counter()
    instance = DagsterInstance.get()

    @op(ins={"after": In(Nothing)})
    def noop(context) -> None:
        ran.append(context.op.name)

    n = args.n
    if args.case == "one":
        expected = 1

        @job(name="one")
        def flow() -> None:
            noop.alias("s0")()

    elif args.case == "chain":
        expected = n

        @job(name="chain")
        def flow() -> None:
            prev = noop.alias("s0")()
            for i in range(1, n):
                prev = noop.alias(f"s{i}")(after=prev)

    else:
        expected = n + 1

        @job(name="fanout")
        def flow() -> None:
            noop.alias("join")(after=[noop.alias(f"s{i}")() for i in range(n)])

    result = flow.execute_in_process(instance=instance)
    seconds = time.perf_counter() - start
    if not result.success or len(ran) != expected:
        sys.exit(f"dagster {args.case}: failed or incomplete ({len(ran)}/{expected} ops ran)")
    print(json.dumps({"peer": "dagster", "version": dagster.__version__, "case": args.case, "n": n,
                      "tasks": len(ran), "seconds": seconds, "run_id": result.run_id}), flush=True)


if __name__ == "__main__":
    main()
