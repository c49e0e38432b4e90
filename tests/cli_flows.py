"""Flows for the CLI tests, importable as tests.cli_flows (a package.module reference)."""

from __future__ import annotations

import eventor as evr
from eventor import Event, Flow, step


class Numbers(Flow):
    """Add up to a limit; fail when asked to."""

    limit: int = 3
    fail: bool = False

    start = Event()
    counted = Event()

    @step(on=start, success=counted, executor="thread")
    def count(self):
        return list(range(self.limit))

    @step(on=counted, executor="thread")
    def total(self, ctx):
        if self.fail:
            raise RuntimeError("asked to fail")
        return sum(ctx.results["count"])


class Later(Flow):
    start = Event()
    done = Event()

    @step(on=start, success=done, executor="thread")
    def now(self):
        return "now"

    @step(on=done, delay=0.2, executor="thread")
    def later(self):
        return "later"


def build_flow(run_mode=evr.RUN_RESTART, run_id="", store="", fail=False, wait=0.0):
    """A classic program: one step that may fail, after ``wait`` seconds."""
    ev = evr.Eventor(name="classic_cli", store=store, run_mode=run_mode, run_id=run_id,
                     config={"LOGGING": {"console": False}, "task_construct": "thread"})
    go = ev.add_event("go")
    ev.add_step("work", func=(lambda: 1 / 0) if fail else (lambda: "worked"))
    ev.add_assoc(go, "work", delay=wait)
    ev.trigger_event(go, 1)
    return ev


def not_a_builder():
    return 42


class Fan(Flow):
    """Load three children; the one named in broken= never loads."""

    broken: str = "bb"

    start = Event()
    found = Event()
    loaded = Event()
    all_loaded = evr.join(loaded, over=found)

    @step(on=start, emits=[found], executor="thread")
    def scan(self, ctx):
        for name in ("a", "bb", "ccc"):
            ctx.trigger(self.found, name)

    @step(on=found, success=loaded, executor="thread", stop_on_exception=False)
    def load(self, ctx):
        if ctx.sequence == self.broken:
            raise OSError("unreadable")
        return 1

    @step(on=all_loaded, executor="thread")
    def summarize(self, ctx):
        return len(ctx.results.each("load"))
