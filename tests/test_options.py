"""Step options: one declaration per option, read from @step, add_step(config=...) and the config."""

from __future__ import annotations

import pytest

import eventor as evr
from eventor.config import load_config
from eventor.options import DEFAULTS, UNSET, EngineOptions, StepOptions


def test_config_keys_become_options_and_unknown_keys_are_kept_for_validation():
    options = StepOptions.from_config({"task_construct": "thread", "retries": 2, "colour": "red"})
    assert (options.executor, options.retries, options.timeout) == ("thread", 2, None)
    assert dict(options.unknown) == {"colour": "red"}
    assert options.to_config() == {"task_construct": "thread", "retries": 2, "colour": "red"}
    assert StepOptions.from_config(None) is UNSET and UNSET.is_unset()


def test_options_left_unset_take_the_engine_defaults():
    defaults = EngineOptions().steps.with_values(retries=3, timeout=9.0)
    resolved = StepOptions(retries=1).over(defaults)
    assert (resolved.retries, resolved.timeout, resolved.executor) == (1, 9.0, "process")
    assert UNSET.over(defaults) == defaults


def test_the_config_sets_defaults_for_every_step_and_keyword_options_win():
    config = load_config({"retries": 2, "retry_delay": 1.5, "timeout": 30, "max_concurrent": 4,
                          "task_construct": "thread"})
    engine = config.engine_options(executor="invoke")
    assert engine.max_concurrent == 4 and engine.thread_workers == 4
    assert (engine.steps.retries, engine.steps.retry_delay, engine.steps.timeout) == (2, 1.5, 30)
    assert engine.steps.executor == "invoke"
    assert engine.for_step(StepOptions(retries=0)).retries == 0


@pytest.mark.parametrize(("key", "value", "message"), [
    ("retries", -1, "EVENTOR.retries: retries=-1 is not an int >= 0"),
    ("backoff", 0.5, "EVENTOR.backoff: backoff=0.5 is not a factor >= 1"),
    ("task_construct", "fiber", "EVENTOR.task_construct: executor='fiber' is unknown"),
    ("timeout", -5, "EVENTOR.timeout: timeout=-5 is not a number of seconds > 0"),
])
def test_a_bad_default_in_the_config_fails_when_read(key, value, message):
    with pytest.raises(evr.EventorConfigError, match=message):
        load_config({"EVENTOR": {key: value}})


def test_step_takes_every_option_by_keyword_and_records_it_unchecked():
    @evr.step(on="go", retries=2, timeout=1.5, timeout_grace=0.5, max_concurrent=1,
              stop_on_exception=False, executor="thread")
    def s():
        return None

    options = s.__eventor_step__.options
    assert options == StepOptions(executor="thread", max_concurrent=1, stop_on_exception=False,
                                  retries=2, timeout=1.5, timeout_grace=0.5)
    with pytest.raises(evr.FlowDefinitionError, match="'retires' is not an option. Did you mean 'retries'?"):
        evr.step(retires=2)


def test_a_config_with_nothing_set_gives_every_step_the_documented_defaults():
    assert load_config().step_defaults().over(DEFAULTS) == DEFAULTS
    assert load_config().engine_options().steps == DEFAULTS


def test_a_step_option_set_to_none_means_none_whatever_the_default():
    defaults = DEFAULTS.with_values(timeout=30.0, max_retry_delay=5.0)
    resolved = StepOptions.from_config({"timeout": None, "max_retry_delay": None}).over(defaults)
    assert (resolved.timeout, resolved.max_retry_delay) == (None, None)
    assert StepOptions.from_config({"timeout": None}).to_config() == {"timeout": None}


def test_a_step_keyword_set_to_none_opts_out_of_the_default_too(make_eventor):
    import time

    @evr.step(on="go", timeout=None)
    def slow():
        time.sleep(0.5)
        return "slow"

    ev = make_eventor(config={"timeout": 0.2})
    ev.add_event("go")
    ev.add_step(slow)
    ev.trigger_event("go")
    assert ev.run()
