"""Retries (each try recorded; only the final outcome fires events) and timeouts."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import eventor as evr
from eventor import Event, Flow, step

QUIET = {"LOGGING": {"console": False}, "task_construct": "thread"}


class Flaky:
    """A callable that fails its first ``failures`` calls with ``error``."""

    def __init__(self, failures, error=ValueError):
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"try {self.calls} fails")
        return f"ok after {self.calls}"


def flow_with(make_eventor, func, config=None, step_config=None, clock=None):
    """go -> s; s's success fires done (-> after), its failure fires failed (-> alert)."""
    ev = make_eventor(config=config, clock=clock)
    go, done, failed = ev.add_event("go"), ev.add_event("done"), ev.add_event("failed")
    ev.add_step("s", func, config=step_config,
                triggers={evr.STEP_SUCCESS: done, evr.STEP_FAILURE: failed})
    ev.add_step("after", lambda: "after")
    ev.add_step("alert", lambda: "alert")
    ev.add_assoc(go, "s")
    ev.add_assoc(done, "after")
    ev.add_assoc(failed, "alert")
    ev.trigger_event(go, 1)
    return ev


def outcome(ev):
    tasks = {t["step"]: (t["status"], t["result"]) for t in ev.store.tasks(ev.run_id)}
    tries = [(t["try"], t["error_type"], t["error_message"]) for t in ev.store.tries(ev.run_id)]
    fired = [t["event"] for t in ev.store.triggers(ev.run_id)]
    return tasks, tries, fired


def test_a_retried_step_records_each_try_and_fires_only_its_final_outcome(make_eventor):
    flaky = Flaky(2)
    ev = flow_with(make_eventor, flaky, step_config={"retries": 2})
    assert ev.run()
    tasks, tries, fired = outcome(ev)
    assert tasks == {"s": ("success", '"ok after 3"'), "after": ("success", '"after"')}
    assert tries == [(1, "ValueError", "try 1 fails"), (2, "ValueError", "try 2 fails")]
    assert fired == ["go", "done"]


def test_when_retries_run_out_the_failure_fires_once(make_eventor):
    ev = flow_with(make_eventor, Flaky(5), step_config={"retries": 1})
    assert ev.run()  # the failure is handled by the alert branch
    tasks, tries, fired = outcome(ev)
    assert tasks["s"] == ("failure", None) and tasks["alert"] == ("success", '"alert"')
    assert [t for t, _, _ in tries] == [1]
    assert fired == ["go", "failed"]
    assert ev.store.tasks(ev.run_id)[0]["error_message"] == "try 2 fails"


def test_retry_on_limits_which_errors_are_retried(make_eventor):
    ev = flow_with(make_eventor, Flaky(1, KeyError),
                   step_config={"retries": 3, "retry_on": (ValueError, TimeoutError)})
    ev.run()
    tasks, tries, _ = outcome(ev)
    assert tasks["s"][0] == "failure" and tries == []  # KeyError is not retried
    ev2 = flow_with(make_eventor, Flaky(1, UnicodeDecodeError.__mro__[1]),  # a ValueError subclass
                    step_config={"retries": 3, "retry_on": ValueError})
    assert ev2.run() and outcome(ev2)[0]["s"][0] == "success"


def test_retry_delays_back_off_up_to_their_cap_on_an_injected_clock(make_eventor):
    clock = evr.MockClock()
    ev = flow_with(make_eventor, Flaky(3), clock=clock,
                   step_config={"retries": 3, "retry_delay": 10, "backoff": 2,
                                "max_retry_delay": 15})
    assert ev.run()
    tries = ev.store.tries(ev.run_id)
    final = ev.store.tasks(ev.run_id)[0]
    starts = [t["started_at"] for t in tries] + [final["started_at"]]
    ends = [t["ended_at"] for t in tries]
    assert [round(s - e) for e, s in zip(ends, starts[1:], strict=True)] == [10, 15, 15]


def test_the_engine_default_applies_to_every_step(make_eventor):
    ev = flow_with(make_eventor, Flaky(1), config={"retries": 1})
    assert ev.run() and outcome(ev)[0]["s"][0] == "success"


def sleeper(seconds, pidfile=None, ignore_term=False):
    if pidfile:
        with open(pidfile, "w") as f:
            f.write(str(os.getpid()))
    if ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)
    return "woke"


def test_a_process_step_past_its_timeout_is_killed_and_fails(make_eventor, tmp_path):
    pidfile = tmp_path / "pid"
    ev = flow_with(make_eventor, lambda: sleeper(30, pidfile),
                   config={"task_construct": "process"}, step_config={"timeout": 2})
    began = time.monotonic()
    assert ev.run()  # handled by the alert branch
    assert time.monotonic() - began < 10
    task = ev.store.tasks(ev.run_id)[0]
    assert (task["status"], task["error_type"]) == ("failure", "StepTimeout")
    assert task["error_message"] == "step 's' timed out after 2 s and was stopped"
    with pytest.raises(ProcessLookupError):
        os.kill(int(pidfile.read_text()), 0)


def test_a_process_that_ignores_sigterm_gets_sigkill_after_the_grace(make_eventor):
    ev = flow_with(make_eventor, lambda: sleeper(30, ignore_term=True),
                   config={"task_construct": "process"},
                   step_config={"timeout": 2, "timeout_grace": 0.2})
    began = time.monotonic()
    ev.run()
    assert time.monotonic() - began < 10
    task = ev.store.tasks(ev.run_id)[0]
    assert task["error_type"] == "StepTimeout" and task["exit_code"] == -signal.SIGKILL


