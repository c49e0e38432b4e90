"""What every executor shares (executors/base.py): how a task is called and reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

import eventor as evr
from tests.conftest import one_step, statuses


def test_results_that_are_not_json_are_stored_as_their_repr(make_eventor):
    class Thing:
        def __repr__(self):
            return "<Thing>"

    ev = one_step(make_eventor, Thing)
    assert ev.run()
    [task] = ev.store.tasks(ev.run_id)
    assert (task["result_kind"], task["result"]) == ("repr", "<Thing>")


def test_statuses_are_the_same_whichever_executor(make_eventor):
    for executor in ("process", "thread", "invoke"):
        ev = one_step(make_eventor, lambda: "x", executor=executor)
        assert ev.run()
        assert statuses(ev) == {("s", "5"): "success"}


@pytest.mark.parametrize("executor", ["thread", "invoke", "process"])
def test_every_step_reads_its_own_variables_from_os_environ(make_eventor, executor):
    barrier = threading.Barrier(3 if executor == "thread" else 1, timeout=5)

    def step():
        if executor == "thread":
            barrier.wait()  # all three run at once: nothing may leak between them
        return {"getenv": os.getenv("EVENTOR_STEP_SEQUENCE"),
                "item": os.environ["EVENTOR_STEP_NAME"],
                "in": "EVENTOR_STEP_RECOVERY" in os.environ,
                "copy": os.environ.copy().get("EVENTOR_STEP_SEQUENCE"),
                "listed": "EVENTOR_LOGGER_NAME" in list(os.environ),
                "task_env": evr.task_env()["EVENTOR_STEP_SEQUENCE"]}

    ev = make_eventor(config={"task_construct": executor})
    e = ev.add_event("e")
    ev.add_assoc(e, ev.add_step("s", func=step))
    for seq in ("a", "b", "c"):
        ev.trigger_event(e, seq)
    assert ev.run()
    results = {t["sequence"]: json.loads(t["result"]) for t in ev.store.tasks(ev.run_id)}
    assert results == {seq: {"getenv": seq, "item": "s", "in": True, "copy": seq,
                             "listed": True, "task_env": seq} for seq in ("a", "b", "c")}
    assert evr.task_env() == {} and os.getenv("EVENTOR_STEP_NAME") is None  # outside a step


def test_a_subprocess_of_a_thread_step_inherits_the_variables_it_is_given(make_eventor):
    def step():
        probe = [sys.executable, "-c", "import os; print(os.getenv('EVENTOR_STEP_NAME'))"]
        plain = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()
        given = subprocess.run(probe, capture_output=True, text=True, check=True,
                               env=os.environ.copy()).stdout.strip()
        return [plain, given]

    ev = one_step(make_eventor, step, executor="thread")
    assert ev.run()
    assert json.loads(ev.store.tasks(ev.run_id)[0]["result"]) == ["None", "s"]


def test_sequence_arg_name_and_pass_logger_to_task(make_eventor):
    import logging

    def step(day, logger):
        assert isinstance(logger, logging.Logger) and logger.name == "eventor.t.s"
        return day

    ev = make_eventor(config={"sequence_arg_name": "day", "pass_logger_to_task": True})
    e = ev.add_event("e")
    ev.add_assoc(e, ev.add_step("s", func=step))
    ev.trigger_event(e, "2026-11-01")
    assert ev.run()
    assert ev.store.tasks(ev.run_id)[0]["result"] == '"2026-11-01"'


class HostileRepr:
    def __repr__(self):
        raise RuntimeError("no repr for you")


class HostileError(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")


def returns_hostile():
    return HostileRepr()


def raises_hostile():
    raise HostileError()


def run_within(ev, seconds=60.0):
    """ev.run(), failing the test instead of hanging it when the engine never hears back."""
    box = []
    runner = threading.Thread(target=lambda: box.append(ev.run()), daemon=True)
    runner.start()
    runner.join(seconds)
    assert not runner.is_alive(), "the engine never heard how the step ended"
    return box[0]


@pytest.mark.parametrize("executor", ["thread", "invoke", "process"])
def test_a_result_whose_repr_raises_is_still_a_success(make_eventor, executor):
    ev = one_step(make_eventor, returns_hostile, executor=executor)
    assert run_within(ev)
    (task,) = ev.store.tasks(ev.run_id)
    assert task["status"] == "success" and task["result_kind"] == "repr"
    assert task["result"] == "<HostileRepr object; its repr() raised RuntimeError>"


@pytest.mark.parametrize("executor", ["thread", "invoke", "process"])
def test_an_error_whose_str_raises_is_still_reported(make_eventor, executor):
    ev = one_step(make_eventor, raises_hostile, executor=executor)
    assert not run_within(ev)
    (task,) = ev.store.tasks(ev.run_id)
    assert (task["status"], task["error_type"]) == ("failure", "HostileError")
    assert task["error_message"] == "<HostileError; its str() raised RuntimeError>"
