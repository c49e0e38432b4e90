"""The engine's rules (DESIGN.md section 3), through the classic API on real sqlite files."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

import eventor as evr
from eventor.testing import capture_events
from tests.conftest import fan_out, fired, max_overlap, slow_then, statuses


def chain(ev: evr.Eventor, n: int, func=None, **step_kw):
    """n steps s1..sn chained by events e1..en; returns the first event."""
    events = [ev.add_event(f"e{i}") for i in range(1, n + 1)]
    for i in range(1, n + 1):
        triggers = {evr.STEP_SUCCESS: events[i]} if i < n else {}
        step = ev.add_step(f"s{i}", func=func, kwargs={"i": i} if func else None,
                           triggers=triggers, **step_kw)
        ev.add_assoc(events[i - 1], step)
    return events[0]


def test_a_chain_runs_each_step_once_in_order(make_eventor):
    seen = []
    ev = make_eventor()
    first = chain(ev, 3, func=lambda i: seen.append(i) or i)
    ev.trigger_event(first, 1)
    assert ev.run() is True
    assert seen == [1, 2, 3]
    assert statuses(ev) == {("s1", "1"): "success", ("s2", "1"): "success", ("s3", "1"): "success"}
    assert [t["result"] for t in ev.store.tasks(ev.run_id)] == ["1", "2", "3"]


def test_an_event_fires_at_most_once_per_sequence(make_eventor):
    calls = []
    ev = make_eventor()
    e = ev.add_event("e")
    ev.add_assoc(e, ev.add_step("s", func=lambda: calls.append(1)))
    ev.trigger_event(e, "a")
    ev.trigger_event(e, "a")
    ev.trigger_event(e, "b")
    assert ev.run()
    assert fired(ev) == [("e", "a"), ("e", "b")]
    assert len(calls) == 2


def test_triggering_again_after_a_run_is_a_no_op_in_the_same_sequence(make_eventor):
    calls = []
    ev = make_eventor()
    e = ev.add_event("e")
    ev.add_assoc(e, ev.add_step("s", func=lambda: calls.append(1)))
    ev.trigger_event(e, 1)
    assert ev.run()
    ev.trigger_event(e, 1)
    assert ev.run()
    assert calls == [1]


def test_sequences_are_independent_and_derived_triggers_keep_theirs(make_eventor):
    ev = make_eventor()
    first = chain(ev, 2, func=lambda i: i)
    for seq in (1, "x", 3):
        ev.trigger_event(first, seq)
    assert ev.run()
    assert set(statuses(ev)) == {(s, q) for s in ("s1", "s2") for q in ("1", "x", "3")}


def test_default_sequence_is_0(make_eventor):
    ev = make_eventor()
    e = ev.add_event("e")
    ev.add_assoc(e, ev.add_step("s"))
    ev.trigger_event(e)
    assert ev.run()
    assert statuses(ev) == {("s", "0"): "success"}


def test_event_to_event_associations_propagate(make_eventor):
    ev = make_eventor()
    a, b, c = (ev.add_event(n) for n in "abc")
    ev.add_assoc(a, b, c)
    ev.add_assoc(c, ev.add_step("s"))
    ev.trigger_event(a, 7)
    assert ev.run()
    assert fired(ev) == [("a", "7"), ("b", "7"), ("c", "7")]
    assert statuses(ev) == {("s", "7"): "success"}


def test_and_expression_fires_once_both_fired_in_the_same_sequence(make_eventor):
    ev = make_eventor()
    a, b = ev.add_event("a"), ev.add_event("b")
    both = ev.add_event("both", expr=(a, b))
    ev.add_assoc(both, ev.add_step("s"))
    ev.trigger_event(a, 1)
    ev.trigger_event(b, 2)
    assert ev.run()
    assert statuses(ev) == {}
    ev.trigger_event(b, 1)
    assert ev.run()
    assert statuses(ev) == {("s", "1"): "success"}


def test_or_fires_when_only_the_second_operand_fired(make_eventor):
    ev = make_eventor()
    a, b = ev.add_event("a"), ev.add_event("b")
    either = ev.add_event("either", expr=evr.or_(a, b))
    ev.add_assoc(either, ev.add_step("s"))
    ev.trigger_event(b, 1)
    ev.trigger_event(a, 2)
    ev.trigger_event(b, 2)
    assert ev.run()
    assert statuses(ev) == {("s", "1"): "success", ("s", "2"): "success"}
    assert fired(ev).count(("either", "2")) == 1


def test_nested_expressions_of_expression_events(make_eventor):
    ev = make_eventor()
    a, b, c = (ev.add_event(n) for n in "abc")
    ab = ev.add_event("ab", expr=evr.or_(a, b))
    top = ev.add_event("top", expr=(ab, c))
    ev.add_assoc(top, ev.add_step("s"))
    ev.trigger_event(c, 1)
    ev.trigger_event(a, 1)
    assert ev.run()
    assert statuses(ev) == {("s", "1"): "success"}


def test_every_status_fires_its_mapped_events(make_eventor):
    ev = make_eventor()
    go = ev.add_event("go")
    names = ["on_ready", "on_active", "on_success", "on_failure", "on_complete"]
    events = {n: ev.add_event(n) for n in names}
    ev.add_step("ok", triggers={evr.STEP_READY: events["on_ready"],
                                evr.STEP_ACTIVE: events["on_active"],
                                evr.STEP_SUCCESS: events["on_success"],
                                evr.STEP_COMPLETE: events["on_complete"]})
    ev.add_assoc(go, "ok")
    ev.trigger_event(go, 1)
    assert ev.run()
    assert {e for e, _ in fired(ev)} == {"go", "on_ready", "on_active", "on_success", "on_complete"}


def boom():
    raise ValueError("boom")


def test_an_unhandled_failure_makes_run_false_and_records_the_traceback(make_eventor):
    ev = make_eventor()
    e = ev.add_event("e")
    ev.add_assoc(e, ev.add_step("bad", func=boom))
    ev.trigger_event(e, 1)
    assert ev.run() is False
    [task] = ev.store.tasks(ev.run_id)
    assert task["status"] == "failure"
    assert task["error_type"] == "ValueError" and task["error_message"] == "boom"
    assert "raise ValueError" in task["traceback"]
    assert ev.summary.failed == (("bad", "1"),)
    assert ev.store.attempts(ev.run_id)[0]["status"] == "failure"


def test_a_failure_handled_by_a_failure_trigger_keeps_run_true(make_eventor):
    alerts = []
    ev = make_eventor()
    e, failed = ev.add_event("e"), ev.add_event("failed")
    ev.add_assoc(e, ev.add_step("bad", func=boom, triggers={evr.STEP_FAILURE: failed}))
    ev.add_assoc(failed, ev.add_step("alert", func=lambda: alerts.append(1)))
    ev.trigger_event(e, 1)
    assert ev.run() is True
    assert alerts == [1]
    assert statuses(ev) == {("bad", "1"): "failure", ("alert", "1"): "success"}


def test_a_complete_trigger_also_handles_failure(make_eventor):
    ev = make_eventor()
    e, done = ev.add_event("e"), ev.add_event("done")
    ev.add_assoc(e, ev.add_step("bad", func=boom, triggers={evr.STEP_COMPLETE: done}))
    ev.trigger_event(e, 1)
    assert ev.run() is True
    assert ("done", "1") in fired(ev)


def test_a_step_returning_false_succeeds_and_none_func_is_a_no_op(make_eventor):
    ev = make_eventor()
    e = ev.add_event("e")
    ev.add_assoc(e, ev.add_step("f", func=lambda: False), ev.add_step("noop"))
    ev.trigger_event(e, 1)
    assert ev.run()
    assert statuses(ev) == {("f", "1"): "success", ("noop", "1"): "success"}



def test_stop_on_exception_starts_nothing_new_but_lets_running_tasks_finish(make_eventor):
    record = []
    ev = make_eventor()
    go, after_bad, after_slow = ev.add_event("go"), ev.add_event("after_bad"), ev.add_event("x")
    ev.add_step("bad", func=boom, triggers={evr.STEP_SUCCESS: after_bad})
    ev.add_step("slow", func=slow_then(record, "slow", 0.2),
                triggers={evr.STEP_SUCCESS: after_slow})
    ev.add_step("next", func=lambda: record.append(("start", "next", 0)))
    ev.add_assoc(go, "bad", "slow")
    ev.add_assoc(after_slow, "next")
    ev.trigger_event(go, 1)
    assert ev.run() is False
    assert [r[:2] for r in record] == [("start", "slow"), ("end", "slow")]
    assert statuses(ev) == {("bad", "1"): "failure", ("slow", "1"): "success",
                            ("next", "1"): "ready"}


def test_stop_on_exception_false_lets_the_flow_go_on_but_run_is_still_false(make_eventor):
    record = []
    ev = make_eventor(config={"stop_on_exception": False})
    go, after = ev.add_event("go"), ev.add_event("after")
    ev.add_step("bad", func=boom)
    ev.add_step("slow", func=slow_then(record, "slow", 0.05), triggers={evr.STEP_SUCCESS: after})
    ev.add_step("next", func=lambda: record.append(("start", "next", 0)))
    ev.add_assoc(go, "bad", "slow")
    ev.add_assoc(after, "next")
    ev.trigger_event(go, 1)
    assert ev.run() is False
    assert statuses(ev)[("next", "1")] == "success"


def test_per_step_stop_on_exception_overrides_the_global_setting(make_eventor):
    ev = make_eventor()
    go, after = ev.add_event("go"), ev.add_event("after")
    ev.add_step("bad", func=boom, config={"stop_on_exception": False})
    ev.add_step("slow", func=lambda: time.sleep(0.05), triggers={evr.STEP_SUCCESS: after})
    ev.add_step("next")
    ev.add_assoc(go, "bad", "slow")
    ev.add_assoc(after, "next")
    ev.trigger_event(go, 1)
    assert ev.run() is False
    assert statuses(ev)[("next", "1")] == "success"




def test_max_concurrent_caps_running_tasks_without_crashing(make_eventor):
    record = []
    ev = make_eventor(config={"max_concurrent": 2})
    fan_out(ev, 6, record, meet=2)
    assert ev.run()
    assert len(record) == 12
    assert max_overlap(record) == 2


def test_per_step_max_concurrent_caps_one_step_across_sequences(make_eventor):
    record, lock = [], threading.Lock()

    def work():
        with lock:
            record.append(("start", "s", time.monotonic()))
        time.sleep(0.03)
        with lock:
            record.append(("end", "s", time.monotonic()))

    ev = make_eventor()
    go = ev.add_event("go")
    ev.add_assoc(go, ev.add_step("s", func=work, config={"max_concurrent": 1}))
    for seq in range(4):
        ev.trigger_event(go, seq)
    assert ev.run()
    assert len(record) == 8
    assert max_overlap(record) == 1


def test_without_a_cap_independent_steps_run_in_parallel(make_eventor):
    record = []
    ev = make_eventor()
    fan_out(ev, 4, record, seconds=0.05, meet=4)
    assert ev.run()
    assert max_overlap(record) == 4


def test_a_delay_fires_after_its_time_with_an_injected_clock(make_eventor):
    clock = evr.MockClock()
    ev = make_eventor(clock=clock)
    e = ev.add_event("e")
    later = ev.add_event("later")
    ev.add_assoc(e, later, delay=6 * 3600)
    ev.add_assoc(later, ev.add_step("s"))
    start = clock.now()
    ev.trigger_event(e, 1)
    wall = time.monotonic()
    assert ev.run()
    assert time.monotonic() - wall < 5
    [task] = ev.store.tasks(ev.run_id)
    assert task["created_at"] >= start + 6 * 3600
    [delay] = ev.store.delays(ev.run_id)
    assert delay["due_at"] == start + 6 * 3600 and delay["fired_at"] == task["created_at"]


def test_a_bounded_run_reports_pending_delays_and_keeps_them_recorded(make_eventor):
    clock = evr.MockClock(autojump=False, autojump_threshold=0.001)
    ev = make_eventor(clock=clock)
    e = ev.add_event("e")
    ev.add_assoc(e, ev.add_step("s"), delay=60)
    ev.trigger_event(e, 1)
    assert ev.run(max_loops=1) is True
    assert ev.summary.status == "paused" and ev.summary.pending == 1
    [delay] = ev.store.delays(ev.run_id)
    assert delay["fired_at"] is None
    clock.advance(61)
    assert ev.run()
    assert statuses(ev) == {("s", "1"): "success"}


@pytest.mark.parametrize("max_loops", [2, 3, 100])
def test_a_bounded_run_left_with_only_a_delay_returns_rather_than_wait_for_it(make_eventor,
                                                                               max_loops):
    ev = make_eventor(config={"task_construct": "thread"})  # the real clock
    go, done = ev.add_event("go"), ev.add_event("done")
    ev.add_assoc(go, ev.add_step("a", func=lambda: 1, triggers={evr.STEP_SUCCESS: done}))
    ev.add_assoc(done, ev.add_step("b", func=lambda: 2), delay=3600)
    ev.trigger_event(go, 1)
    out: list[bool] = []
    runner = threading.Thread(target=lambda: out.append(ev.run(max_loops=max_loops)), daemon=True)
    runner.start()
    runner.join(30)
    assert out == [True], "the bounded run waited for a delay an hour away"
    assert ev.summary.status == "paused" and ev.summary.pending == 1
    assert statuses(ev) == {("a", "1"): "success"}


def test_max_loops_lets_running_tasks_finish_and_leaves_the_rest_ready(make_eventor):
    ev = make_eventor()
    first = chain(ev, 3, func=lambda i: i)
    ev.trigger_event(first, 1)
    assert ev.run(max_loops=1)
    assert statuses(ev) == {("s1", "1"): "success", ("s2", "1"): "ready"}
    assert ev.summary.status == "paused"
    assert ev.run()
    assert statuses(ev) == {("s1", "1"): "success", ("s2", "1"): "success",
                            ("s3", "1"): "success"}


def test_each_round_is_committed_before_the_next_step_starts(make_eventor, tmp_path):
    """A step sees, in the store, its own task already recorded as active."""
    seen = {}
    ev = make_eventor()
    path = tmp_path / "t.run.db"

    def look():
        import sqlite3

        with sqlite3.connect(path) as db:
            seen.update(db.execute("select step, status from eventor_tasks").fetchall())

    first = chain(ev, 1)
    ev.add_step("look", func=look)
    ev.add_assoc("e1", "look")
    ev.trigger_event(first, 1)
    assert ev.run()
    assert seen["look"] == "active"


def test_a_task_that_waited_for_a_slot_is_recorded_active_before_it_runs(make_eventor, tmp_path):
    """Recorded ready while it waits; its start (a narrower update) is committed before it runs."""
    seen = {}
    ev = make_eventor(config={"max_concurrent": 1})
    path = tmp_path / "t.run.db"

    def look(me):
        import sqlite3

        with sqlite3.connect(path) as db:
            seen[me] = {row[0]: row[1:] for row in db.execute(
                "select step, status, started_at is not null, host, ended_at from eventor_tasks")}

    go = ev.add_event("go")
    ev.add_assoc(go, ev.add_step("first", func=look, args=("first",)),
                 ev.add_step("second", func=look, args=("second",)))
    ev.trigger_event(go, 1)
    assert ev.run()
    assert seen["first"]["second"] == ("ready", 0, None, None)
    assert seen["second"]["second"] == ("active", 1, socket.gethostname(), None)
    assert seen["second"]["first"][0] == "success"
    row = {t["step"]: t for t in ev.store.tasks(ev.run_id)}["second"]
    assert row["status"] == "success" and row["started_at"] <= row["ended_at"]


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_an_active_trigger_starts_its_target_while_the_step_runs(make_eventor, executor, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()

    def slow():  # runs until the watcher has started (or 10 s, if it never does)
        deadline = time.monotonic() + 10
        while not (marks / "watcher_started").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        (marks / "slow_ended").write_text(repr(time.time()))

    def watcher():
        (marks / "watcher_started").write_text(repr(time.time()))

    ev = make_eventor(config={"task_construct": executor})
    go, on_active = ev.add_event("go"), ev.add_event("on_active")
    ev.add_assoc(go, ev.add_step("s", func=slow, triggers={evr.STEP_ACTIVE: on_active}))
    ev.add_assoc(on_active, ev.add_step("watcher", func=watcher))
    ev.trigger_event(go)
    assert ev.run()
    started = float((marks / "watcher_started").read_text())
    ended = float((marks / "slow_ended").read_text())
    assert started < ended, "the watcher waited for the step that activated it to end"


def test_a_delay_and_a_retry_due_at_once_start_in_the_order_delays_then_retries(make_eventor):
    tries = []

    def flaky():
        tries.append(1)
        if len(tries) == 1:
            raise ValueError("first try")

    ev = make_eventor(clock=evr.MockClock(), config={"task_construct": "invoke", "max_concurrent": 1})
    go, b_done = ev.add_event("go"), ev.add_event("b_done")
    ev.add_assoc(go, ev.add_step("A", func=flaky, config={"retries": 1, "retry_delay": 10}))
    ev.add_assoc(go, ev.add_step("B", func=print, triggers={evr.STEP_SUCCESS: b_done}))
    ev.add_assoc(b_done, ev.add_step("C", func=print), delay=10)
    ev.trigger_event(go)
    with capture_events() as events:
        assert ev.run()
    assert [e["step"] for e in events if e["event"] == "step_started"] == ["A", "B", "C", "A"]


def test_a_step_s_triggers_are_taken_before_its_outcome_however_rounds_run(tmp_path):
    # Each step triggers the next sequence, then returns: were its outcome taken first, its
    # trigger would come from a task no longer running, and the chain would stop there.
    from eventor import Event, Flow, step

    class Relay(Flow):
        tick = Event(entry=True)
        side = Event()

        @step(on=tick, emits=[tick, side], executor="thread")
        def hop(self, ctx):
            n = int(ctx.sequence)
            if n < 300:
                ctx.trigger(self.tick, str(n + 1))
            ctx.trigger(self.side, ctx.sequence)
            return n

        @step(on=side, executor="thread")
        def seen(self, ctx):
            return ctx.sequence

    result = Relay(store=str(tmp_path / "relay.run.db"), config={"LOGGING": {"console": False}}).run()
    assert result
    assert sorted(int(t.sequence) for t in result.tasks if t.step == "hop") == list(range(301))
    assert len([t for t in result.tasks if t.step == "seen"]) == 301


def test_running_an_eventor_again_after_another_program_continued_its_run_keeps_the_order(
        make_eventor):
    # The other program wrote to the attempt meanwhile: rows are numbered after its own.
    def build(**kw):
        ev = make_eventor(config={"task_construct": "thread"}, **kw)
        go = ev.add_event("go")
        ev.add_assoc(go, ev.add_step("s", func=lambda: None))
        return ev

    first = build(run_id="again")
    first.trigger_event("go", "A1")
    assert first.run()
    other = build(run_id="again", run_mode=evr.RUN_CONTINUE)
    other.trigger_event("go", "B")
    assert other.run()
    other.close()
    first.trigger_event("go", "A2")
    assert first.run()
    rows = first.store.tasks("again")
    assert [t["sequence"] for t in rows] == ["A1", "B", "A2"]
    assert len({t["id"] for t in rows}) == 3
    assert first.store.attempts("again")[-1]["status"] == "success"


def test_an_invoke_step_after_a_thread_step_runs_in_the_thread_that_runs_the_flow(make_eventor):
    # A worker that brings a thread step's outcome may run the next round itself; an invoke
    # step must still run in the engine's own thread (signals, thread-local state, Ctrl-C).
    ev = make_eventor(config={"task_construct": "thread"})
    e1, e2 = ev.add_event("e1"), ev.add_event("e2")
    ev.add_assoc(e1, ev.add_step("t", func=lambda: None, triggers={evr.STEP_SUCCESS: e2}))
    ev.add_assoc(e2, ev.add_step("i", func=lambda: threading.current_thread().name,
                                 config={"task_construct": "invoke"}))
    ev.trigger_event(e1)
    assert ev.run()
    by_step = {t["step"]: t for t in ev.store.tasks(ev.run_id)}
    assert by_step["i"]["result"] == json.dumps(threading.current_thread().name)


@pytest.mark.parametrize("config", [{}, {"retries": 1, "retry_delay": 0.05}])
def test_a_wake_from_a_worker_s_round_is_not_lost_while_the_engine_is_not_waiting_yet(
        tmp_path, monkeypatch, config):
    # The engine's thread is slow to start waiting (pre-empted): a worker's round that ends
    # the run, or schedules a retry, meanwhile must still wake it, or run() never returns.
    from eventor import engine

    real_wait = engine._Inbox.wait

    def late_wait(self, deadline):
        time.sleep(0.1)
        real_wait(self, deadline)

    monkeypatch.setattr(engine._Inbox, "wait", late_wait)
    tries = []

    def flaky():
        tries.append(1)
        if config and len(tries) == 1:
            raise ValueError("first try")

    ev = evr.Eventor(name="w", store=str(tmp_path / "w.run.db"),
                     config={"task_construct": "thread", "LOGGING": {"console": False}, **config})
    e = ev.add_event("e")
    ev.add_assoc(e, ev.add_step("s", func=flaky))
    ev.trigger_event(e)
    out: list = []
    thread = threading.Thread(target=lambda: out.append(ev.run()), daemon=True)
    thread.start()
    thread.join(15)
    assert out == [True], "run() did not return: a wake was lost"
    ev.close()
