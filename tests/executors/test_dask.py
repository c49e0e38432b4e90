"""
The dask executor on real clusters: a LocalCluster the run starts, and a scheduler with two
workers started here as separate processes (`dask scheduler`, `dask worker`) on loopback.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import eventor as evr
from tests.conftest import ROOT
from tests.executors import dask_steps
from tests.executors.dask_steps import Diamond

pytest.importorskip("distributed")
pytestmark = pytest.mark.slow

QUIET = {"LOGGING": {"console": False}}
DASK_BIN = str(Path(sys.executable).with_name("dask"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: Any):
    """A scheduler and two workers (the second with resource GPU=1), each its own process."""
    import distributed

    folder = tmp_path_factory.mktemp("dask")
    # The scheduler picks its own port and writes its address here (a port found free and
    # bound later may be taken in between)
    scheduler_file = str(folder / "scheduler.json")
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}  # Eventor retries, not Dask
    log = open(folder / "cluster.log", "w")  # noqa: SIM115 - closed at teardown
    procs = [subprocess.Popen([DASK_BIN, "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--scheduler-file", scheduler_file, "--no-dashboard"],
                              env=env, cwd=folder, stdout=log, stderr=log, start_new_session=True)]
    for extra in ([], ["--resources", "GPU=1"]):
        procs.append(subprocess.Popen(
            [DASK_BIN, "worker", "--scheduler-file", scheduler_file, "--host", "127.0.0.1",
             "--nthreads", "2", "--local-directory", str(folder), "--no-dashboard", *extra],
            env=env, cwd=folder, stdout=log, stderr=log, start_new_session=True))
    try:
        deadline = time.monotonic() + 60
        while not (address := _address_in(scheduler_file)):
            assert time.monotonic() < deadline, (folder / "cluster.log").read_text()
            time.sleep(0.1)
        while True:
            try:
                with distributed.Client(address, timeout=2, set_as_default=False) as client:
                    client.wait_for_workers(2, timeout=max(1.0, deadline - time.monotonic()))
                break
            except OSError:
                assert time.monotonic() < deadline, (folder / "cluster.log").read_text()
                time.sleep(0.2)
        yield {"address": address, "log": folder / "cluster.log"}
    finally:
        for proc in procs:
            with_group(proc, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with_group(proc, signal.SIGKILL)
                proc.wait()
        log.close()


def _address_in(scheduler_file: str) -> str | None:
    try:
        return str(json.loads(Path(scheduler_file).read_text())["address"])
    except (OSError, ValueError, KeyError):  # not written yet, or half written
        return None


def with_group(proc: subprocess.Popen[Any], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def on(cluster: dict[str, Any], **config: Any) -> dict[str, Any]:
    return {**QUIET, "task_construct": "dask", "DASK": {"address": cluster["address"]}, **config}


def one_step(tmp_path: Path, settings: dict[str, Any], func: Any, *args: Any,
             **step: Any) -> evr.Eventor:
    ev = evr.Eventor(name="dask", store=str(tmp_path / "dask.run.db"), config=settings)
    ev.add_event("go")
    ev.add_assoc("go", ev.add_step("s", func=func, args=args, **step))
    ev.trigger_event("go")
    return ev


def wait_until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s"
        time.sleep(0.02)


def test_the_seed_runs_on_a_local_cluster_the_run_starts_and_closes(tmp_path):
    config = {**QUIET, "task_construct": "dask",
              "DASK": {"cluster_kwargs": {"n_workers": 2, "threads_per_worker": 1}}}
    with evr.Eventor(name="seed", store=str(tmp_path / "seed.run.db"), config=config) as ev:
        events = [ev.add_event(f"e{i}") for i in range(3)]
        for i in range(3):
            triggers = {evr.STEP_SUCCESS: events[i + 1]} if i < 2 else {}
            ev.add_step(f"s{i}", func=dask_steps.where, args=(f"s{i}",), triggers=triggers)
            ev.add_assoc(events[i], f"s{i}")
        ev.trigger_event(events[0], 1)
        assert ev.run() is True
        tasks = ev.store.tasks(ev.run_id)
    assert [t["step"] for t in tasks] == ["s0", "s1", "s2"]
    assert all(t["status"] == "success" and t["executor"] == "dask" for t in tasks)
    assert all(t["host"].startswith("tcp://127.0.0.1:") for t in tasks)  # the worker
    assert not [t for t in threading.enumerate() if t.name == "eventor-dask"]


def test_a_flow_with_and_or_sequences_and_triggers_runs_on_the_cluster(tmp_path, cluster):
    with Diamond(store=str(tmp_path / "d.run.db"), config=on(cluster)) as flow:
        flow.trigger("start", "7")
        result = flow.run()
        rows = flow.store.tasks(flow.run_id)
    assert result.status == "success"
    assert result.task("joined", "7").value == ["left", "right"]
    assert result.task("first", "7").value == "one of them"
    assert result.task("pong", "7.ping").value == "pong in 7.ping"
    left = result.task("left", "7").value
    assert left["step"] == "left" and left["sequence"] == "7"
    assert left["env"]["EVENTOR_STEP_NAME"] == "left"  # task_env() on the worker
    assert {r["host"] for r in rows} <= set(current_workers(cluster))


def test_a_worker_killed_mid_step_is_a_failure_naming_it_and_eventor_retries(tmp_path, cluster):
    pidfile = tmp_path / "pid"
    ev = one_step(tmp_path, on(cluster, retries=1), dask_steps.hang_once, str(pidfile))
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(ev.run()), daemon=True)
    thread.start()
    try:
        wait_until(lambda: pidfile.exists() and pidfile.read_text())
        os.kill(int(pidfile.read_text()), signal.SIGKILL)  # its nanny starts a new worker
        thread.join(60)
        assert out == [True]
        (task,) = ev.store.tasks(ev.run_id)
        assert task["result"] == '"second try"'
        (first,) = ev.store.tries(ev.run_id)
        assert first["error_type"] == "ProcessDied"
        assert "the Dask worker tcp://127.0.0.1:" in first["error_message"]
        assert "running step 's' died mid-step" in first["error_message"]
    finally:
        ev.close()


def test_a_step_past_its_timeout_ends_and_the_cluster_stays_usable(tmp_path, cluster):
    pidfile = tmp_path / "pid"
    # The timeout covers the client's start, and a fresh worker's imports (an earlier test
    # killed one)
    config = on(cluster, timeout=3, timeout_grace=0.5)
    ev = evr.Eventor(name="dask", store=str(tmp_path / "dask.run.db"), config=config)
    go, failed = ev.add_event("go"), ev.add_event("failed")
    ev.add_assoc(go, ev.add_step("stuck", func=dask_steps.hang, args=(str(pidfile),),
                                 triggers={evr.STEP_FAILURE: [failed]}))
    ev.add_assoc(failed, ev.add_step("after", func=dask_steps.running, args=(str(pidfile),)))
    ev.trigger_event(go)
    started = time.monotonic()
    try:
        ev.run()  # succeeds: the failure has its branch
        took = time.monotonic() - started
        tasks = {t["step"]: t for t in ev.store.tasks(ev.run_id)}
    finally:
        ev.close()
    assert took < 3 + 0.5 + 15  # timeout, grace, and a worker's restart
    assert tasks["stuck"]["error_type"] == "StepTimeout" and pidfile.exists()
    assert tasks["after"]["status"] == "success"  # the cluster took the next task
    # ...once the stuck step's worker was restarted: not sent to a worker about to die
    assert tasks["after"]["result"] == "false"


def test_a_pool_of_one_never_overlaps_across_workers(tmp_path, cluster):
    log = tmp_path / "held"
    config = on(cluster, POOLS={"db": 1})
    ev = evr.Eventor(name="dask", store=str(tmp_path / "dask.run.db"), config=config)
    ev.add_event("go")
    for n in range(6):
        ev.add_assoc("go", ev.add_step(f"s{n}", func=dask_steps.held, args=(str(log), 0.15),
                                       acquires=[("db", 1)]))
    ev.trigger_event("go")
    with ev:
        assert ev.run() is True
        hosts = {t["host"] for t in ev.store.tasks(ev.run_id)}
    spans = sorted(tuple(map(float, line.split())) for line in log.read_text().splitlines())
    assert len(spans) == 6
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    assert hosts <= set(current_workers(cluster))


def current_workers(cluster: dict[str, Any]) -> dict[str, Any]:
    """The workers now (earlier tests kill and restart some, which gives them new addresses)."""
    import distributed

    with distributed.Client(cluster["address"], timeout=5, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=30)
        return dict(client.scheduler_info()["workers"])


def test_worker_resources_choose_the_worker(tmp_path, cluster):
    gpu = next(w for w, info in current_workers(cluster).items()
               if info.get("resources", {}).get("GPU"))
    ev = evr.Eventor(name="dask", store=str(tmp_path / "dask.run.db"), config=on(cluster))
    ev.add_event("go")
    for n in range(4):
        ev.add_assoc("go", ev.add_step(f"g{n}", func=dask_steps.where, args=("g",),
                                       config={"worker_resources": {"GPU": 1}}))
    ev.trigger_event("go")
    with ev:
        assert ev.run() is True
        assert {t["host"] for t in ev.store.tasks(ev.run_id)} == {gpu}


def test_a_step_that_cannot_be_sent_is_refused_when_it_is_added(tmp_path, cluster):
    with pytest.raises(evr.EventorConfigError, match=r"step 's' runs on Dask, but its function "
                       r"or arguments cannot be sent to a worker \(TypeError"):
        one_step(tmp_path, on(cluster), dask_steps.where, threading.Lock())


def test_an_unreachable_scheduler_fails_the_steps_with_the_reason(tmp_path):
    config = {**QUIET, "task_construct": "dask",
              "DASK": {"address": f"tcp://127.0.0.1:{free_port()}", "connect_timeout": 1}}
    ev = one_step(tmp_path, config, dask_steps.where, "x")
    with ev:
        assert ev.run() is False
        (task,) = ev.store.tasks(ev.run_id)
    assert task["error_type"] == "DaskClusterError"
    assert "step 's': the Dask cluster cannot be used: OSError: Timed out trying to connect" in (
        task["error_message"])


KILLED = """
import sys
import eventor as evr
from tests.executors import dask_steps

