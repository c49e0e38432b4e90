"""Crash safety for real: SIGKILL the engine at several moments, recover, and check the steps' own log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import eventor as evr
from tests.crash_harness import ROOT, group_gone, kill_and_recover, query, wait_for_attempt

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kill_after", [0.0, 0.04, 0.1, 0.18, 0.3, 2.0])
def test_a_killed_run_recovers_without_losing_or_repeating_work(tmp_path, kill_after):
    report = kill_and_recover(tmp_path, kill_after)
    assert report.ok, report.problems


@pytest.mark.parametrize("kill_after", [0.04, 0.1, 0.15])
def test_a_killed_thread_only_run_recovers_too(tmp_path, kill_after):
    # every step on threads: rounds also run on the workers that finish tasks
    report = kill_and_recover(tmp_path, kill_after, kind="threads")
    assert report.ok, report.problems


SLOW_STEP = """
import os, sys, time
from eventor import Event, Flow, ResourcePool, step

class Slow(Flow):
    pidfile: str = ""
    start = Event()

    @step(on=start, executor="process", acquires=[(ResourcePool("slot", 1), 1)])
    def hang(self, ctx):
        with open(self.pidfile, "a") as f:
            f.write(f"{os.getpid()} {ctx.recovery}\\n")
        if ctx.recovery == 0:
            time.sleep(60)
        return "done"

mode, store, pidfile = sys.argv[1:]
if mode == "run":
    Slow(pidfile=pidfile, store=store, run_id="slow", config={"LOGGING": {"console": False}}).run()
else:
    result = Slow.recover("slow", store=store, config={"LOGGING": {"console": False}})
    print(result.status, result["hang"])
"""


def test_a_step_dies_with_its_engine_and_the_zombie_task_reruns_with_its_pool(tmp_path):
    script, store, pidfile = tmp_path / "slow.py", tmp_path / "slow.run.db", tmp_path / "pids"
    script.write_text(SLOW_STEP)
    engine = subprocess.Popen([sys.executable, str(script), "run", str(store), str(pidfile)],
                              cwd=ROOT, start_new_session=True)
    wait_for_attempt(store, timeout=30)
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.01)
    worker = int(pidfile.read_text().split()[0])
    os.kill(engine.pid, signal.SIGKILL)
    engine.wait()
    assert group_gone(engine.pid, 5.0), f"worker {worker} outlived its engine"
    assert query(store, "select status from eventor_tasks") == [("active",)]
    assert query(store, "select status, ended_at from eventor_attempts") == [("running", None)]
    assert query(store, "select attempt from eventor_leases where released_at is null") == [(0,)]

    proc = subprocess.run([sys.executable, str(script), "recover", str(store), str(pidfile)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["success", "done"]
    assert query(store, "select attempt, status from eventor_attempts") == [
        (0, "crashed"), (1, "success")]
    assert [line.split()[1] for line in pidfile.read_text().splitlines()] == ["0", "1"]
    # the dead attempt's lease was reclaimed, and the rerun's released with its status
    assert query(store, "select attempt, released_at is null from eventor_leases") == [
        (0, 0), (1, 0)]


def test_recovering_an_attempt_whose_engine_is_alive_is_refused(tmp_path):
    store_path = str(tmp_path / "live.run.db")
    with evr.Eventor(store=store_path, config={"LOGGING": {"console": False}}) as ev:
        ev.store.begin_attempt("live", ev.program, "restart", now=1.0, host=socket.gethostname(),
                               pid=os.getpid())
    ev = evr.Eventor(store=store_path, run_mode=evr.RUN_RECOVER, run_id="live",
                     config={"LOGGING": {"console": False}})
    ev.add_event("e")
    with ev, pytest.raises(evr.EventorUsageError, match=r"attempt 0 is still running \(pid"):
        ev.run()


RUNNER = """
import sys
from tests.crash_harness import CrashFlow, QUIET
store, databases, log, run_id = sys.argv[1], eval(sys.argv[2]), sys.argv[3], sys.argv[4]
config = {**QUIET, "DATABASES": databases} if databases else QUIET
result = CrashFlow(log=log, store=store, run_id=run_id, config=config, work_ms=5).run()
raise SystemExit(0 if result else 1)
"""


def test_two_programs_share_one_store_without_locks_or_cross_talk(tmp_path, backend):
    databases = repr(backend.config.get("DATABASES") or {})
    procs = [
        subprocess.Popen([sys.executable, "-c", RUNNER, backend.store, databases,
                          str(tmp_path / f"{r}.log"), r],
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for r in ("left", "right")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "locked" not in err
    store = backend.open()
    try:
        for run_id in ("left", "right"):
            tasks = store.tasks(run_id)
            assert len(tasks) == 1 + 8 * 3 + 8 + 3 + 1  # spawn; a, b, c; d; e for 0, 3, 6; summary
            lines = (tmp_path / f"{run_id}.log").read_text().splitlines()
            assert len(lines) == len(tasks)
        assert {r["run_id"] for r in store.runs()} == {"left", "right"}
    finally:
        store.close()