def test_a_worker_whose_step_survived_sigterm_is_not_killed_under_the_next_task(
        make_eventor, tmp_path):
    marker = tmp_path / "tried"

    def stubborn_once():  # the first try turns SIGTERM into an exception, as some apps do
        if marker.exists():
            time.sleep(1.0)  # the retry outlasts the first try's grace
            return os.getpid()
        marker.touch()

        def on_term(signum, frame):
            raise RuntimeError("stopping")

        signal.signal(signal.SIGTERM, on_term)
        time.sleep(30)

    ev = flow_with(make_eventor, stubborn_once,
                   config={"task_construct": "process", "process_workers": 1},
                   step_config={"timeout": 2, "timeout_grace": 0.5, "retries": 1})
    assert ev.run()
    tasks, tries, _ = outcome(ev)
    assert [(t, e) for t, e, _ in tries] == [(1, "StepTimeout")]
    assert tasks["s"][0] == "success"  # not SIGKILLed by the first try's grace timer


def test_a_thread_step_past_its_timeout_fails_and_is_abandoned(make_eventor, caplog):
    release = threading.Event()
    ev = flow_with(make_eventor, lambda: release.wait(30),
                   step_config={"timeout": 0.2, "timeout_grace": 0.3})
    began = time.monotonic()
    try:
        assert ev.run()
        assert time.monotonic() - began < 10  # the run did not wait for the thread
        task = ev.store.tasks(ev.run_id)[0]
        assert task["error_message"] == (
            "step 's' timed out after 0.2 s; its thread cannot be stopped and was left to "
            "finish unobserved")
        ev.close()  # returns after the step's grace, and says which step it left running
        assert "Step s[1] timed out and still runs in thread eventor-step-0 after its " \
            "timeout_grace; close() leaves it" in caplog.text
    finally:
        release.set()


def test_close_waits_for_a_timed_out_thread_step_within_its_grace(make_eventor, tmp_path):
    marker, ran_in = tmp_path / "finished", []

    def slow() -> None:
        ran_in.append(threading.current_thread())
        time.sleep(1.0)
        marker.write_text("done")  # what a step past its timeout still does

    ev = flow_with(make_eventor, slow, step_config={"timeout": 0.2, "timeout_grace": 20})
    assert ev.run()
    ev.close()
    assert marker.read_text() == "done" and not ran_in[0].is_alive()  # nothing left behind


def test_a_timeout_is_retried_like_any_failure(make_eventor, tmp_path):
    marker = tmp_path / "tried"

    def slow_once():  # each try runs in its own worker process: count in a file
        first = not marker.exists()
        marker.touch()
        time.sleep(30 if first else 0)
        return "quick"

    ev = flow_with(make_eventor, slow_once, config={"task_construct": "process"},
                   step_config={"timeout": 2, "retries": 1})
    assert ev.run()
    tasks, tries, _ = outcome(ev)
    assert tasks["s"] == ("success", '"quick"')
    assert [(t, e) for t, e, _ in tries] == [(1, "StepTimeout")]


def test_a_timeout_in_the_engine_thread_is_refused_when_the_step_is_added(make_eventor):
    with pytest.raises(evr.EventorConfigError, match="runs in the engine's thread .invoke."):
        flow_with(make_eventor, lambda: 1, config={"task_construct": "invoke"},
                  step_config={"timeout": 1})


def test_flow_steps_take_retries_and_timeouts_and_bad_values_fail_at_definition(tmp_path):
    attempts = []

    class Retried(Flow):
        start = Event()

        @step(on=start, retries=2, retry_on=ValueError, timeout=5, executor="thread")
        def shaky(self):
            attempts.append(1)
            if len(attempts) < 3:
                raise ValueError("not yet")
            return len(attempts)

    assert Retried.graph.steps["shaky"].config["retries"] == 2
    result = Retried(store=str(tmp_path / "r.db"), config=QUIET).run()
    assert result["shaky"] == 3

    with pytest.raises(evr.FlowDefinitionError) as info:
        class Bad(Flow):
            start = Event()

            @step(on=start, retries=-1, timeout=0, retry_on="ValueError",
                  config={"retires": 2})
            def s(self): ...

    text = str(info.value)
    assert "retries=-1 is not an int >= 0" in text
    assert "timeout=0 is not a number of seconds > 0" in text
    assert "retry_on='ValueError' is not an exception class or a tuple of them" in text
    assert "config key 'retires' is unknown. Did you mean 'retries'?" in text


def test_a_step_opts_out_of_the_default_timeout_with_none(make_eventor):
    ev = flow_with(make_eventor, lambda: time.sleep(0.6) or "slow",
                   config={"task_construct": "thread", "timeout": 0.3},
                   step_config={"timeout": None})
    assert ev.run()
    assert outcome(ev)[0]["s"] == ("success", '"slow"')


def test_a_default_timeout_of_zero_means_none():
    assert evr.load_config({"timeout": 0}).engine_options().steps.timeout is None


def test_a_timeout_holds_while_a_bounded_run_waits_for_its_running_tasks(make_eventor):
    ev = flow_with(make_eventor, lambda: time.sleep(5) or "late",
                   config={"task_construct": "process"},
                   step_config={"timeout": 0.3, "timeout_grace": 0.1})
    started = time.monotonic()
    ev.run(max_loops=1)
    assert time.monotonic() - started < 4
    assert outcome(ev)[0]["s"][0] == "failure"  # stopped at 0.3 s, not left to finish
