"""The invoke executor (in the engine thread) and CallbackExecutor, its twin for engine tests."""

from __future__ import annotations

import threading

import eventor as evr
from eventor.builder import GraphBuilder
from eventor.engine import Engine
from eventor.executors.inline import CallbackExecutor
from eventor.graph import StepSpec
from eventor.options import EngineOptions
from eventor.store import open_store
from tests.conftest import one_step


def test_invoke_steps_run_in_the_engine_thread(make_eventor):
    ev = one_step(make_eventor, threading.get_ident, executor="invoke")
    assert ev.run()
    assert ev.store.tasks(ev.run_id)[0]["result"] == str(threading.get_ident())


def chain_graph():
    b = GraphBuilder("chain")
    for name in ("go", "one_done", "two_failed"):
        b.add_event(name)
    b.add_step(StepSpec.make("one", func=print, triggers={evr.STEP_SUCCESS: "one_done"}))
    b.add_step(StepSpec.make("two", func=print, triggers={evr.STEP_FAILURE: "two_failed"}))
    b.add_step(StepSpec.make("three", func=print))
    b.add_assoc("go", "one")
    b.add_assoc("one_done", "two")
    b.add_assoc("two_failed", "three")
    return b.build()


def test_a_callback_executor_drives_the_engine_with_no_thread_or_process(tmp_path):
    seen = []

    def handler(task):
        seen.append((task.step, task.sequence, threading.get_ident()))
        if task.step == "two":
            raise ValueError("no")
        return {"step": task.step}

    store = open_store(str(tmp_path / "cb.run.db"))
    engine = Engine(chain_graph(), store, run_id="r1",
                    options=EngineOptions(steps=EngineOptions().steps.with_values(executor="thread")),
                    executors={"thread": CallbackExecutor(handler)})
    engine.trigger("go", 7)
    summary = engine.run()
    engine.close()
    tasks = {t["step"]: (t["status"], t["result"], t["error_type"]) for t in store.tasks("r1")}
    store.close()
    assert summary and summary.status == "success"
    assert [s for s, _, _ in seen] == ["one", "two", "three"]
    assert {ident for _, _, ident in seen} == {threading.get_ident()}
    assert tasks == {"one": ("success", '{"step": "one"}', None),
                     "two": ("failure", None, "ValueError"),
                     "three": ("success", '{"step": "three"}', None)}


def test_an_executor_that_cannot_stop_a_task_says_so():
    with CallbackExecutor(lambda task: None) as executor:
        assert executor.cancel(1, grace=0.0) is False
