"""One translation of a @step mark into a step, used by Flow classes and the classic API alike."""

from __future__ import annotations

import time

import pytest

from eventor import Event, Flow, step


def flaky_twice(attempts):
    @step(on="go", retries=2, retry_delay=0, executor="thread")
    def flaky():
        attempts.append(time.time())
        if len(attempts) < 3:
            raise RuntimeError(f"try {len(attempts)}")
        return "third time"

    return flaky


def test_the_classic_api_keeps_the_retries_of_a_marked_function(make_eventor):
    attempts = []
    ev = make_eventor()
    ev.add_event("go")
    spec = ev.add_step(flaky_twice(attempts))
    ev.trigger_event("go")
    assert spec.options.retries == 2
    assert ev.run()
    assert len(attempts) == 3
    assert [t["try"] for t in ev.store.tries(ev.run_id)] == [1, 2]


def test_a_flow_and_the_classic_api_make_the_same_step_of_one_mark(make_eventor):
    marked = flaky_twice([])

    class Retried(Flow):
        go = Event()
        flaky = marked

    ev = make_eventor()
    ev.add_event("go")
    classic = ev.add_step(marked)
    declared = Retried.graph.steps["flaky"]
    assert classic.options == declared.options
    assert classic.triggers == declared.triggers


@pytest.mark.slow
def test_the_classic_api_keeps_the_timeout_of_a_marked_function(make_eventor):
    @step(on="go", timeout=0.5, timeout_grace=0.1, executor="process")
    def stuck():
        time.sleep(60)

    ev = make_eventor()
    ev.add_event("go")
    ev.add_step(stuck)
    ev.trigger_event("go")
    started = time.monotonic()
    assert not ev.run()
    assert time.monotonic() - started < 30
    (task,) = ev.store.tasks(ev.run_id)
    assert (task["status"], task["error_type"]) == ("failure", "StepTimeout")
    assert "timed out after 0.5 s" in task["error_message"]


def test_arguments_given_to_add_step_win_over_the_mark(make_eventor):
    ev = make_eventor()
    ev.add_event("go")
    spec = ev.add_step(flaky_twice([]), config={"retries": 5})
    assert spec.options.retries == 5 and spec.options.executor is None
