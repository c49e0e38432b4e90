"""The run report: one HTML page drawn from what the store recorded, escaped, with no fetches."""

from __future__ import annotations

import eventor as evr
from eventor import Event, Flow, step
from eventor.report import render_report
from eventor.store import open_store


def boom():
    raise ValueError("<script>alert('x')</script> & more")


def test_the_report_shows_graph_timeline_attempts_and_every_task(make_eventor):
    ev = make_eventor()
    go, ok = ev.add_event("go"), ev.add_event("ok")
    ev.add_assoc(go, ev.add_step("first", func=lambda: {"rows": 3},
                                 triggers={evr.STEP_SUCCESS: ok}))
    ev.add_assoc(ok, ev.add_step("second<b>", func=boom))
    ev.trigger_event(go, "2026-11-28")
    assert not ev.run()
    page = render_report(ev.store, ev.run_id)
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 2
    assert f"Eventor run {ev.run_id}" in page
    assert "attempt 0 (restart)" in page and 'class="failure">failure' in page
    assert "<td>first</td><td>2026-11-28</td>" in page
    assert "second&lt;b&gt;" in page and "second<b>" not in page
    assert "&lt;script&gt;alert(" in page and "<script>alert(" not in page
    assert "src=" not in page and "href=" not in page


def test_a_run_without_a_recorded_graph_says_so(make_eventor):
    ev = make_eventor()
    ev.store.begin_attempt("bare", "prog", "restart", now=1.0, host="h", pid=1)
    page = render_report(ev.store, "bare")
    assert "The run recorded no graph." in page and "attempt 0 (restart)" in page


def test_the_report_draws_what_a_step_emits(tmp_path):
    class Fan(Flow):
        start = Event()
        found = Event()

        @step(on=start, emits=[found])
        def scan(self, ctx):
            ctx.trigger(self.found, "a")

        @step(on=found)
        def load(self):
            return 1

    result = Fan(store=str(tmp_path / "fan.run.db"), executor="thread",
                 config={"LOGGING": {"console": False}}).run()
    store = open_store(str(tmp_path / "fan.run.db"))
    page = render_report(store, result.run_id)
    store.close()
    assert ">emits</text>" in page
