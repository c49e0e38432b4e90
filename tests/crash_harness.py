"""
Kill an engine for real and check that recovery loses nothing and repeats nothing.

`CrashFlow` fans out into 8 child sequences; each runs process and thread steps joined by
an AND expression, a delayed step, and a failure branch; a join then summarizes them all.
Every step appends a line to an
execution log, written by the step itself. `kill_and_recover` runs the flow in a
subprocess, SIGKILLs the engine after a given time, recovers the run in another subprocess,
and compares the log and the store with an uninterrupted run:

- a task the store had recorded as succeeded is not run again;
- every other task runs, and the final statuses and results are those of a clean run;
- no step runs twice in one attempt, and no trigger fires twice in one sequence;
- no worker process outlives the killed engine.

    python -m tests.crash_harness run|recover STORE LOG RUN_ID    (what the subprocesses run)

Used by tests/test_crash.py (a handful of kill points) and bench/crash.py (100 of them).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import eventor as evr
from eventor import Event, Flow, step

ROOT = Path(__file__).resolve().parent.parent
SEQUENCES = 8
QUIET = {"LOGGING": {"console": False}}


class CrashFlow(Flow):
    """
    Fan out into sequences; in each: a (process) & b (thread) -> delay -> c -> d, e on
    failure; once every sequence took one branch or the other, summary joins them.
    """

    log: str = ""  # the execution log the steps append to
    work_ms: int = 30  # each step works up to this long (varied per step and sequence)

    start = Event(entry=True)
    item = Event()
    a_done = Event()
    b_done = Event()
    both = a_done & b_done
    c_done = Event()
    d_done = Event()
    d_failed = Event()
    e_done = Event()
    settled = evr.join(d_done | e_done, over=item)  # every sequence took one branch or the other

    def work(self, ctx) -> str:
        line = f"{ctx.step} {ctx.sequence} {ctx.recovery} {os.getpid()}\n"
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())  # one write: lines never interleave
        finally:
            os.close(fd)
        spread = zlib.crc32(f"{ctx.step}{ctx.sequence}".encode()) % (self.work_ms + 1)
        time.sleep(spread / 1000)
        return f"{ctx.step}:{ctx.sequence}"

    @step(on=start, emits=[item], executor="thread")
    def spawn(self, ctx):
        for i in range(SEQUENCES):
            ctx.trigger(self.item, i)
        return self.work(ctx)

    @step(on=item, success=a_done, executor="process")
    def a(self, ctx):
        return self.work(ctx)

    @step(on=item, success=b_done, executor="thread")
    def b(self, ctx):
        return self.work(ctx)

    @step(on=both, success=c_done, delay=0.05, executor="process")
    def c(self, ctx):
        self.work(ctx)
        return f"{ctx.results['a']}+{ctx.results['b']}"

    @step(on=c_done, success=d_done, failure=d_failed, executor="thread")
    def d(self, ctx):
        self.work(ctx)
        if int(ctx.sequence) % 3 == 0:
            raise ValueError(f"sequence {ctx.sequence} fails on purpose")
        return ctx.results["c"]

    @step(on=d_failed, success=e_done, executor="process")
    def e(self, ctx):
        return self.work(ctx)

    @step(on=settled, executor="thread")
    def summary(self, ctx):
        self.work(ctx)
        return list(ctx.results.each("c").values())


class ThreadCrashFlow(CrashFlow):
    """`CrashFlow` with every step on threads: its rounds run on the workers that finish
    tasks, not only on the engine's thread (see Engine._deliver)."""

    @step(on=CrashFlow.item, success=CrashFlow.a_done, executor="thread")
    def a(self, ctx):
        return self.work(ctx)

    @step(on=CrashFlow.both, success=CrashFlow.c_done, delay=0.05, executor="thread")
    def c(self, ctx):
        self.work(ctx)
        return f"{ctx.results['a']}+{ctx.results['b']}"

    @step(on=CrashFlow.d_failed, success=CrashFlow.e_done, executor="thread")
    def e(self, ctx):
        return self.work(ctx)


FLOWS = {"mixed": CrashFlow, "threads": ThreadCrashFlow}


def expected() -> dict[tuple[str, str], tuple[str, str | None]]:
    """(step, sequence) -> (status, stored result) of an uninterrupted run."""
    out: dict[tuple[str, str], tuple[str, str | None]] = {("spawn", "0"): ("success", '"spawn:0"')}
    for i in map(str, range(SEQUENCES)):
        out[("a", i)] = ("success", f'"a:{i}"')
        out[("b", i)] = ("success", f'"b:{i}"')
        out[("c", i)] = ("success", f'"a:{i}+b:{i}"')
        if int(i) % 3 == 0:
            out[("d", i)] = ("failure", None)
            out[("e", i)] = ("success", f'"e:{i}"')
        else:
            out[("d", i)] = ("success", f'"a:{i}+b:{i}"')
    out[("summary", "0")] = ("success", json.dumps([f"a:{i}+b:{i}" for i in range(SEQUENCES)]))
    return out


