"""
Prefect 3: one no-op task, a chain of N, or a fan-out of N joined by one final task.

    python prefect_cases.py one|chain|fanout N [--home DIR]

Idiomatic Prefect 3: a @flow calling @task functions, with the default task runner
(ThreadPoolTaskRunner) and Prefect's defaults for results (not persisted unless asked)
and logging. The chain calls each task with the previous task's result; the fan-out maps
the task over range(N) and passes the futures to the final task.

Prefect needs an API. None is configured here, so it runs in ephemeral mode: the first
call to the flow starts a temporary Prefect server (uvicorn, a subprocess of this one, on
a free port of 127.0.0.1) on the sqlite database PREFECT_HOME/prefect.db, and stops it
when this process exits. PREFECT_HOME is --home (default: a new temporary folder). The
flow run and its states are written through the API; task runs and their states are sent
as events, which the server's task run recorder writes to the task_run tables.

Prints one JSON line: the wall seconds from before the flow is defined to after it
returned, which includes starting the temporary server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["one", "chain", "fanout"])
    parser.add_argument("n", type=int)
    parser.add_argument("--home", help="PREFECT_HOME (default: a new temporary folder)")
    args = parser.parse_args()
    os.environ["PREFECT_HOME"] = args.home or tempfile.mkdtemp(prefix="prefect-cases-")
    os.environ.setdefault("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "true")  # the default profile's
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no network here
    import prefect
    from prefect import flow, task

    ran: list[int] = []
    start = time.perf_counter()

    @task
    def noop(prev: int | None = None) -> int:
        ran.append(1)
        return len(ran)

    @task
    def join(results: list[int]) -> int:
        ran.append(1)
        return len(results)

    @flow
    def one() -> int:
        return noop()

    @flow
    def chain(n: int) -> int | None:
        prev = None
        for _ in range(n):
            prev = noop(prev)
        return prev

    @flow
    def fanout(n: int) -> int:
        futures = noop.map(range(n))
        return join(futures)

    if args.case == "one":
        state, expected = one(return_state=True), 1
    elif args.case == "chain":
        state, expected = chain(args.n, return_state=True), args.n
    else:
        state, expected = fanout(args.n, return_state=True), args.n + 1
    seconds = time.perf_counter() - start
    if len(ran) != expected or not state.is_completed():
        sys.exit(f"prefect {args.case}: failed or incomplete ({len(ran)}/{expected} tasks ran)")
    print(json.dumps({"peer": "prefect", "version": prefect.__version__, "case": args.case,
                      "n": args.n, "tasks": len(ran), "seconds": seconds,
                      "run_id": str(state.state_details.flow_run_id)}), flush=True)


if __name__ == "__main__":
    main()
