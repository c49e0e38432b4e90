"""
Eventor: one no-op step, a chain of N, or a fan-out of N joined by one final step.

    python eventor_cases.py one|chain|fanout N [--executor thread|process] [--home DIR]

The classic API (steps added in a loop): the chain's step i fires the event that starts
step i + 1 on success; the fan-out's N steps start on one event, and the final step on
the expression event that is the *and* of their N success events. The store is the
sqlite file --home/eventor.run.db (default: a new temporary folder), in which the engine
commits every task's creation, start and outcome before acting on it. Config and
logging are Eventor's defaults, but for the executor (`task_construct`).

Prints one JSON line: the wall seconds from before the Eventor is created (which opens
the store) to after run() returned.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import tempfile
import time
from pathlib import Path

import eventor as evr


def noop() -> None:
    return None


def build(case: str, n: int, store: str, executor: str) -> tuple[evr.Eventor, int]:
    ev = evr.Eventor(name=f"peers-{case}", store=store, config={"task_construct": executor})
    go = ev.add_event("go")
    if case == "one":
        ev.add_step("s0", func=noop)
        ev.add_assoc(go, "s0")
        expected = 1
    elif case == "chain":
        events = [go] + [ev.add_event(f"e{i}") for i in range(1, n)]
        for i in range(n):
            triggers = {evr.STEP_SUCCESS: events[i + 1]} if i + 1 < n else {}
            ev.add_step(f"s{i}", func=noop, triggers=triggers)
            ev.add_assoc(events[i], f"s{i}")
        expected = n
    else:
        done = [ev.add_event(f"d{i}") for i in range(n)]
        for i in range(n):
            ev.add_step(f"s{i}", func=noop, triggers={evr.STEP_SUCCESS: done[i]})
            ev.add_assoc(go, f"s{i}")
        all_done = ev.add_event("all_done", expr=tuple(done))  # a tuple means *and*
        ev.add_step("join", func=noop)
        ev.add_assoc(all_done, "join")
        expected = n + 1
    ev.trigger_event(go, 1)
    return ev, expected


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["one", "chain", "fanout"])
    parser.add_argument("n", type=int)
    parser.add_argument("--executor", choices=["thread", "process"], default="thread")
    parser.add_argument("--home", help="the folder of the store (default: a new temporary folder)")
    args = parser.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="eventor-cases-"))
    start = time.perf_counter()
    ev, expected = build(args.case, args.n, str(home / "eventor.run.db"), args.executor)
    ok = ev.run()
    seconds = time.perf_counter() - start
    done = sum(1 for t in ev.store.tasks(ev.run_id) if t["status"] == "success")
    ev.close()
    if not ok or done != expected:
        sys.exit(f"eventor {args.case}: failed or incomplete ({done}/{expected} tasks succeeded)")
    print(json.dumps({"peer": f"eventor-{args.executor}", "version": importlib.metadata.version("eventor"),
                      "case": args.case, "n": args.n, "tasks": done, "seconds": seconds,
                      "run_id": ev.run_id, "from": str(Path(evr.__file__).parent)}), flush=True)


if __name__ == "__main__":
    main()