def main(argv: list[str]) -> int:
    mode, store, log, run_id, *kind = argv
    flow = FLOWS[kind[0] if kind else "mixed"]
    if mode == "run":
        result = flow(log=log, store=store, config=QUIET, run_id=run_id).run()
    else:
        result = flow.recover(run_id, store=store, config=QUIET)
    return 0 if result else 1


def start(mode: str, store: Path, log: Path, run_id: str,
          kind: str = "mixed") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash_harness", mode, str(store), str(log), run_id, kind],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for_attempt(store: Path, timeout: float) -> None:
    """Wait until the engine has recorded its attempt (the interpreter has started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if store.exists() and query(store, "select count(*) from eventor_attempts")[0][0]:
                return
        except sqlite3.Error:
            pass  # the schema is being created
        time.sleep(0.005)


def group_gone(pgid: int, timeout: float) -> bool:
    """Wait until no process of group ``pgid`` is left (the engine's workers included)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False


@dataclass
class Report:
    """What one kill-and-recover found; ``ok`` when every check held."""

    kill_after: float  # seconds after the engine recorded its attempt
    problems: list[str] = field(default_factory=list)
    recorded_before: int = 0  # tasks recorded as succeeded when the engine was killed
    ran_again: int = 0  # tasks run by the recovery

    @property
    def ok(self) -> bool:
        return not self.problems


def query(store: Path, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(store) as db:
        return db.execute(sql, args).fetchall()


def log_lines(log: Path) -> list[tuple[str, str, int]]:
    if not log.exists():
        return []
    return [(s, q, int(a)) for s, q, a, _ in (line.split() for line in log.read_text().splitlines())]


def kill_and_recover(folder: Path, kill_after: float, run_id: str = "crash",
                     kind: str = "mixed") -> Report:
    """
    Run `CrashFlow` (``kind`` "threads": `ThreadCrashFlow`), SIGKILL its engine ``kill_after``
    s into its run, recover, and check.
    """
    store, log = folder / f"{run_id}.run.db", folder / f"{run_id}.log"
    report = Report(kill_after)
    engine = start("run", store, log, run_id, kind)
    wait_for_attempt(store, timeout=30)
    time.sleep(kill_after)
    with contextlib.suppress(ProcessLookupError):
        os.kill(engine.pid, signal.SIGKILL)
    engine.communicate()
    if not group_gone(engine.pid, 5.0):
        report.problems.append("a worker process outlived the killed engine")
        os.killpg(engine.pid, signal.SIGKILL)

    has_run = store.exists() and query(store, "select count(*) from eventor_runs")[0][0] > 0
    recorded = set()
    if has_run:
        recorded = set(query(store, "select step, sequence from eventor_tasks "
                                    "where attempt = 0 and status = 'success'"))
    report.recorded_before = len(recorded)
    before = len(log_lines(log))

    again = start("recover" if has_run else "run", store, log, run_id, kind)
    _out, err = again.communicate(timeout=120)
    if again.returncode != 0:
        report.problems.append(f"recovery exited {again.returncode}: {err.strip()[-500:]}")
        return report

    lines = log_lines(log)
    rerun = {(s, q) for s, q, _ in lines[before:]}
    report.ran_again = len(rerun)
    if recorded & rerun:
        report.problems.append(f"recorded successes ran again: {sorted(recorded & rerun)}")
    should_run = set(expected()) - recorded
    if should_run - rerun:
        report.problems.append(f"tasks that never ran: {sorted(should_run - rerun)}")
    seen: set[tuple[str, str, int]] = set()
    for entry in lines:
        if entry in seen:
            report.problems.append(f"{entry[0]}[{entry[1]}] ran twice in attempt {entry[2]}")
        seen.add(entry)
    last = query(store, "select max(attempt) from eventor_attempts")[0][0]
    final = {(s, q): (st, r) for s, q, st, r in query(
        store, "select step, sequence, status, result from eventor_tasks where attempt = ?", last)}
    if final != expected():
        wrong = sorted(k for k in {*final, *expected()} if final.get(k) != expected().get(k))
        report.problems.append(f"final tasks differ from a clean run at {wrong}")
    twice = query(store, "select attempt, event, sequence from eventor_triggers "
                         "group by attempt, event, sequence having count(*) > 1")
    if twice:
        report.problems.append(f"triggers fired twice: {twice}")
    status = query(store, "select status from eventor_attempts where attempt = ?", last)[0][0]
    if status != "success":
        report.problems.append(f"the last attempt ended {status!r}")
    return report


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
