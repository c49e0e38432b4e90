"""Recovery (a new attempt that skips what succeeded), continue, and durable delays."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import eventor as evr
from eventor import Event, Flow, step
from eventor.recovery import fingerprint
from eventor.store.base import LeaseRequest
from eventor.testing import capture_events
from tests.conftest import statuses

QUIET = {"LOGGING": {"console": False}, "task_construct": "thread"}
CALLS: list[str] = []


def record(name, fail=False):
    CALLS.append(name)
    if fail:
        raise RuntimeError(f"{name} fails")
    return name


@pytest.fixture(autouse=True)
def fresh_calls():
    CALLS.clear()


def chain(store, *, mode=evr.RUN_RESTART, run_id="", fail_b=False, recovery=None,
          recovery_run=None, config=None, clock=None):
    """a -> b -> c, each on the success of the one before; b may fail."""
    ev = evr.Eventor(name="chain", store=store, run_mode=mode, run_id=run_id,
                     recovery_run=recovery_run, config={**QUIET, **(config or {})}, clock=clock)
    go, a_done, b_done = ev.add_event("go"), ev.add_event("a_done"), ev.add_event("b_done")
    ev.add_step("a", record, args=("a",), triggers={evr.STEP_SUCCESS: a_done})
    ev.add_step("b", record, args=("b", fail_b), triggers={evr.STEP_SUCCESS: b_done},
                recovery=recovery)
    ev.add_step("c", record, args=("c",))
    ev.add_assoc(go, "a")
    ev.add_assoc(a_done, "b")
    ev.add_assoc(b_done, "c")
    ev.trigger_event(go, 1)
    return ev


def tasks(ev, attempt):
    return {(t["step"], t["executor"] == "skip"): t["status"]
            for t in ev.store.tasks(ev.run_id, attempt)}


def test_recovery_skips_successes_reruns_the_failure_and_finishes(backend):
    store, config = backend.store, backend.config
    with chain(store, fail_b=True, config=config) as ev:
        assert not ev.run()
        run_id = ev.run_id
    assert CALLS == ["a", "b"]
    CALLS.clear()
    with chain(store, mode=evr.RUN_RECOVER, run_id=run_id, config=config) as ev:
        assert ev.run()
        assert tasks(ev, 1) == {("a", True): "success", ("b", False): "success",
                                ("c", False): "success"}
        assert ev.store.tasks(run_id, 1)[0]["result"] == '"a"'  # the skipped result stays
        first, skipped = ev.store.tasks(run_id, 0)[0], ev.store.tasks(run_id, 1)[0]
        assert (skipped["host"], skipped["pid"]) == (first["host"], first["pid"])  # where it ran
        assert [(a["attempt"], a["mode"], a["status"]) for a in ev.store.attempts(run_id)] == [
            (0, "restart", "failure"), (1, "recover", "success")]
    assert CALLS == ["b", "c"]


def test_a_recovery_policy_can_rerun_successes_and_complete_means_both(tmp_path):
    store = str(tmp_path / "r.db")
    with chain(store) as ev:
        assert ev.run()
        run_id = ev.run_id
    CALLS.clear()
    with chain(store, mode=evr.RUN_RECOVER, run_id=run_id,
               recovery={evr.STEP_COMPLETE: evr.STEP_RERUN}) as ev:
        plan = ev.recovery_plan()
        assert [str(t) for t in plan] == [
            "a[1]: success -> skip (default for success)",
            "b[1]: success -> rerun (recovery={complete: rerun})",
            "c[1]: success -> skip (default for success)",
        ]
        assert ev.run()
    assert CALLS == ["b"]


def test_recovery_run_recovers_from_a_chosen_attempt(tmp_path):
    store = str(tmp_path / "r.db")
    with chain(store, fail_b=True) as ev:
        ev.run()
        run_id = ev.run_id
    with chain(store, mode=evr.RUN_RECOVER, run_id=run_id, fail_b=True) as ev:
        assert not ev.run()  # attempt 1: a skipped, b fails again
    CALLS.clear()
    with chain(store, mode=evr.RUN_RECOVER, run_id=run_id, recovery_run=0) as ev:
        assert ev.recovery_plan().attempt == 0
        assert ev.run()
        assert ev.summary.attempt == 2
    assert CALLS == ["b", "c"]
    with pytest.raises(evr.RunNotFoundError, match=r"has no attempt 7 \(attempts: 0, 1, 2\)"):
        chain(store, mode=evr.RUN_RECOVER, run_id=run_id, recovery_run=7).run()


def test_without_a_run_id_recovery_picks_the_latest_run_and_says_so(tmp_path, caplog):
    store = str(tmp_path / "r.db")
    for _ in range(2):
        with chain(store, fail_b=True) as ev:
            ev.run()
            latest = ev.run_id
    with caplog.at_level(logging.INFO, logger="eventor"), \
            chain(store, mode=evr.RUN_RECOVER) as ev:
        assert ev.run_id == latest
        assert ev.run()
    assert f"Picked run {latest}, the latest of 2 runs of" in caplog.text


def test_a_shared_store_refuses_to_guess_which_run_to_recover(tmp_path):
    store = str(tmp_path / "r.db")
    for _ in range(2):
        with chain(store, fail_b=True) as ev:
            ev.run()
    with pytest.raises(evr.EventorUsageError, match="holds 2 runs of .* say which with run_id="):
        chain(store, mode=evr.RUN_RECOVER, config={"shared_db": True})


def test_continuing_an_unknown_run_names_the_runs_there_are(tmp_path):
    # (Recover starts a run it was given but the store never recorded: see below.)
    store = str(tmp_path / "r.db")
    with chain(store) as ev:
        ev.run()
        run_id = ev.run_id
    with pytest.raises(evr.RunNotFoundError, match=f"no run 'nope' in .*Runs in it: {run_id}"):
        chain(store, mode=evr.RUN_CONTINUE, run_id="nope")


def test_the_plan_runs_nothing(tmp_path):
    store = str(tmp_path / "r.db")
    with chain(store, fail_b=True) as ev:
        ev.run()
        run_id = ev.run_id
    CALLS.clear()
    with chain(store, mode=evr.RUN_RECOVER, run_id=run_id) as ev:
        plan = ev.recovery_plan()
        assert plan.skip == (("a", "1"),) and plan.rerun == (("b", "1"),)
        assert len(ev.store.attempts(run_id)) == 1
    assert CALLS == []


def test_changed_step_code_is_named_in_a_warning(tmp_path, caplog):
    store = str(tmp_path / "r.db")
    with chain(store, fail_b=True) as ev:
        ev.run()
        run_id = ev.run_id
    ev = chain(store, mode=evr.RUN_RECOVER, run_id=run_id)
    ev.add_step("d", lambda: "new")
    with caplog.at_level(logging.WARNING, logger="eventor"), ev:
        ev.run()
    assert "Steps changed since run" in caplog.text
    assert "b, d" in caplog.text  # b's arguments changed (fail_b), d is new


# -- delays and continue -----------------------------------------------------------------


def delayed(store, *, mode=evr.RUN_RESTART, run_id="", clock=None, fail_second=False,
            config=None):
    """first -> (6 hours) -> second."""
    ev = evr.Eventor(name="delayed", store=store, run_mode=mode, run_id=run_id,
                     config={**QUIET, **(config or {})}, clock=clock)
    go, done = ev.add_event("go"), ev.add_event("done")
    ev.add_step("first", record, args=("first",), triggers={evr.STEP_SUCCESS: done})
    ev.add_step("second", record, args=("second", fail_second))
    ev.add_assoc(go, "first")
    ev.add_assoc(done, "second", delay=6 * 3600)
    ev.trigger_event(go, 1)
    return ev


def test_a_six_hour_delay_fires_at_its_due_time_on_an_injected_clock(tmp_path):
    clock = evr.MockClock()
    start = clock.now()
    with delayed(str(tmp_path / "d.db"), clock=clock) as ev:
        assert ev.run()
        (delay,) = ev.store.delays(ev.run_id)
    assert delay["due_at"] == delay["activated_at"] + 6 * 3600
    assert delay["fired_at"] == delay["due_at"]
    assert clock.now() - start == pytest.approx(6 * 3600, abs=1)
    assert CALLS == ["first", "second"]


def test_a_bounded_run_reports_its_pending_delay_and_continue_keeps_its_due_time(backend):
    store, clock, config = backend.store, evr.MockClock(autojump=False), backend.config
    with delayed(store, clock=clock, config=config) as ev:
        assert ev.run(max_loops=1)
        summary, run_id = ev.summary, ev.run_id
    assert summary.status == "paused"
    assert summary.delays == (("second", "1", summary.next_due),)
    due = summary.next_due

    clock.advance(3600)  # an hour later: not due yet
    with delayed(store, mode=evr.RUN_CONTINUE, run_id=run_id, clock=clock, config=config) as ev:
        ev.run(max_loops=1)
        assert ev.summary.status == "paused" and ev.summary.next_due == due
    clock.advance(5 * 3600)  # now it is
    with delayed(store, mode=evr.RUN_CONTINUE, run_id=run_id, clock=clock, config=config) as ev:
        assert ev.run()
        assert ev.summary.status == "success"
        triggers = [(t["event"], t["source"]) for t in ev.store.triggers(run_id)]
        assert statuses(ev) == {("first", "1"): "success", ("second", "1"): "success"}
    assert CALLS == ["first", "second"]  # each once
    assert triggers == [("go", "user"), ("done", "first:success")]  # none fired twice


def test_a_delay_in_recovery_keeps_its_first_activation(tmp_path):
    store, clock = str(tmp_path / "d.db"), evr.MockClock()
    with delayed(store, clock=clock, fail_second=True) as ev:
        assert not ev.run()
        run_id = ev.run_id
        (first,) = ev.store.delays(run_id, 0)
    clock.advance(60)
    with delayed(store, mode=evr.RUN_RECOVER, run_id=run_id, clock=clock) as ev:
        assert ev.run()
        (again,) = ev.store.delays(run_id, 1)
    assert again["activated_at"] == first["activated_at"]
    assert again["due_at"] == first["due_at"]  # long past: fired at once, no new 6 hours
    assert again["fired_at"] == first["fired_at"] + 60


def test_continue_starts_tasks_a_bounded_run_left_ready(backend):
    store = backend.store
    ev = evr.Eventor(name="wide", store=store, config={**QUIET, "max_concurrent": 1,
                                                       **backend.config})
    go = ev.add_event("go")
    for name in ("x", "y", "z"):
        ev.add_step(name, record, args=(name,))
        ev.add_assoc(go, name)
    ev.trigger_event(go, 1)
    with ev:
        ev.run(max_loops=1)
        assert ev.summary.pending == 2
        run_id = ev.run_id
    ev = evr.Eventor(name="wide", store=store, run_mode=evr.RUN_CONTINUE, run_id=run_id,
                     config={**QUIET, **backend.config})
    go = ev.add_event("go")
    for name in ("x", "y", "z"):
        ev.add_step(name, record, args=(name,))
        ev.add_assoc(go, name)
    with ev:
        assert ev.run()
        assert statuses(ev) == {("x", "1"): "success", ("y", "1"): "success",
                                ("z", "1"): "success"}
    assert sorted(CALLS) == ["x", "y", "z"]


# -- the DSL entry points ----------------------------------------------------------------


class Daily(Flow):
    day: str = "mon"
    limit: int = 2
    start = Event()
    got = Event()

    @step(on=start, success=got)
    def fetch(self, ctx):
        CALLS.append(f"fetch {ctx.sequence}")
        return [self.day] * self.limit

    @step(on=got)
    def load(self, ctx):
        CALLS.append(f"load {ctx.sequence}")
        if self.limit > 2:
            raise ValueError("too many")
        return len(ctx.results["fetch"])


def test_flow_recover_reuses_recorded_parameters_unless_overridden(tmp_path):
    opts = {"store": str(tmp_path / "f.db"), "config": QUIET}
    flow = Daily(day="tue", limit=3, **opts)
    for seq in ("a", "b"):
        flow.trigger(Daily.start, seq)
    first = flow.run()
    flow.close()
    assert not first
    CALLS.clear()
    plan = Daily.recovery_plan(first.run_id, **opts)
    assert sorted(plan.rerun) == [("load", "a"), ("load", "b")]  # in the order they ran
    second = Daily.recover(first.run_id, limit=2, **opts)
    assert second
    assert sorted(CALLS) == ["load a", "load b"]
    assert [t.skipped for t in second.tasks if t.step == "fetch"] == [True, True]
    assert second["load", "a"] == 3  # fetch's stored result (3 items of 'tue') was reused


def test_the_recovery_plan_of_a_run_the_store_never_recorded_is_run_not_found(tmp_path, caplog):
    # recover() would start it afresh (its engine may have died before its first write);
    # its plan says there is no such run, without the warning that it starts.
    opts = {"store": str(tmp_path / "f.db"), "config": QUIET}
    with pytest.raises(evr.RunNotFoundError):
        Daily.recovery_plan("20261129-000000-abcdef", **opts)
    assert "never recorded" not in caplog.text


def test_flow_resume_continues_a_paused_run(tmp_path):
    class Later(Flow):
        start = Event()
        done = Event()

        @step(on=start, success=done)
        def now(self):
            CALLS.append("now")

        @step(on=done, delay=3600)
        def later(self):
            CALLS.append("later")
            return "late"

    clock = evr.MockClock(autojump=False)
    opts = {"store": str(tmp_path / "f.db"), "config": QUIET}
    paused = Later(clock=clock, **opts).run(max_loops=1)
    assert paused.status == "paused" and paused.next_due is not None
    clock.advance(3600)
    result = Later.resume(paused.run_id, clock=clock, **opts)
    assert result and result["later"] == "late"
    assert CALLS == ["now", "later"]
    with pytest.raises(evr.RunNotFoundError):
        Later.resume("missing", **opts)


def test_recover_of_a_run_never_recorded_starts_it_with_a_warning(make_eventor):
    # "run; if it crashed, recover with the same id" works however far the first engine got.
    with capture_events() as events:
        ev = make_eventor(run_mode=evr.RUN_RECOVER, run_id="never-written")
        go = ev.add_event("go")
        ev.add_assoc(go, ev.add_step("s", func=lambda: 1))
        ev.trigger_event(go)
        assert ev.run()
    warned = [e for e in events if e["event"] == "run_not_recorded"]
    assert warned and warned[0]["run_id"] == "never-written" and warned[0]["level"] == "warning"
    assert [(a["attempt"], a["status"]) for a in ev.store.attempts("never-written")] == [(0, "success")]
    assert [t["status"] for t in ev.store.tasks("never-written")] == ["success"]


def test_flow_recover_of_a_run_never_recorded_runs_it_from_its_entry_events(tmp_path):
    class Once(Flow):
        start = Event()

        @step(on=start)
        def only(self):
            return "ran"

    opts = {"store": str(tmp_path / "once.run.db"), "config": {"LOGGING": {"console": False}}}
    result = Once.recover("crashed-before-writing", **opts)
    assert result and result.run_id == "crashed-before-writing" and result["only"] == "ran"
    with pytest.raises(evr.RunNotFoundError, match="no run of program"):
        Once.recover(**{**opts, "store": str(tmp_path / "empty.run.db")})


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the code hash follows the bytecode")
def test_fingerprints_of_unchanged_steps_are_those_earlier_versions_recorded():
    # Recovering a run recorded by an earlier Eventor must not report unchanged steps as
    # changed: these are the fingerprints Eventor 6.0.0.dev0 recorded for the same code.
    class F(Flow):
        start = Event()
        found = Event()

        @step(on=start, success=found, retries=2, executor="thread")
        def scan(self):
            return 1

        @step(on=found, delay=5)
        def work(self, ctx):
            return 2

    assert fingerprint(F.graph) == {"scan": "2e28f769b82767a1", "work": "af9ffae7b25af5df"}


# -- attempts owned by engines on other hosts: the heartbeat -------------------------------


def test_an_attempt_silent_for_longer_than_the_grace_is_dead_on_any_host():
    from eventor.recovery import owner_alive

    now = 1_000_000.0
    elsewhere = {"ended_at": None, "host": "engine-host-a", "pid": 4242, "started_at": now - 500}
    assert owner_alive({**elsewhere, "heartbeat_at": now - 5}, grace=60, now=now)
    assert not owner_alive({**elsewhere, "heartbeat_at": now - 61}, grace=60, now=now)
    assert not owner_alive({**elsewhere, "heartbeat_at": None}, grace=60, now=now)  # old: its start
    here = {"ended_at": None, "host": socket.gethostname(), "pid": os.getpid(), "started_at": now}
    assert owner_alive({**here, "heartbeat_at": now}, grace=60, now=now)
    assert not owner_alive({**here, "heartbeat_at": now - 120}, grace=60, now=now)  # pid reused?
    assert not owner_alive({**elsewhere, "ended_at": now, "heartbeat_at": now}, now=now)


def test_an_engine_that_exited_but_was_not_reaped_yet_is_not_alive():
    from eventor.recovery import owner_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    attempt = {"ended_at": None, "host": socket.gethostname(), "pid": child.pid,
               "heartbeat_at": time.time()}
    try:
        assert not owner_alive(attempt)  # a zombie: killed, and its parent not yet told
    finally:
        child.wait()
    assert not owner_alive(attempt)


def test_an_engine_reaped_between_the_signal_and_the_read_is_not_alive(monkeypatch):
    from eventor.recovery import owner_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its /proc entry is gone
    real_kill, calls = os.kill, []

    def kill(pid: int, sig: int) -> None:  # it answered the first signal, then was reaped
        calls.append(pid)
        if len(calls) > 1:
            real_kill(pid, sig)

    monkeypatch.setattr(os, "kill", kill)
    attempt = {"ended_at": None, "host": socket.gethostname(), "pid": child.pid,
               "heartbeat_at": time.time()}
    assert not owner_alive(attempt)


def test_the_engine_records_a_heartbeat_while_it_runs(make_eventor):
    ev = make_eventor(config={"heartbeat_interval": 0.05, "heartbeat_grace": 1})
    go = ev.add_event("go")
    ev.add_assoc(go, ev.add_step("slow", func=lambda: time.sleep(0.3)))
    ev.trigger_event(go)
    started = time.time()
    assert ev.run()
    (attempt,) = ev.store.attempts(ev.run_id)
    assert attempt["heartbeat_at"] - started > 0.15  # beats came during the run, not only at its start


@pytest.mark.parametrize(("silent_for", "recovered"), [(300.0, True), (1.0, False)])
def test_an_attempt_of_an_engine_on_another_host_is_recovered_once_its_heartbeat_stops(
        backend, silent_for, recovered):
    # An engine on host A recorded a run, then died (or not); this engine, on host B, recovers.
    store = backend.open()
    store.begin_attempt("shared-run", "chain", "restart", now=time.time() - 600, host="host-a",
                        pid=4242)
    store.acquire([LeaseRequest(1, "shared-run", 0, "a", "1", (("db", 1, 1),))], now=time.time())
    store.heartbeat("shared-run", 0, at=time.time() - silent_for)
    store.close()
    config = {**backend.config, "heartbeat_grace": 60}
    if not recovered:
        with pytest.raises(evr.EventorUsageError, match="is still running .pid 4242 on host-a"):
            chain(backend.store, mode=evr.RUN_RECOVER, run_id="shared-run", config=config).run()
        return
    with chain(backend.store, mode=evr.RUN_RECOVER, run_id="shared-run", config=config) as ev:
        assert ev.run()
        attempts = [(a["attempt"], a["status"]) for a in ev.store.attempts("shared-run")]
        assert attempts == [(0, "crashed"), (1, "success")]
        assert ev.store.leases("shared-run", held=True) == []  # host A's lease was reclaimed


def test_a_continued_run_counts_the_tries_of_the_tasks_it_picked_up(tmp_path):
    class Two(evr.Flow):
        start = evr.Event(entry=True)
        done = evr.Event()

        @evr.step(on=start, success=done, executor="thread")
        def a(self):
            return 1

        @evr.step(on=done, executor="thread")
        def b(self):
            return 2

    store = str(tmp_path / "two.run.db")
    with Two(store=store, config={"LOGGING": {"console": False}}) as first:
        paused = first.run(max_loops=1)
        assert paused.status == "paused"
        assert paused.task("a").tries == 1
    result = Two.resume(paused.run_id, store=store, config={"LOGGING": {"console": False}})
    assert result and result.task("a").tries == 1 and result.task("b").tries == 1


def print_then_fail():
    CALLS.append("try")
    print(f"try {len(CALLS)} printed this")
    raise RuntimeError("it fails")


def test_continue_keeps_what_a_task_waiting_for_its_retry_printed(tmp_path):
    # A task waiting for its retry keeps its last try's error and output in its row. A
    # continued run that stops at once (another step failed) rewrites that row: it must
    # not drop them.
    store = str(tmp_path / "r.db")

    def build(**kwargs):
        ev = evr.Eventor(name="retry", store=store, config=QUIET, **kwargs)
        ev.add_event("go")
        ev.add_step("s", print_then_fail, config={"retries": 1, "retry_delay": 3600})
        ev.add_step("bad", record, args=("bad", True))
        ev.add_assoc("go", "s", "bad")
        return ev

    with build() as ev:
        ev.trigger_event("go", 1)
        assert not ev.run()
        run_id = ev.run_id
    with build(run_mode=evr.RUN_CONTINUE, run_id=run_id) as ev:
        assert not ev.run()
        rows = {t["step"]: t for t in ev.store.tasks(run_id)}
    assert sorted(CALLS) == ["bad", "try"]
    assert (rows["s"]["status"], rows["s"]["error_message"]) == ("ready", "it fails")
    assert rows["s"]["output"] == "try 1 printed this\n"