mode, store, pidfile, address = sys.argv[1:]
config = {"LOGGING": {"console": False}, "task_construct": "dask", "DASK": {"address": address}}
ev = evr.Eventor(name="far", store=store, config=config, run_id="far",
                 run_mode=evr.RUN_RECOVER if mode == "recover" else evr.RUN_RESTART)
ev.add_event("go")
ev.add_assoc("go", ev.add_step("s", func=dask_steps.hang_once, args=(pidfile,)))
ev.trigger_event("go")
print("ok" if ev.run() else "failed", flush=True)
"""


def test_an_engine_killed_mid_run_is_recovered_on_the_cluster(tmp_path, cluster):
    script, store, pidfile = tmp_path / "far.py", tmp_path / "far.run.db", tmp_path / "pid"
    script.write_text(KILLED)
    args = [str(store), str(pidfile), cluster["address"]]
    engine = subprocess.Popen([sys.executable, str(script), "run", *args], cwd=ROOT,
                              start_new_session=True)
    try:
        wait_until(lambda: pidfile.exists() and pidfile.read_text())
        os.killpg(engine.pid, signal.SIGKILL)
        engine.wait(10)
    finally:
        if engine.poll() is None:
            os.killpg(engine.pid, signal.SIGKILL)
    done = subprocess.run([sys.executable, str(script), "recover", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr
    import sqlite3

    with sqlite3.connect(store) as db:
        rows = db.execute("select attempt, status, result from eventor_tasks").fetchall()
    assert rows == [(0, "active", None), (1, "success", '"second try"')]


def test_dask_settings_are_checked_when_the_config_is_read(tmp_path):
    with pytest.raises(evr.EventorConfigError, match=r"DASK.adress: unknown key"):
        evr.load_config({"DASK": {"adress": "tcp://x:8786"}})
    with pytest.raises(evr.EventorConfigError, match=r"DASK: give address .* or cluster_class"):
        evr.load_config({"DASK": {"address": "tcp://x:8786", "cluster_class": "a.B"}})
    with evr.Eventor(name="dask", store=str(tmp_path / "dask.run.db"), config=QUIET) as ev, \
            pytest.raises(evr.FlowDefinitionError, match=r"worker_resources=\{'GPU': -1\} is not "
                          r"a mapping of Dask worker resources to amounts > 0"):
        ev.add_step("s", func=print, config={"worker_resources": {"GPU": -1}})  # as it is added


def test_worker_resources_on_a_step_not_run_by_dask_is_refused_when_it_is_added(tmp_path):
    with pytest.raises(evr.EventorConfigError, match=r"step 's' sets worker_resources, which "
                       r"only the dask executor uses"):
        one_step(tmp_path, {**QUIET, "task_construct": "thread"}, dask_steps.where, "x",
                 config={"worker_resources": {"GPU": 1}})


UNGUARDED = """
import eventor as evr
from tests.executors import dask_steps

