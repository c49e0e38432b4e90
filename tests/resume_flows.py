"""
Programs that run a flow with ``resume_interrupted=True``, for tests that kill them.

    python -m tests.resume_flows flow|classic STORE LOG [DAY]

Each step appends its name to LOG. With $HANG set, ``load`` appends ``load start`` and waits
to be killed. The program prints ``run_id mode ok`` when its run ends. $DATABASES (a repr)
names a PostgreSQL store; $GO makes the program wait for that file before it starts.
"""

from __future__ import annotations

import ast
import os
import sys
import time
from pathlib import Path

import eventor as evr
from eventor import Event, Flow, step


def note(log: str, line: str) -> None:
    with open(log, "a") as f:
        f.write(line + "\n")


def load_step(log: str) -> None:
    note(log, "load start")
    if os.environ.get("HANG"):
        time.sleep(60)
    note(log, "load")


class Nightly(Flow):
    day: str = "2026-11-28"
    log: str = ""

    start = Event(entry=True)
    extracted = Event()

    @step(on=start, success=extracted)
    def extract(self):
        note(self.log, "extract")
        return self.day

    @step(on=extracted)
    def load(self):
        load_step(self.log)


def config() -> dict:
    return {"LOGGING": {"console": False}, "DATABASES": ast.literal_eval(os.environ.get("DATABASES", "{}"))}


def main() -> None:
    kind, store, log, *rest = sys.argv[1:]
    go = os.environ.get("GO")
    while go and not Path(go).exists():
        time.sleep(0.005)
    if kind == "flow":
        flow = Nightly(day=rest[0] if rest else "2026-11-28", log=log, store=store,
                       config=config(), executor="thread")
        result = flow.run(resume_interrupted=True)
        print(flow.run_id, flow._mode.value, bool(result), flush=True)
        flow.close()
        return
    ev = evr.Eventor(name="nightly", store=store, config={**config(), "task_construct": "thread"},
                     resume_interrupted=True)
    start, extracted = ev.add_event("start"), ev.add_event("extracted")
    ev.add_step("extract", func=note, args=(log, "extract"), triggers={evr.STEP_SUCCESS: extracted})
    ev.add_step("load", func=load_step, args=(log,))
    ev.add_assoc(start, "extract")
    ev.add_assoc(extracted, "load")
    ev.trigger_event(start, "1")
    ok = ev.run()
    print(ev.run_id, ev.run_mode.value, ok, flush=True)
    ev.close()


if __name__ == "__main__":
    main()
