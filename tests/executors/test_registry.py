"""Executor names: per-step choices, Eventor 5.1 spellings, and mistakes."""

from __future__ import annotations

import os
import threading

import pytest

import eventor as evr


def test_per_step_task_construct_overrides_the_default(make_eventor):
    ev = make_eventor(config={"task_construct": "process"})
    e = ev.add_event("e")
    ev.add_assoc(e, ev.add_step("here", func=os.getpid, config={"task_construct": "invoke"}),
                 ev.add_step("child", func=os.getpid))
    ev.trigger_event(e)
    assert ev.run()
    pids = {t["step"]: int(t["result"]) for t in ev.store.tasks(ev.run_id)}
    assert pids["here"] == os.getpid() != pids["child"]


def test_seed_spellings_of_task_construct_are_accepted(make_eventor):
    import multiprocessing

    for construct, expected in ((threading.Thread, "thread"), (multiprocessing.Process, "process"),
                                ("threading.Thread", "thread"),  # as a YAML config says them
                                ("multiprocessing.Process", "process")):
        ev = make_eventor(config={"task_construct": construct})
        e = ev.add_event("e")
        ev.add_assoc(e, ev.add_step("s", func=lambda: 1))
        ev.trigger_event(e)
        assert ev.run()
        assert ev.store.tasks(ev.run_id)[0]["executor"] == expected


def test_an_unknown_task_construct_is_a_definition_error_naming_the_step(make_eventor):
    # One check for every step option, in both front ends: @step(executor="fiber") fails alike.
    # The classic API finds it as the step is added, not at run().
    ev = make_eventor()
    with pytest.raises(evr.FlowDefinitionError,
                       match="step 's': executor='fiber' is unknown. Use one of 'process', "):
        ev.add_step("s", func=print, config={"task_construct": "fiber"})


def test_an_unknown_default_task_construct_is_a_config_error_when_read(make_eventor):
    with pytest.raises(evr.EventorConfigError, match="task_construct: executor='fiber' is unknown"):
        make_eventor(config={"task_construct": "fiber"})
