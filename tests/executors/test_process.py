"""The process executor: forked, reused workers; deaths, signals, environment, cleanup."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import eventor as evr
from tests.conftest import one_step, statuses


def chain_of_pids(make_eventor, config):
    ev = make_eventor(config={"task_construct": "process", **config})
    e1, e2, e3 = ev.add_event("e1"), ev.add_event("e2"), ev.add_event("e3")
    ev.add_assoc(e1, ev.add_step("a", func=os.getpid, triggers={evr.STEP_SUCCESS: e2}))
    ev.add_assoc(e2, ev.add_step("b", func=lambda: os._exit(9),
                                 triggers={evr.STEP_FAILURE: e3}))
    ev.add_assoc(e3, ev.add_step("c", func=os.getpid))
    ev.trigger_event(e1)
    assert ev.run()
    return {t["step"]: t for t in ev.store.tasks(ev.run_id)}


def test_process_steps_run_in_a_child_with_their_environment(make_eventor):
    ev = one_step(make_eventor, lambda: {k: v for k, v in os.environ.items()
                                         if k.startswith("EVENTOR_")} | {"pid": os.getpid()})
    assert ev.run()
    [task] = ev.store.tasks(ev.run_id)
    import json

    result = json.loads(task["result"])
    assert result.pop("pid") == task["pid"] != os.getpid()
    assert result == {"EVENTOR_STEP_NAME": "s", "EVENTOR_STEP_SEQUENCE": "5",
                      "EVENTOR_STEP_RECOVERY": "0", "EVENTOR_LOGGER_NAME": "eventor.t.s"}
    assert "EVENTOR_STEP_NAME" not in os.environ


def test_the_environment_prefix_is_configurable(make_eventor):
    ev = make_eventor(config={"task_construct": "process", "envvar_prefix": "ACME_"})
    e = ev.add_event("e")
    ev.add_assoc(e, ev.add_step("s", func=lambda: os.environ["ACME_STEP_NAME"]))
    ev.trigger_event(e)
    assert ev.run()
    assert ev.store.tasks(ev.run_id)[0]["result"] == '"s"'


def test_a_process_that_exits_without_raising_is_a_failure_with_its_exit_code(make_eventor):
    ev = one_step(make_eventor, lambda: os._exit(3))
    assert ev.run() is False
    [task] = ev.store.tasks(ev.run_id)
    assert task["status"] == "failure" and task["exit_code"] == 3
    assert task["error_type"] == "ProcessDied" and "exited with code 3" in task["error_message"]


def test_a_process_killed_by_a_signal_is_a_failure_naming_the_signal(make_eventor):
    ev = one_step(make_eventor, lambda: os.kill(os.getpid(), signal.SIGKILL))
    assert ev.run() is False
    [task] = ev.store.tasks(ev.run_id)
    assert task["exit_code"] == -signal.SIGKILL and "SIGKILL" in task["error_message"]


def test_a_process_step_exception_keeps_its_type_message_and_traceback(make_eventor):
    def fail():
        raise KeyError("missing")

    ev = one_step(make_eventor, fail)
    assert ev.run() is False
    [task] = ev.store.tasks(ev.run_id)
    assert task["error_type"] == "KeyError" and "missing" in task["error_message"]
    assert "in fail" in task["traceback"]


def test_close_leaves_no_child_process_behind(tmp_path, ctrl_c):
    """A run interrupted while a process step runs: close() kills and reaps the child."""
    ev = evr.Eventor(name="t", store=str(tmp_path / "c.run.db"),
                     config={"LOGGING": {"console": False}})
    pidfile = tmp_path / "pid"
    e = ev.add_event("e")

    def sleeper():
        pidfile.write_text(str(os.getpid()))
        time.sleep(60)

    ev.add_assoc(e, ev.add_step("s", func=sleeper))
    ev.trigger_event(e)

    def interrupt_once_it_runs() -> None:
        deadline = time.monotonic() + 30
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_it_runs, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        ev.run()
    child = int(pidfile.read_text())
    ev.close()
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    assert not [t for t in threading.enumerate() if t.name.startswith("eventor-")]


def test_a_worker_that_dies_is_replaced_and_the_flow_goes_on(make_eventor):
    tasks = chain_of_pids(make_eventor, {})
    assert tasks["b"]["exit_code"] == 9 and tasks["b"]["pid"] == int(tasks["a"]["result"])
    assert int(tasks["c"]["result"]) != int(tasks["a"]["result"])  # a fresh worker


def test_idle_workers_are_reused_unless_max_tasks_per_child_says_otherwise(make_eventor):
    def pids(config):
        ev = make_eventor(config={"task_construct": "process", **config})
        first = ev.add_event("e0")
        events = [first] + [ev.add_event(f"e{i}") for i in range(1, 3)]
        for i in range(3):
            ev.add_step(f"s{i}", func=os.getpid,
                        triggers={evr.STEP_SUCCESS: events[i + 1]} if i < 2 else {})
            ev.add_assoc(events[i], f"s{i}")
        ev.trigger_event(first)
        assert ev.run()
        return [int(t["result"]) for t in ev.store.tasks(ev.run_id)]

    assert len(set(pids({}))) == 1
    assert len(set(pids({"max_tasks_per_child": 1}))) == 3


def test_a_worker_killed_while_idle_does_not_take_the_next_task_down(make_eventor, tmp_path):
    pidfile = tmp_path / "worker.pid"
    ev = make_eventor(config={"task_construct": "process"})
    e1, e2, e3 = ev.add_event("e1"), ev.add_event("e2"), ev.add_event("e3")
    ev.add_assoc(e1, ev.add_step("a", func=lambda: pidfile.write_text(str(os.getpid())),
                                 triggers={evr.STEP_SUCCESS: e2}))
    ev.add_assoc(e2, ev.add_step("kill", func=lambda: os.kill(int(pidfile.read_text()),
                                                              signal.SIGKILL),
                                 config={"task_construct": "invoke"},
                                 triggers={evr.STEP_SUCCESS: e3}))
    ev.add_assoc(e3, ev.add_step("c", func=os.getpid))
    ev.trigger_event(e1)
    assert ev.run()
    assert statuses(ev)[("c", "0")] == "success"


def test_retry_on_names_a_failure_eventor_records(make_eventor, tmp_path):
    marker = tmp_path / "died-once"

    def dies_once():
        if not marker.exists():
            marker.write_text("x")
            os._exit(3)
        return "second try"

    ev = one_step(make_eventor, dies_once, config={"retries": 1, "retry_on": evr.ProcessDied})
    assert ev.run()
    (task,) = ev.store.tasks(ev.run_id)
    assert (task["status"], task["result"]) == ("success", '"second try"')
    assert [t["error_type"] for t in ev.store.tries(ev.run_id)] == ["ProcessDied"]
    assert issubclass(evr.ProcessDied, evr.StepFailure) and issubclass(evr.ProcessDied, evr.EventorError)


def print_then_die():
    print("loaded 3 of 5 files", flush=True)
    os.write(2, b"warning: disk almost full\n")
    os.kill(os.getpid(), signal.SIGKILL)


def print_then_hang():
    print("waiting for the API", flush=True)
    time.sleep(30)


def test_what_a_killed_process_step_printed_is_kept(make_eventor, capfd):
    ev = one_step(make_eventor, print_then_die)
    assert ev.run() is False
    [task] = ev.store.tasks(ev.run_id)
    assert task["error_type"] == "ProcessDied"
    assert task["output"] == "loaded 3 of 5 files\nwarning: disk almost full\n"
    out, err = capfd.readouterr()  # and it reached the console, as a live step's does
    assert "loaded 3 of 5 files" in out and "disk almost full" in err


def test_what_a_timed_out_process_step_printed_is_kept(make_eventor):
    ev = one_step(make_eventor, print_then_hang, config={"timeout": 2, "timeout_grace": 0.5})
    assert ev.run() is False
    [task] = ev.store.tasks(ev.run_id)
    assert task["error_type"] == "StepTimeout"
    assert task["output"] == "waiting for the API\n"


def test_a_worker_does_not_pass_one_task_s_output_to_the_next(make_eventor):
    ev = make_eventor(config={"task_construct": "process", "max_concurrent": 1})
    e1, e2 = ev.add_event("e1"), ev.add_event("e2")
    ev.add_assoc(e1, ev.add_step("talk", func=print, args=("first",),
                                 triggers={evr.STEP_SUCCESS: e2}))
    ev.add_assoc(e2, ev.add_step("die", func=os._exit, args=(4,)))
    ev.trigger_event(e1)
    assert ev.run() is False
    tasks = {t["step"]: t for t in ev.store.tasks(ev.run_id)}
    assert tasks["talk"]["output"] == "first\n"
    assert tasks["die"]["output"] is None and tasks["die"]["pid"] == tasks["talk"]["pid"]
