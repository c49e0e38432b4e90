"""Schedules: a flow run once per slot, each slot claimed in the store (issue 18)."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import signal
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

import eventor as evr
from eventor import Event, Flow, step
from eventor.config import default_program
from eventor.schedule import Schedule, parse_interval
from eventor.store import open_store
from tests.conftest import ROOT
from tests.schedule_flows import Daily

QUIET = {"LOGGING": {"console": False}}
UTC = dt.UTC


def at(*args: int) -> float:
    return dt.datetime(*args, tzinfo=UTC).timestamp()


def days(results) -> list[str]:
    return [r["load"] for r in results]


@pytest.fixture(autouse=True)
def _fresh_days():
    Daily.seen.clear()


def schedule(store: str, clock: evr.MockClock, **kw):
    return Daily.schedule(param="day", tz="UTC", clock=clock, store=store, config=QUIET,
                          executor="thread", **kw)


# -- what a schedule is ----------------------------------------------------------------------

@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("1h30m", 5400),
                                               ("every 2d", 172800), ("3600", 3600), ("1w", 604800)])
def test_intervals_are_read_in_seconds(text, seconds):
    assert parse_interval(text) == seconds
    assert Schedule(text).every == seconds


@pytest.mark.parametrize("bad", ["61 * * * *", "0 2 * *x *", "soon", "0s", -5, "1h banana"])
def test_a_wrong_schedule_is_refused_when_it_is_made(bad):
    with pytest.raises(evr.EventorConfigError, match="schedule"):
        Schedule(bad)


def test_an_unknown_time_zone_is_refused():
    with pytest.raises(evr.EventorConfigError, match="Mars/Olympus"):
        Schedule("0 2 * * *", tz="Mars/Olympus")


def test_cron_slots_in_a_time_zone():
    paris = Schedule("0 2 * * *", tz="Europe/Paris")
    t = at(2026, 11, 28, 17)
    assert paris.next_after(t) == at(2026, 11, 29, 1)  # 02:00 in Paris is 01:00 UTC in winter
    assert paris.latest_by(t) == at(2026, 11, 28, 1)
    assert paris.latest_by(paris.next_after(t)) == paris.next_after(t)
    assert len(paris.between(t - 3 * 86400, t)) == 3
    assert paris.value(at(2026, 11, 29, 1), dt.date) == dt.date(2026, 11, 29)
    assert paris.value(at(2026, 11, 29, 1), str) == "2026-11-29T02:00:00+01:00"
    assert Schedule("@daily", tz="UTC", format="%Y-%m-%d").value(at(2026, 11, 29), str) == "2026-11-29"


def test_interval_slots_are_counted_from_the_epoch_or_start():
    hourly = Schedule(dt.timedelta(hours=1))
    assert hourly.next_after(at(2026, 11, 28, 17, 20)) == at(2026, 11, 28, 18)
    assert hourly.next_after(at(2026, 11, 28, 18)) == at(2026, 11, 28, 19)
    shifted = Schedule("1h", start=dt.datetime(2026, 1, 1, 0, 30, tzinfo=UTC))
    assert shifted.next_after(at(2026, 11, 28, 17, 20)) == at(2026, 11, 28, 17, 30)


def test_a_wrong_schedule_or_slot_parameter_is_found_when_the_class_is_defined():
    with pytest.raises(evr.FlowDefinitionError, match="cron expression"):
        class Bad(Flow, schedule="0 25 * * *"):
            go = Event(entry=True)

            @step(on=go)
            def s(self):
                pass
    with pytest.raises(evr.FlowDefinitionError, match="parameter 'day'"):
        class NoDay(Flow, schedule=Schedule("@daily", param="day")):
            go = Event(entry=True)

            @step(on=go)
            def s(self):
                pass


def test_schedule_without_a_schedule_or_with_a_wrong_param_is_refused(tmp_path):
    class Plain(Flow):
        go = Event(entry=True)

        @step(on=go)
        def s(self):
            pass

    with pytest.raises(evr.EventorConfigError, match="has no schedule"):
        Plain.schedule(store=str(tmp_path / "p.run.db"))
    with pytest.raises(evr.ParameterError, match="no parameter 'when'"):
        Daily.schedule(param="when", store=str(tmp_path / "p.run.db"))


# -- running on a clock ------------------------------------------------------------------------

def test_a_new_schedule_waits_for_its_next_slot_then_runs_one_per_slot(tmp_path):
    store = str(tmp_path / "d.run.db")
    clock = evr.MockClock(at(2026, 11, 28, 14))  # after today's 02:00: that slot is not run
    results = schedule(store, clock, runs=3)
    assert days(results) == ["2026-11-29", "2026-11-30", "2026-12-01"]
    assert Daily.seen == [dt.date(2026, 11, 29), dt.date(2026, 11, 30), dt.date(2026, 12, 1)]
    assert clock.now() >= at(2026, 12, 1, 2)
    with closing(open_store(store)) as s:
        slots = s.slots(f"{default_program()}:Daily")
        assert [r["slot_at"] for r in slots] == [at(2026, 11, 29, 2), at(2026, 11, 30, 2),
                                                at(2026, 12, 1, 2)]
        assert [r["run_id"] for r in slots] == [r.run_id for r in results]


def test_a_restarted_scheduler_runs_the_latest_missed_slot_only(tmp_path):
    store = str(tmp_path / "d.run.db")
    schedule(store, evr.MockClock(at(2026, 11, 28, 14)), runs=1)  # ran 2026-11-29
    # down for four days; started again at noon on 2026-12-03
    results = schedule(store, evr.MockClock(at(2026, 12, 3, 12)), runs=2)
    assert days(results) == ["2026-12-03", "2026-12-04"]


def test_with_catchup_a_restarted_scheduler_runs_every_missed_slot(tmp_path):
    store = str(tmp_path / "d.run.db")
    schedule(store, evr.MockClock(at(2026, 11, 28, 14)), runs=1)
    results = schedule(store, evr.MockClock(at(2026, 12, 3, 12)), catchup=True, runs=5)
    assert days(results) == ["2026-11-30", "2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04"]


def test_catchup_with_a_start_runs_the_slots_since_it(tmp_path):
    store = str(tmp_path / "d.run.db")
    results = schedule(store, evr.MockClock(at(2026, 11, 28, 14)), catchup=True,
                       start=dt.datetime(2026, 11, 26, tzinfo=UTC),
                       until=dt.datetime(2026, 11, 28, 23, tzinfo=UTC))
    assert days(results) == ["2026-11-26", "2026-11-27", "2026-11-28"]


def test_a_slot_claimed_by_another_scheduler_is_not_run_again(tmp_path):
    store = str(tmp_path / "d.run.db")
    schedule(store, evr.MockClock(at(2026, 11, 28, 14)), runs=1)  # claims 11-29
    with closing(open_store(store)) as s:
        [key] = {r["schedule"] for r in _all_slots(s)}
        # another scheduler, alive on another host, claimed 11-30 a moment ago
        assert s.claim_slot(key, at(2026, 11, 30, 2), run_id="elsewhere", now=time.time(),
                            host="elsewhere", pid=1)
        assert not s.claim_slot(key, at(2026, 11, 30, 2), run_id="again", now=0, host="h", pid=1)
    results = schedule(store, evr.MockClock(at(2026, 11, 29, 14)), runs=1)
    assert days(results) == ["2026-12-01"]  # 11-30 was another scheduler's


def _all_slots(store):
    from sqlalchemy import select

    from eventor.store.schema import slots

    return store._rows(select(slots))


def test_a_run_left_interrupted_by_a_killed_scheduler_is_recovered_when_it_starts(tmp_path):
    store = str(tmp_path / "d.run.db")
    schedule(store, evr.MockClock(at(2026, 11, 28, 14)), runs=1)
    with closing(open_store(store)) as s:
        [slot] = _all_slots(s)
        # the next slot's run: claimed, begun by an engine that is gone (a finished pid)
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip()
        assert s.claim_slot(slot["schedule"], at(2026, 11, 30, 2), run_id="killed", now=0,
                            host=slot["host"], pid=int(gone))
        s.begin_attempt("killed", next(iter(s.runs()))["program"], "restart",
                        now=at(2026, 11, 30, 2), host=slot["host"], pid=int(gone),
                        info={"flow": "Daily", "params": {"day": "2026-11-30"}})
    results = schedule(store, evr.MockClock(at(2026, 11, 30, 3)),
                       until=dt.datetime(2026, 11, 30, 4, tzinfo=UTC))
    assert [r.run_id for r in results] == ["killed"]
    assert days(results) == ["2026-11-30"]
    with closing(open_store(store)) as s:
        assert [a["status"] for a in s.attempts("killed")] == ["crashed", "success"]


# -- the real clock: several schedulers, one run per slot ----------------------------------------

@pytest.mark.slow
def test_schedulers_in_three_programs_run_each_one_second_slot_once(tmp_path):
    store, log = str(tmp_path / "t.run.db"), tmp_path / "ticks"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.schedule_flows", store, str(log), "3.5"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    ticks = log.read_text().splitlines()
    assert len(ticks) == len(set(ticks)) >= 3  # every slot ran, and only once
    assert sum(int(out.split()[0]) for out, _ in outs) == len(ticks)
    seconds = sorted(dt.datetime.fromisoformat(t) for t in ticks)
    assert all((b - a).total_seconds() == 1 for a, b in itertools.pairwise(seconds))


@pytest.mark.slow
def test_eventor_schedule_runs_a_flow_every_second(tmp_path):
    log = tmp_path / "ticks"
    started = time.monotonic()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "eventor"), "schedule",
         str(ROOT / "tests" / "schedule_flows.py") + ":Tick", "--every", "1s", "--slot-param", "at",
         "--tz", "UTC", "--runs", "2", "-p", f"log={log}", "--store", str(tmp_path / "t.run.db"),
         "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(log.read_text().splitlines()) == 2
    assert time.monotonic() - started < 10
    assert "2 runs" in done.stdout


@pytest.mark.slow
def test_ctrl_c_between_slots_of_eventor_schedule_exits_130(tmp_path, ctrl_c):
    log = tmp_path / "ticks"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "eventor"), "schedule",
         str(ROOT / "tests" / "schedule_flows.py") + ":Tick", "--every", "1h", "--slot-param", "at",
         "--tz", "UTC", "-p", f"log={log}", "--store", str(tmp_path / "t.run.db"), "-q"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "t.run.db").exists():  # the scheduler is up, waiting for a slot
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "stopped by Ctrl-C between slots, after 0 runs" in err and "Traceback" not in err


def test_a_schedule_given_to_a_flow_object_is_refused():
    with pytest.raises(evr.EventorConfigError, match="class option"):
        Daily(schedule="0 3 * * *")



class Nightly(Flow, schedule=Schedule("0 2 * * *", param="day", tz="UTC")):
    day: dt.date = dt.date(2000, 1, 1)
    source: str = "s3://a"

    go = Event(entry=True)

    @step(on=go, executor="thread")
    def load(self):
        return f"{self.day} {self.source}"


def test_a_new_time_keeps_the_class_schedule_s_parameter_and_zone(tmp_path):
    results = Nightly.schedule("0 3 * * *", clock=evr.MockClock(at(2026, 11, 28, 14)), runs=2,
                               store=str(tmp_path / "n.run.db"), config=QUIET)
    assert days(results) == ["2026-11-29 s3://a", "2026-11-30 s3://a"]
    assert [r.attempt for r in results] == [0, 0]


def test_schedules_of_one_flow_with_other_parameters_each_run_every_slot(tmp_path):
    store = str(tmp_path / "n.run.db")
    for source in ("s3://a", "s3://b"):
        results = Nightly.schedule(clock=evr.MockClock(at(2026, 11, 28, 14)), runs=2, store=store,
                                   config=QUIET, source=source)
        assert days(results) == [f"2026-11-29 {source}", f"2026-11-30 {source}"]
    with closing(open_store(store)) as s:
        assert sorted({r["schedule"] for r in _all_slots(s)}) == [
            f"{default_program()}:Nightly(source=s3://a)", f"{default_program()}:Nightly(source=s3://b)"]


def test_a_fixed_time_runs_once_on_the_night_the_clocks_go_back():
    paris = Schedule("30 2 * * *", tz="Europe/Paris")
    slots = paris.between(at(2026, 10, 23), at(2026, 10, 28))
    local = [dt.datetime.fromtimestamp(x, paris.tz).strftime("%m-%d %H:%M") for x in slots]
    assert local == ["10-23 02:30", "10-24 02:30", "10-25 02:30", "10-26 02:30", "10-27 02:30"]
    assert all(paris.latest_by(x) == x and paris.latest_by(x + 60) == x for x in slots)
    hourly = Schedule("@hourly", tz="Europe/Paris")  # a wildcard hour runs in both 02:00s
    assert len(hourly.between(at(2026, 10, 24, 22), at(2026, 10, 25, 4))) == 6


@pytest.mark.parametrize(("bad", "why"), [("0 0 2 * * *", "seconds"), ("0 0 30 2 *", "never comes due"),
                                         ("0 2 * *", "not a cron expression")])
def test_cron_mistakes_name_the_fix(bad, why):
    with pytest.raises(evr.EventorConfigError, match=why):
        Schedule(bad)


def test_no_interval_slot_comes_before_start():
    hourly = Schedule("1h", start=dt.datetime(2026, 11, 29, 9, tzinfo=UTC))
    assert hourly.next_after(at(2026, 11, 28, 15)) == at(2026, 11, 29, 9)
    assert hourly.latest_by(at(2026, 11, 28, 15)) == float("-inf")


@pytest.mark.parametrize("tz", [":Europe/Paris", "Europe/Paris"])
def test_the_local_zone_keeps_its_daylight_saving_rules(monkeypatch, tz):
    monkeypatch.setenv("TZ", tz)
    local = Schedule("0 0 * * *")
    assert local.next_after(at(2026, 10, 20, 12)) == at(2026, 10, 20, 22)  # CEST, UTC+2
    assert local.next_after(at(2026, 11, 20, 12)) == at(2026, 11, 20, 23)  # CET, UTC+1


def test_resume_interrupted_with_a_run_id_of_its_own_is_a_usage_error(tmp_path):
    with pytest.raises(evr.EventorUsageError, match="run_id"):
        Nightly(run_id="mine", store=str(tmp_path / "x.run.db")).run(resume_interrupted=True)
