"""What a step sees (StepContext) and what a run returns (RunResult, stored results)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import eventor as evr
from eventor import Event, Flow, step
from eventor.context import decode_result


def test_the_step_context_describes_the_task(opts):
    class Probe(Flow):
        start = Event()

        @step(on=start)
        def probe(self, ctx):
            ctx.log.info("probing", n=1)
            return {"run_id": ctx.run_id, "sequence": ctx.sequence, "step": ctx.step,
                    "recovery": ctx.recovery, "results": dict(ctx.results),
                    "env": os.environ.get("EVENTOR_STEP_NAME")}

    flow = Probe(executor="process", **opts)
    result = flow.run(sequence="s1")
    assert result["probe"] == {"run_id": flow.run_id, "sequence": "s1", "step": "probe",
                               "recovery": 0, "results": {}, "env": "probe"}
    flow.close()


def _in_a_fresh_interpreter(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` where structlog is not imported yet; it must succeed."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def test_ctx_log_first_used_in_a_thread_step_does_not_hang_a_worker_forked_meanwhile(tmp_path):
    # structlog is imported on the first ctx.log (here from a helper, so not before the run):
    # a worker forked while a thread step is in the middle of that import would find the
    # module's lock held forever. A fresh interpreter, where structlog is not loaded yet.
    code = (
        "import eventor as evr\n"
        "def say(ctx, what):\n"
        "    ctx.log.info(what)\n"
        "class Mixed(evr.Flow):\n"
        "    go = evr.Event(entry=True)\n"
        "    @evr.step(on=go, executor='thread')\n"
        "    def a(self, ctx):\n"
        "        say(ctx, 'from a thread')\n"
        "    @evr.step(on=go, executor='process', config={'timeout': 10})\n"
        "    def b(self, ctx):\n"
        "        say(ctx, 'from a process')\n"
        f"result = Mixed(store={str(tmp_path / 'mixed.db')!r}).run()\n"
        "assert result.status == 'success', result.task('b').error\n"
    )
    _in_a_fresh_interpreter(code)


def test_a_flow_whose_steps_read_ctx_log_imports_structlog_before_its_workers_fork(tmp_path):
    # Its process workers inherit structlog rather than each importing it (70-130 ms).
    code = (
        "import sys, eventor as evr\n"
        "class Logs(evr.Flow):\n"
        "    go = evr.Event(entry=True)\n"
        "    @evr.step(on=go, executor='process')\n"
        "    def hello(self, ctx):\n"
        "        inherited = 'structlog' in sys.modules\n"
        "        ctx.log.info('hello')\n"
        "        return inherited\n"
        f"result = Logs(store={str(tmp_path / 'logs.db')!r}).run()\n"
        "assert result['hello'] is True, result['hello']\n"
    )
    done = _in_a_fresh_interpreter(code)
    assert "hello" in done.stderr


def test_results_that_are_not_json_are_refused_unless_the_flow_stores_pickles(opts):
    class Objects(Flow):
        start = Event()
        made = Event()

        @step(on=start, success=made)
        def make(self):
            return {1, 2, 3}

        @step(on=made)
        def use(self, ctx):
            return sorted(ctx.results["make"])

    plain = Objects(executor="process", **opts).run()
    assert not plain
    assert "returned a value that is not JSON-serializable" in plain.task("use").error
    assert "pickle_results=True" in plain.task("use").error
    with pytest.raises(evr.ResultNotStoredError, match=r"only its repr was stored: \{1, 2, 3\}"):
        plain["make"]

    pickled = Objects(executor="process", pickle_results=True, **opts).run()
    assert pickled
    assert pickled["make"] == {1, 2, 3}
    assert pickled["use"] == [1, 2, 3]


def test_missing_results_name_the_steps_that_have_some(opts):
    class Early(Flow):
        start = Event()
        done = Event()

        @step(on=start, success=done)
        def first(self):
            return 1

        @step(on=done)
        def second(self, ctx):
            return ctx.results["nope"]

    result = Early(executor="invoke", **opts).run()
    assert "no result from step 'nope' in sequence '0'" in result.task("second").error
    assert "steps with results: 'first'" in result.task("second").error


def test_a_stored_result_decodes_to_the_value_or_says_why_it_cannot():
    assert decode_result("s", "json", '{"a": [1, 2]}') == {"a": [1, 2]}
    assert decode_result("s", None, None) is None
    with pytest.raises(evr.ResultNotStoredError, match="step 's' returned a value that is not JSON"):
        decode_result("s", "repr", "<object at 0x1>")
    with pytest.raises(evr.ResultNotStoredError, match="reading a pickle runs code") as info:
        decode_result("s", "pickle", "gASVAAAA")
    assert info.value.step == "s"


def test_a_run_result_names_the_steps_and_sequences_it_has(opts):
    class Two(Flow):
        start = Event()

        @step(on=start)
        def only(self, ctx):
            return ctx.sequence

    flow = Two(executor="invoke", **opts)
    flow.trigger("start", "a")
    flow.trigger("start", "b")
    result = flow.run()
    flow.close()
    assert result["only", "a"] == "a" and result.statuses == {("only", "a"): "success",
                                                              ("only", "b"): "success"}
    with pytest.raises(KeyError, match=r"ran in several sequences \('a', 'b'\)"):
        result["only"]
    with pytest.raises(KeyError, match=r"step 'other' did not run \(steps that ran: only\)"):
        result["other"]



def test_a_step_reads_the_results_kept_before_it_started_and_no_later_ones(tmp_path):
    import threading

    seen = {}
    fast_kept = threading.Event()

    class Both(evr.Flow):
        start = evr.Event(entry=True)
        a_done = evr.Event()

        @evr.step(on=start, success=a_done, executor="thread")
        def a(self):
            return "a"

        @evr.step(on=a_done, executor="thread")
        def slow(self, ctx):  # starts with fast, reads after fast's result was kept
            fast_kept.wait(10)
            seen["slow"] = dict(ctx.results)
            seen["has_fast"] = "fast" in ctx.results

        @evr.step(on=a_done, executor="thread")
        def fast(self):
            threading.Timer(0.3, fast_kept.set).start()  # its outcome reaches the engine first
            return "fast"

    result = Both(store=str(tmp_path / "w.run.db"), config={"LOGGING": {"console": False}}).run()
    assert result and result["fast"] == "fast"
    assert seen == {"slow": {"a": "a"}, "has_fast": False}
