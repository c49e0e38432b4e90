"""Validation: every problem of a graph is found at once, each with the culprit and the fix."""

from __future__ import annotations

import pytest

import eventor as evr
from eventor.builder import GraphBuilder
from eventor.graph import StepSpec, or_


def test_every_problem_is_reported_at_once_with_did_you_mean():
    b = GraphBuilder("bad")
    b.add_event("run_step1", where="f.py:1")
    b.add_event("run_step2")
    b.add_event("both", expr=("run_step1", "run_stpe2"))
    b.add_step(StepSpec.make("s1", triggers={"sucess": "run_step2", evr.STEP_FAILURE: "oops"}))
    b.add_step(StepSpec.make("s1"))
    b.add_assoc("run_step1", "s9", delay=-1)
    with pytest.raises(evr.FlowDefinitionError) as info:
        b.build()
    err = info.value
    text = str(err)
    assert isinstance(err, TypeError) and isinstance(err, evr.EventorError)
    assert err.flow == "bad"
    assert len(err.problems) == 6, text
    assert "unknown event 'run_stpe2'" in text and "Did you mean 'run_step2'?" in text
    assert "triggers key 'sucess' is not a step status. Did you mean 'success'?" in text
    assert "triggers unknown event 'oops' on failure" in text
    assert "step 's1': the name is already used by a step" in text
    assert "'s9' is neither an event nor a step" in text
    assert "delay -1 is not a number of seconds >= 0" in text


def test_event_and_step_may_not_share_a_name():
    b = GraphBuilder("g")
    b.add_event("x")
    b.add_step(StepSpec.make("x"))
    with pytest.raises(evr.FlowDefinitionError, match="already used by an event"):
        b.build()


def test_an_expression_that_depends_on_itself_is_rejected():
    b = GraphBuilder("g")
    b.add_event("a")
    b.add_event("b", expr=or_("a", "c"))
    b.add_event("c", expr=("b", "a"))
    with pytest.raises(evr.FlowDefinitionError, match="depends on itself"):
        b.build()


def test_bad_recovery_and_acquires_are_reported():
    b = GraphBuilder("g")
    b.add_step(StepSpec.make("s", recovery={"done": "again"}, acquires=[("pool", 0)]))
    with pytest.raises(evr.FlowDefinitionError) as info:
        b.build()
    text = str(info.value)
    assert "recovery key 'done' is not a step status" in text
    assert "recovery value 'again'" in text
    assert "acquires item ('pool', 0)" in text


def test_every_bad_step_option_is_reported_with_its_step_and_fix():
    b = GraphBuilder("g")
    b.add_step(StepSpec.make("a", config={"retries": -1, "timeout": 0, "retires": 2}))
    b.add_step(StepSpec.make("b", config={"max_concurrent": 0, "backoff": 0.5,
                                          "stop_on_exception": "yes"}))
    with pytest.raises(evr.FlowDefinitionError) as info:
        b.build()
    text = str(info.value)
    assert "has 6 problems" in text
    assert "step 'a': config key 'retires' is unknown. Did you mean 'retries'?" in text
    assert "step 'a': retries=-1 is not an int >= 0. Give retries an int >= 0." in text
    assert "step 'a': timeout=0 is not a number of seconds > 0." in text
    assert "step 'b': max_concurrent=0 is not a positive int or -1 (no limit)." in text
    assert "step 'b': backoff=0.5 is not a factor >= 1." in text
    assert "step 'b': stop_on_exception='yes' is not True or False." in text


def test_what_a_steps_executor_cannot_do_is_reported_when_the_flow_is_defined():
    with pytest.raises(evr.FlowDefinitionError) as info:
        class Bad(evr.Flow):
            go = evr.Event(entry=True)

            @evr.step(on=go, executor="invoke", timeout=1)
            def stuck(self):
                pass

            @evr.step(on=go, executor="ssh")
            def away(self):
                pass

    text = str(info.value)
    assert "flow 'Bad' has 2 problems" in text
    assert ("step 'stuck': it has timeout=1, but runs in the engine's thread (executor='invoke'), "
            "where nothing can stop it. Run it with executor='process' or 'thread'") in text
    assert "step 'away': executor='ssh' names no host to run it on. Give it host=..." in text
    with pytest.raises(evr.FlowDefinitionError, match=r"step 's': it has timeout=5, but runs in "
                       r"the engine's thread \(the flow's executor='invoke'\)"):
        class Inline(evr.Flow, executor="invoke"):
            go = evr.Event(entry=True)

            @evr.step(on=go, timeout=5)
            def s(self):
                pass

    class Remote(evr.Flow):  # a step with a host runs there over ssh, whatever its executor
        go = evr.Event(entry=True)

        @evr.step(on=go, executor="invoke", timeout=5, host="worker")
        def s(self):
            pass

    ev = evr.Eventor(name="classic", store=":memory:", config={"LOGGING": {"console": False}})
    with pytest.raises(evr.FlowDefinitionError, match="nothing can stop it"):
        ev.add_step("s", func=print, config={"task_construct": "invoke", "timeout": 5})
    with pytest.raises(evr.FlowDefinitionError, match="'retires' is unknown. Did you mean 'retries'"):
        ev.add_step("t", func=print, config={"retires": 2})  # as it is added, not at run()


def test_a_valid_graph_passes_and_is_frozen():
    b = GraphBuilder("g")
    b.add_event("go")
    b.add_step(StepSpec.make("s", config={"retries": 2, "task_construct": "thread"}))
    b.add_assoc("go", "s")
    graph = b.build()
    assert graph.steps["s"].options.retries == 2
    assert graph.steps["s"].config == {"retries": 2, "task_construct": "thread"}
