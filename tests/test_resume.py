"""Interrupted runs picked up: ``run(resume_interrupted=True)`` recovers a run whose engine died."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

import eventor as evr
from eventor.config import default_program
from eventor.recovery import interrupted
from eventor.store import open_store
from tests.conftest import ROOT, Backend
from tests.resume_flows import Nightly

QUIET = {"LOGGING": {"console": False}}


def program(kind: str, store: str, log: Path, *args: str, hang: bool = False,
            databases: dict | None = None, go: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("HANG", None)
    if hang:
        env["HANG"] = "1"
    if databases:
        env["DATABASES"] = repr(databases)
    if go is not None:
        env["GO"] = str(go)
    return subprocess.Popen([sys.executable, "-m", "tests.resume_flows", kind, store, str(log), *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(proc: subprocess.Popen) -> tuple[str, str, str]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    run_id, mode, ok = out.split()
    return run_id, mode, ok


def kill_in_load(kind: str, store: str, log: Path, *args: str, databases: dict | None = None) -> None:
    """Run the program until its ``load`` step starts, then SIGKILL it."""
    proc = program(kind, store, log, *args, hang=True, databases=databases)
    deadline = time.monotonic() + 30
    while "load start" not in (log.read_text() if log.exists() else ""):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the program never reached its load step"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines()


def runs_of(backend, **kw):
    store = backend.open()
    try:
        return [(r["run_id"], [a["mode"] for a in store.attempts(r["run_id"])]) for r in store.runs()]
    finally:
        store.close()


@pytest.mark.slow
def test_the_next_start_recovers_a_killed_run_instead_of_starting_one(backend, tmp_path):
    log = tmp_path / "log"
    kill_in_load("flow", backend.store, log, databases=backend.config.get("DATABASES"))
    [(killed, modes)] = runs_of(backend)
    assert modes == ["restart"]
    run_id, mode, ok = finished(program("flow", backend.store, log,
                                        databases=backend.config.get("DATABASES")))
    assert (run_id, mode, ok) == (killed, "recover", "True")
    # extract succeeded before the kill: skipped, not run again; load ran again, to the end
    assert lines(log) == ["extract", "load start", "load start", "load"]
    assert runs_of(backend) == [(killed, ["restart", "recover"])]
    # nothing is interrupted any more: the next start is a new run
    run_id, mode, ok = finished(program("flow", backend.store, log,
                                        databases=backend.config.get("DATABASES")))
    assert run_id != killed and mode == "restart" and ok == "True"


@pytest.mark.slow
def test_a_run_of_other_parameters_is_left_for_recover_interrupted(tmp_path):
    log, store = tmp_path / "log", str(tmp_path / "n.run.db")
    kill_in_load("flow", store, log, "2026-11-27")
    run_id, mode, _ = finished(program("flow", store, log, "2026-11-28"))
    assert mode == "restart"
    with Nightly(store=store, config=QUIET) as flow:  # the killed run is left to recover
        left = interrupted(flow.store, program="resume_flows", flow="Nightly")
    assert len(left) == 1 and left[0]["run_id"] != run_id


@pytest.mark.slow
def test_of_two_programs_started_at_once_one_recovers_and_the_other_starts_anew(backend, tmp_path):
    log = tmp_path / "log"
    databases = backend.config.get("DATABASES")
    kill_in_load("flow", backend.store, log, databases=databases)
    [(killed, _)] = runs_of(backend)
    go = tmp_path / "go"
    procs = [program("flow", backend.store, log, databases=databases, go=go) for _ in range(3)]
    time.sleep(0.5)  # all three imported and waiting
    go.touch()
    results = sorted(finished(p) for p in procs)
    recovered = [r for r in results if r[0] == killed]
    assert len(recovered) == 1 and recovered[0][1] == "recover"
    assert all(r[1] == "restart" and r[0] != killed for r in results if r[0] != killed)
    runs = dict(runs_of(backend))
    assert runs[killed] == ["restart", "recover"]
    assert len(runs) == 3


@pytest.mark.slow
def test_a_classic_program_started_again_recovers_its_killed_run(tmp_path):
    log, store = tmp_path / "log", str(tmp_path / "c.run.db")
    kill_in_load("classic", store, log)
    run_id, mode, ok = finished(program("classic", store, log))
    assert mode == "recover" and ok == "True"
    assert lines(log) == ["extract", "load start", "load start", "load"]
    run_id2, mode2, _ = finished(program("classic", store, log))
    assert run_id2 != run_id and mode2 == "restart"


def test_a_run_whose_heartbeat_stopped_on_another_host_is_taken_up(tmp_path):
    store_path = str(tmp_path / "h.run.db")
    log = tmp_path / "log"
    with Nightly(log=str(log), store=store_path, config=QUIET, executor="thread") as first:
        first.run()
        store = first.store
        # an attempt of another host whose engine went silent 10 minutes ago
        now = time.time()
        attempt = store.begin_attempt(first.run_id, "pytest", "recover", now=now - 600,
                                      host="elsewhere", pid=1, after=0)
        store.heartbeat(first.run_id, attempt, at=now - 600)
        run_id = first.run_id
    flow = Nightly(log=str(log), store=store_path, config=QUIET, executor="thread")
    with flow:
        assert flow.run(resume_interrupted=True)
        assert flow.run_id == run_id
        assert [a["mode"] for a in flow.store.attempts(run_id)] == ["restart", "recover", "recover"]
        assert [a["status"] for a in flow.store.attempts(run_id)][1] == "crashed"


def test_a_live_run_is_not_taken_up(tmp_path):
    store_path = str(tmp_path / "l.run.db")
    log = str(tmp_path / "log")
    with Nightly(log=log, store=store_path, config=QUIET, executor="thread") as live:
        # a run of this program on another host, whose engine sent a heartbeat just now
        live.store.begin_attempt("live-run", default_program(), "restart", now=time.time(),
                                 host="elsewhere", pid=1,
                                 info={"flow": "Nightly", "params": dict(live.param_values)})
    flow = Nightly(log=log, store=store_path, config=QUIET, executor="thread")
    with flow:
        assert flow.run(resume_interrupted=True)
        assert flow.run_id != "live-run"


def test_recoveries_of_one_attempt_at_once_begin_exactly_one(backend):
    store = backend.open()
    try:
        store.begin_attempt("r", "p", "restart", now=time.time(), host="h", pid=1)
        wins, refused, barrier = [], [], threading.Barrier(8)

        def recover() -> None:
            mine = backend.open()
            try:
                barrier.wait()
                wins.append(mine.begin_attempt("r", "p", "recover", now=time.time(), host="h",
                                               pid=2, after=0))
            except evr.RunClaimedError as exc:
                refused.append(exc)
            finally:
                mine.close()

        threads = [threading.Thread(target=recover) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert wins == [1] and len(refused) == 7
        assert "taken up by another program" in str(refused[0])
        assert [a["attempt"] for a in store.attempts("r")] == [0, 1]
    finally:
        store.close()


def test_resume_interrupted_with_a_run_mode_is_a_usage_error(tmp_path):
    with pytest.raises(evr.EventorUsageError, match="resume_interrupted"):
        evr.Eventor(name="x", store=str(tmp_path / "x.run.db"), run_mode=evr.RUN_RECOVER,
                    resume_interrupted=True)


def eventor_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed ``eventor`` command, run as a user runs it."""
    return subprocess.run([str(Path(sys.executable).parent / "eventor"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


FLOW = str(ROOT / "tests" / "resume_flows.py") + ":Nightly"


@pytest.mark.slow
def test_eventor_run_resume_interrupted_recovers_the_killed_run(tmp_path):
    log, store = tmp_path / "log", str(tmp_path / "n.run.db")
    kill_in_load("flow", store, log)
    [(killed, _)] = runs_of(Backend("sqlite", store))
    done = eventor_cli("run", FLOW, "--resume-interrupted", "--store", store, "-p", f"log={log}",
                       "-p", "day=2026-11-28", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"run {killed} attempt 1: success" in done.stdout
    assert lines(log) == ["extract", "load start", "load start", "load"]


@pytest.mark.slow
def test_eventor_recover_interrupted_recovers_every_interrupted_run(tmp_path):
    logs, store = [tmp_path / "log27", tmp_path / "log28"], str(tmp_path / "n.run.db")
    kill_in_load("flow", store, logs[0], "2026-11-27")
    kill_in_load("flow", store, logs[1], "2026-11-28")
    killed = [run_id for run_id, _ in runs_of(Backend("sqlite", store))]
    assert len(killed) == 2
    done = eventor_cli("recover", FLOW, "--interrupted", "--store", store, "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for run_id in killed:
        assert f"recovering run {run_id} (attempt 0 was interrupted, day=2026-11-2" in done.stdout
        assert f"run {run_id}: success" in done.stdout
    for log in logs:  # each run's recorded log parameter was used again
        assert lines(log) == ["extract", "load start", "load start", "load"]
    again = eventor_cli("recover", FLOW, "--interrupted", "--store", store, cwd=tmp_path)
    assert again.returncode == 0 and "no interrupted run of resume_flows" in again.stdout
    wrong = eventor_cli("recover", FLOW, "--interrupted", "--run-id", killed[0], "--store", store,
                        cwd=tmp_path)
    assert wrong.returncode == 2 and "drop --run-id" in wrong.stderr


def test_a_classic_program_takes_up_only_a_run_of_its_own_parameters(tmp_path):
    store_path = str(tmp_path / "c.run.db")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()

    def build(day: str) -> evr.Eventor:
        ev = evr.Eventor(name="daily", store=store_path, resume_interrupted=True,
                         config={**QUIET, "task_construct": "thread"})
        ev.record_params({"day": day})
        start = ev.add_event("start")
        ev.add_assoc(start, ev.add_step("load", func=lambda: day))
        ev.trigger_event(start, "1")
        return ev

    with build("2026-11-27") as first:  # a run of the 27th whose engine died
        first.store.begin_attempt("the-27th", default_program(), "restart", now=time.time(),
                                  host=socket.gethostname(), pid=int(gone),
                                  info={"flow": "daily", "params": {"day": "2026-11-27"}})
    with build("2026-11-28") as other_day:
        assert other_day.run() and other_day.run_id != "the-27th"
        assert other_day.run_mode is evr.RUN_RESTART
    with build("2026-11-27") as same_day:
        assert same_day.run() and same_day.run_id == "the-27th"
        assert same_day.run_mode is evr.RUN_RECOVER


def test_a_run_another_program_already_recovered_is_not_recovered_again(tmp_path):
    store_path, log = str(tmp_path / "n.run.db"), tmp_path / "log"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    with Nightly(log=str(log), store=store_path, config=QUIET, executor="thread") as flow:
        params = json.loads(json.dumps(dict(flow.param_values)))
        flow.store.begin_attempt("dead", default_program(), "restart", now=time.time(),
                                 host=socket.gethostname(), pid=int(gone),
                                 info={"flow": "Nightly", "params": params})
        [found] = interrupted(flow.store, program=default_program(), flow="Nightly")
    # another program takes it up and finishes it between our look and our claim
    assert Nightly.recover("dead", store=store_path, config=QUIET, executor="thread")
    with pytest.raises(evr.RunClaimedError, match="taken up by another program"):
        Nightly.recover("dead", expect_attempt=found["attempt"], store=store_path, config=QUIET,
                        executor="thread")
    with closing(open_store(store_path)) as store:
        assert [a["mode"] for a in store.attempts("dead")] == ["restart", "recover"]


@pytest.mark.slow
def test_recover_interrupted_with_a_parameter_picks_those_runs_and_changes_none(tmp_path):
    logs, store = [tmp_path / "log27", tmp_path / "log28"], str(tmp_path / "n.run.db")
    kill_in_load("flow", store, logs[0], "2026-11-27")
    kill_in_load("flow", store, logs[1], "2026-11-28")
    done = eventor_cli("recover", FLOW, "--interrupted", "-p", "day=2026-11-28", "--store", store,
                       "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "day=2026-11-28" in done.stdout and done.stdout.count("recovering run") == 1
    assert lines(logs[1]) == ["extract", "load start", "load start", "load"]
    assert lines(logs[0]) == ["extract", "load start"]  # the 27th is left for its own recovery
    runs = eventor_cli("runs", "--store", store, cwd=tmp_path)
    assert f"--store {os.path.relpath(store, tmp_path)}" in runs.stdout  # the hint names the store


@pytest.mark.slow
def test_ctrl_c_during_eventor_run_is_one_line_and_leaves_the_run_to_recover(tmp_path, ctrl_c):
    log, store = tmp_path / "log", str(tmp_path / "n.run.db")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "eventor"), "run", FLOW, "--store", store,
         "-p", f"log={log}", "-q"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONPATH": str(ROOT), "HANG": "1"})
    deadline = time.monotonic() + 30
    while "load start" not in (log.read_text() if log.exists() else ""):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted (Ctrl-C)" in err and "Traceback" not in err
    runs = eventor_cli("runs", "--store", store, cwd=tmp_path)
    assert "interrupted" in runs.stdout and "eventor recover" in runs.stdout
