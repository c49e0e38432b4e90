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

        loaded = Event()
        rejected = Event()
        settled = evr.join(loaded | rejected, over=found)

        @step(on=found, success=loaded, failure=rejected)
        def load(self):
            return 1

        @step(on=settled)
        def summarize(self):
            return "done"

    result = Fan(store=str(tmp_path / "fan.run.db"), executor="thread",
                 config={"LOGGING": {"console": False}}).run()
    store = open_store(str(tmp_path / "fan.run.db"))
    page = render_report(store, result.run_id)
    store.close()
    assert ">emits</text>" in page
    assert ">join over found</text>" in page  # the join's arrow, into the event it fires


def noisy_then_boom():
    print("about to fail")
    raise ValueError("boom")


def test_the_report_shows_tracebacks_output_retried_tries_and_a_legend(make_eventor):
    ev = make_eventor(config={"retries": 1})
    go = ev.add_event("go")
    ev.add_assoc(go, ev.add_step("bad", func=noisy_then_boom))
    ev.trigger_event(go)
    assert not ev.run()
    page = render_report(ev.store, ev.run_id)
    assert "<h2>Retried tries</h2>" in page and "bad[0] attempt 0, try 1" in page
    assert page.count("<details><summary>traceback</summary>") == 2  # the try and the task
    assert "<details><summary>output</summary><pre>about to fail" in page
    assert 'class="legend"' in page and "0.2" not in page.split('class="legend"')[0][-5:]


def test_an_interrupted_attempt_shows_as_interrupted(make_eventor):
    ev = make_eventor()
    import socket

    ev.store.begin_attempt("cut", "prog", "restart", now=1.0, host=socket.gethostname(),
                           pid=2**22 + 12345)  # a pid no process has here: its engine is gone
    page = render_report(ev.store, "cut")
    assert 'class="interrupted">interrupted</span>' in page


def test_a_crashed_attempts_task_ends_at_its_engines_last_sign_of_life(make_eventor):
    ev = make_eventor()
    store = ev.store
    store.begin_attempt("died", "prog", "restart", now=100.0, host="h", pid=1)
    from eventor.store.base import Batch, TaskRecord

    batch = Batch()
    batch.new_tasks = [TaskRecord("died", 0, "s", "0", "active", "process", 100.0, 100.5, None, "h")]
    store.write(batch)
    store.end_attempt("died", 0, "crashed", now=5000.0)
    attempt = store.attempts("died")[0]
    page = render_report(store, "died")
    assert "crashed" in page
    last = attempt["heartbeat_at"] or 5000.0
    assert f"{max(last, 100.5) - 100.5:.3f}s" in page  # its bar ends there, not at the recovery


def test_the_report_names_the_pools_a_step_acquires(make_eventor):
    ev = make_eventor(config={"POOLS": {"db": 2}})
    go = ev.add_event("go")
    ev.add_assoc(go, ev.add_step("load", func=lambda: 1, acquires=[("db", 1)]))
    ev.trigger_event(go)
    assert ev.run()
    assert "pool db\u00d71" in render_report(ev.store, ev.run_id)


class Daily(Flow):
    day: str = "mon"
    fail: bool = True
    start = Event()

    @step(on=start, executor="thread")
    def work(self):
        if self.fail:
            raise ValueError("asked to")
        return self.day


def test_the_report_shows_the_parameters_of_each_attempt(tmp_path):
    store, config = str(tmp_path / "d.run.db"), {"LOGGING": {"console": False}}
    with Daily(store=store, config=config, run_id="d1") as flow:
        flow.run()
    assert Daily.recover("d1", store=store, config=config, fail=False).status == "success"
    opened = open_store(store)
    try:
        page = render_report(opened, "d1")
    finally:
        opened.close()
    first, second = page.split("attempt 1 (recover)")
    assert "&quot;fail&quot;: true" in first and "&quot;fail&quot;: false" in second
