"""The Eventor 5.1 imperative API: its surface, its errors, and its programs."""

from __future__ import annotations

import pytest

import eventor as evr
from tests.conftest import statuses


def test_the_seed_constants_and_enums_are_there():
    assert evr.StepStatus.success is evr.STEP_SUCCESS
    assert [s.value for s in evr.StepStatus] == ["ready", "active", "success", "failure", "complete"]
    assert (evr.StepReplay.rerun, evr.StepReplay.skip) == (evr.STEP_RERUN, evr.STEP_SKIP)
    assert tuple(evr.RunMode) == (evr.RUN_RESTART, evr.RUN_RECOVER, evr.RUN_CONTINUE)


def test_add_methods_return_specs_usable_by_name_or_object(make_eventor):
    ev = make_eventor()
    e1 = ev.add_event("e1")
    s = ev.add_step("s", triggers={"success": "e2"})
    ev.add_event("e2")
    ev.add_assoc("e1", s)
    ev.add_assoc(e1, "e2")
    ev.trigger_event("e1", 1)
    assert ev.run()
    assert statuses(ev) == {("s", "1"): "success"}
    assert ev.graph.assocs_from("e1")[1].target == "e2"


def test_args_and_kwargs_reach_the_step(make_eventor):
    ev = make_eventor()
    e = ev.add_event("e")
    ev.add_assoc(e, ev.add_step("s", func=lambda a, b, c=0: a + b + c, args=(1, 2),
                                kwargs={"c": 3}))
    ev.trigger_event(e)
    assert ev.run()
    assert ev.store.tasks(ev.run_id)[0]["result"] == "6"


def test_a_duplicate_name_fails_at_the_call_that_adds_it(make_eventor):
    ev = make_eventor()
    ev.add_event("x")
    where = r"event 'x': the name is already used .*test_classic.py:\d+"
    with pytest.raises(evr.FlowDefinitionError, match=where):
        ev.add_event("x")


def test_unknown_events_are_reported_when_the_run_starts_with_did_you_mean(make_eventor):
    ev = make_eventor()
    ev.add_event("run_step1")
    ev.add_step("s1", triggers={evr.STEP_SUCCESS: "run_step2"})
    ev.add_assoc("run_step1", "s1")
    ev.add_assoc("run_stp1", "s1")
    with pytest.raises(evr.FlowDefinitionError) as info:
        ev.run()
    text = str(info.value)
    assert "triggers unknown event 'run_step2'" in text
    assert "'run_stp1' is not an event. Did you mean 'run_step1'?" in text


def test_triggering_an_unknown_event_names_it(make_eventor):
    ev = make_eventor()
    ev.add_event("start")
    with pytest.raises(evr.EventorUsageError, match="cannot trigger 'strat'.*Did you mean 'start'"):
        ev.trigger_event("strat")


def test_triggering_a_step_or_a_join_is_refused_when_triggered_not_at_run(make_eventor):
    ev = make_eventor()
    found, loaded = ev.add_event("found"), ev.add_event("loaded")
    all_loaded = ev.add_event("all_loaded", join=evr.join(loaded, over=found))
    ev.add_assoc(found, ev.add_step("load", func=lambda: None,
                                    triggers={evr.STEP_SUCCESS: loaded}))
    with pytest.raises(evr.EventorUsageError, match="'load': it is a step, not an event"):
        ev.trigger_event("load")
    with pytest.raises(evr.EventorUsageError, match="'all_loaded': it is a join"):
        ev.trigger_event(all_loaded)


def test_the_graph_is_frozen_once_run_started(make_eventor):
    ev = make_eventor()
    ev.add_event("e")
    ev.run()
    with pytest.raises(evr.EventorUsageError, match="after run\\(\\) started"):
        ev.add_step("late")


def test_a_closed_eventor_refuses_to_run(make_eventor):
    ev = make_eventor()
    ev.add_event("e")
    ev.close()
    with pytest.raises(evr.EventorUsageError, match="closed"):
        ev.run()
    ev.close()  # closing twice is harmless


def test_recovery_and_continue_of_an_empty_store_name_the_problem(tmp_path):
    for mode in (evr.RUN_RECOVER, evr.RUN_CONTINUE):
        with pytest.raises(evr.RunNotFoundError, match="no run of program .* to recover or continue"):
            evr.Eventor(store=str(tmp_path / "x.db"), run_mode=mode)