ev = evr.Eventor(name="bare", store="bare.run.db", config={"task_construct": "dask",
                 "DASK": {"cluster_kwargs": {"n_workers": 1}}, "LOGGING": {"console": False}})
ev.add_event("go")
ev.add_assoc("go", ev.add_step("s", func=dask_steps.where, args=("x",)))
ev.trigger_event("go")
print(ev.run())
"""


def test_a_script_that_runs_at_its_top_level_is_told_to_guard_it(tmp_path):
    (tmp_path / "bare.py").write_text(UNGUARDED)
    done = subprocess.run([sys.executable, "bare.py"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
    import sqlite3

    with sqlite3.connect(tmp_path / "bare.run.db") as db:
        (error,) = db.execute("select error_message from eventor_tasks").fetchone()
        runs = db.execute("select count(*) from eventor_runs").fetchone()[0]
    assert "start the run under 'if __name__ == \"__main__\":'" in error
    assert runs == 1  # the worker processes did not record runs of their own
    assert "was started again by a worker process" in done.stderr


def test_a_cluster_class_by_import_path_is_started_and_closed_for_the_run(tmp_path):
    config = {**QUIET, "task_construct": "dask",
              "DASK": {"cluster_class": "distributed.LocalCluster",
                       "cluster_kwargs": {"n_workers": 1, "processes": False,
                                          "dashboard_address": None}}}
    with one_step(tmp_path, config, dask_steps.where, "x") as ev:
        assert ev.run() is True
        (task,) = ev.store.tasks(ev.run_id)
    assert task["host"].startswith("inproc://") or task["host"].startswith("tcp://")
    assert not [t for t in threading.enumerate() if t.name == "eventor-dask"]


def test_a_cluster_class_that_cannot_be_imported_is_refused_when_a_dask_step_is_added(tmp_path):
    config = {**QUIET, "task_construct": "dask", "DASK": {"cluster_class": "dask_nowhere.Cluster"}}
    with pytest.raises(evr.EventorConfigError, match=r"DASK.cluster_class: cannot import "
                       r"'dask_nowhere.Cluster': No module named 'dask_nowhere'"):
        one_step(tmp_path, config, dask_steps.where, "x")


def test_close_ends_every_open_task_once_and_says_nothing_after(tmp_path, cluster):
    from eventor.executors.base import Outcome, TaskRun
    from eventor.executors.dask import DaskExecutor

    said: list[Any] = []
    pidfile = tmp_path / "pid"
    executor = DaskExecutor({"address": cluster["address"]})
    running = TaskRun(1, "r", "hang", "0", 0, dask_steps.hang, (str(pidfile), 30.0), {}, {})
    executor.submit(running, said.append)
    wait_until(lambda: pidfile.exists() and pidfile.read_text())
    executor.submit(TaskRun(2, "r", "late", "0", 0, dask_steps.hang, (str(tmp_path / "p2"), 30.0),
                            {}, {}), said.append)
    executor.close()
    assert sorted((m.key, m.error_type) for m in said) == [(1, "CancelledError"), (2, "CancelledError")]
    assert all(isinstance(m, Outcome) and not m.ok for m in said)
    executor.submit(TaskRun(3, "r", "after", "0", 0, dask_steps.where, ("x",), {}, {}), said.append)
    assert said[-1].key == 3 and "closed its Dask executor" in said[-1].error_message
    time.sleep(0.5)
    assert len(said) == 3  # nothing more, ever