def test_an_undeclared_pool_and_an_unknown_host_are_refused_when_the_step_is_added(make_eventor):
    ev = make_eventor()
    ev.add_event("e")
    with pytest.raises(evr.EventorConfigError, match=r"POOLS.db: step 's' acquires pool 'db', "
                       r"which is not declared: declare it in the config"):
        ev.add_step("s", acquires=[("db", 1)], releases=[],
                    recovery={evr.STEP_FAILURE: evr.STEP_SKIP})
    s = make_eventor(config={"POOLS": {"db": 2}}).add_step(
        "s", acquires=[("db", 1)], releases=[], recovery={evr.STEP_FAILURE: evr.STEP_SKIP})
    assert s.acquires == (("db", 1),) and s.releases == ()
    ev2 = make_eventor(store=":memory:")
    ev2.add_event("e")
    with pytest.raises(evr.EventorConfigError, match=r"host 'far.example.com' is neither in HOSTS "
                       r"\(known: none\) nor a Host of .*; add it"):
        ev2.add_step("s", func=print, host="far.example.com")
    assert ev2.store.tasks(ev2.run_id) == []


def test_a_step_add_step_refuses_is_not_added_and_not_reported_again(make_eventor):
    ev = make_eventor()
    ev.add_event("go")
    with pytest.raises(evr.FlowDefinitionError, match="config key 'retires' is unknown"):
        ev.add_step("s", func=lambda: 1, config={"retires": 2})
    with pytest.raises(evr.FlowDefinitionError, match="triggers key 'succes' is not a step "
                       "status. Did you mean 'success'"):
        ev.add_step("s", func=lambda: 1, triggers={"succes": "go"})
    ev.add_assoc("go", ev.add_step("s", func=lambda: 1, config={"retries": 2}))  # mended
    ev.add_event("other")

    @evr.step(name="s", on="other")
    def again() -> int:
        return 2

    with pytest.raises(evr.FlowDefinitionError, match="the name is already used by a step"):
        ev.add_step(again)  # a taken name: nor is its association added
    ev.trigger_event("go")
    ev.trigger_event("other", 1)  # reaches no step
    assert ev.run() and statuses(ev) == {("s", "0"): "success"}
    assert ev.store.tasks(ev.run_id)[0]["result"] == "1"


def test_a_pool_a_step_declares_serves_the_steps_added_after_it(make_eventor):
    ev = make_eventor()
    with pytest.raises(evr.EventorConfigError, match="step 'first' acquires pool 'db'"):
        ev.add_step("first", acquires=[("db", 1)])
    # the refused step was not added: it can be added again, mended
    ev.add_step("first", acquires=[(evr.ResourcePool("db", 2), 1)])
    assert ev.add_step("second", acquires=[("db", 2)]).acquires == (("db", 2),)
    with pytest.raises(evr.EventorConfigError, match="acquires 3 of pool 'db', which has only 2"):
        ev.add_step("third", acquires=[("db", 3)])
    ev.add_event("go")
    ev.add_assoc("go", "first", "second")
    ev.trigger_event("go")
    assert ev.run() and sorted(statuses(ev).values()) == ["success", "success"]


def test_the_config_s_default_executor_is_held_to_a_step_s_timeout_when_it_is_added(make_eventor):
    ev = make_eventor(config={"task_construct": "invoke", "timeout": 5})
    with pytest.raises(evr.EventorConfigError, match="step 's' config timeout: it has "
                       "timeout=5, but runs in the engine's thread \\(invoke\\), where "
                       "nothing can stop it; .* or drop the timeout"):
        ev.add_step("s", func=print)
    assert make_eventor(config={"task_construct": "invoke"}).add_step(
        "s", func=print, config={"task_construct": "thread", "timeout": 5})


def test_run_ids_are_generated_unique_or_taken_as_given(make_eventor):
    a, b = make_eventor(store=":memory:"), make_eventor(store=":memory:")
    assert a.run_id != b.run_id
    assert make_eventor(store=":memory:", run_id="nightly-1").run_id == "nightly-1"


def test_the_seed_call_form_runs(make_eventor):
    ev = make_eventor()
    e = ev.add_event("e")
    ev.add_assoc(e, ev.add_step("s"))
    ev.trigger_event(e)
    assert ev() is True


def test_context_manager_closes(tmp_path):
    with evr.Eventor(store=str(tmp_path / "cm.db"), config={"LOGGING": {"console": False}}) as ev:
        ev.add_event("e")
    with pytest.raises(evr.EventorUsageError):
        ev.run()


def test_a_store_or_run_mode_that_is_no_such_thing_fails_at_once(tmp_path):
    with pytest.raises(evr.EventorConfigError, match="store=42 is not a store"):
        evr.Eventor(store=42)
    with pytest.raises(evr.EventorConfigError, match="run_mode='rewind' is not a run mode"):
        evr.Eventor(store=str(tmp_path / "x.db"), run_mode="rewind")
