"""Declarative flows run on the engine: parameters, results, dynamic triggers, subclasses."""

from __future__ import annotations

from datetime import date

import pytest

import eventor as evr
from eventor import Event, Flow, step
from eventor.testing import capture_events

QUIET = {"LOGGING": {"console": False}}


class Etl(Flow):
    day: str = "today"
    rows: int = 3

    start = Event()
    extracted = Event()
    checked = Event()
    ready = extracted & checked
    failed = Event()

    @step(on=start, success=extracted)
    def extract(self, ctx):
        return {"day": self.day, "rows": list(range(self.rows))}

    @step(on=start, success=checked, failure=failed)
    def check(self):
        if self.day == "bad":
            raise ValueError("bad day")

    @step(on=ready)
    def load(self, ctx):
        return len(ctx.results["extract"]["rows"])

    @step(on=failed)
    def alert(self, ctx):
        return f"alerted for {ctx.sequence}"


@pytest.mark.parametrize("executor", ["invoke", "thread", "process"])
def test_a_flow_runs_and_passes_results_on_every_executor(opts, executor):
    result = Etl(day="2026-11-01", executor=executor, **opts).run()
    assert result
    assert result.status == "success"
    assert result.statuses == {("extract", "0"): "success", ("check", "0"): "success",
                               ("load", "0"): "success"}
    assert result["extract"] == {"day": "2026-11-01", "rows": [0, 1, 2]}
    assert result["load"] == 3


def test_a_handled_failure_runs_the_failure_branch_and_the_run_succeeds(opts):
    result = Etl(day="bad", executor="invoke", **opts).run()
    assert result
    assert result.statuses == {("extract", "0"): "success", ("check", "0"): "failure",
                               ("alert", "0"): "success"}
    assert result.task("check").error == "ValueError: bad day"
    assert result["alert"] == "alerted for 0"


def test_an_unhandled_failure_makes_the_result_falsy(opts):
    class Fragile(Flow):
        start = Event()

        @step(on=start)
        def boom(self):
            raise RuntimeError("no")

    result = Fragile(executor="thread", **opts).run()
    assert not result
    assert result.status == "failure"
    assert result.failed == (("boom", "0"),)


def test_the_run_is_recorded_with_its_parameters(opts):
    flow = Etl(rows=5, **opts)
    result = flow.run()
    store = evr.Eventor(store=opts["store"], config=QUIET).store
    run = next(r for r in store.runs() if r["run_id"] == result.run_id)
    info = run["info"]
    assert (info["flow"], info["params"]) == ("Etl", {"day": "today", "rows": 5})
    assert set(info["fingerprint"]) == {"extract", "check", "load", "alert"}
    assert {t["step"] for t in store.tasks(result.run_id)} == {"extract", "check", "load"}
    store.close()
    flow.close()


def test_parameters_are_checked_by_type_and_name():
    with pytest.raises(evr.ParameterError, match="parameter 'rows' expects int, got str '3'"):
        Etl(rows="3")
    with pytest.raises(evr.ParameterError, match="has no parameter 'dya'. Did you mean 'day'?"):
        Etl(dya="x")

    class Needs(Flow):
        when: date
        ratio: float = 1.0
        note: str | None = None
        start = Event()

        @step(on=start)
        def s(self): ...

    with pytest.raises(evr.ParameterError, match=r"needs parameter 'when' \(date\)"):
        Needs()
    flow = Needs(when=date(2026, 11, 1), ratio=2, note=None)
    assert (flow.when, flow.ratio, flow.note) == (date(2026, 11, 1), 2, None)
    assert isinstance(evr.ParameterError("x", flow="f"), TypeError)


def test_many_sequences_run_in_one_run(opts):
    flow = Etl(executor="thread", **opts)
    for day in ("mon", "tue", "wed"):
        flow.trigger(Etl.start, day)
    result = flow.run()
    assert result
    assert sorted(s for (step_, s) in result.statuses if step_ == "load") == ["mon", "tue", "wed"]
    with pytest.raises(KeyError, match=r"ran in several sequences .* result\['load', sequence\]"):
        result["load"]
    assert result["load", "tue"] == 3
    flow.close()


def test_later_runs_continue_the_run_and_a_sequence_adds_one(opts):
    with Etl(executor="invoke", **opts) as flow:
        first = flow.run()
        again = flow.run()
        third = flow.run(sequence="x")
    assert first.run_id == again.run_id == third.run_id
    assert len(again.tasks) == 3  # nothing new ran
    assert {s for (_, s) in third.statuses} == {"0", "x"}


def test_triggering_an_unknown_event_says_which_exist(opts):
    with Etl(**opts) as flow, pytest.raises(evr.EventorUsageError, match="Did you mean 'start'"):
        flow.trigger("strat")


def test_a_closed_flow_cannot_run_again(opts):
    flow = Etl(executor="invoke", **opts)
    flow.run()
    flow.close()
    with pytest.raises(evr.EventorUsageError, match="is closed"):
        Etl(executor="invoke", **opts).close() or flow.run(sequence="late")


# -- dynamic triggers --------------------------------------------------------------------


class Loops(Flow):
    """A loop over items, one sequence each, and a nested loop inside each item."""

    start = Event(entry=True)  # item and part are fired only by ctx.trigger: not entries
    item = Event()
    part = Event()

    @step(on=start)
    def fan_out(self, ctx):
        for i in [1, 2, 3]:
            ctx.trigger(self.item, f"{i}")

    @step(on=item)
    def per_item(self, ctx):
        for j in ["a", "b"]:
            ctx.trigger("part", f"{ctx.sequence}.{j}")
        return int(ctx.sequence)

    @step(on=part)
    def per_part(self, ctx):
        return ctx.sequence


def test_ctx_trigger_fans_out_into_new_sequences_and_nested_loops(opts):
    result = Loops(executor="invoke", **opts).run()
    assert result
    assert [(t.step, t.sequence) for t in result.tasks] == [
        ("fan_out", "0"),
        ("per_item", "1"), ("per_item", "2"), ("per_item", "3"),
        ("per_part", "1.a"), ("per_part", "1.b"), ("per_part", "2.a"), ("per_part", "2.b"),
        ("per_part", "3.a"), ("per_part", "3.b"),
    ]
    assert result["per_part", "2.b"] == "2.b"
    store = evr.Eventor(store=opts["store"], config=QUIET).store
    sources = {(t["event"], t["sequence"]): t["source"] for t in store.triggers(result.run_id)}
    store.close()
    assert sources[("item", "2")] == "fan_out[0]:trigger"
    assert sources[("part", "3.a")] == "per_item[3]:trigger"


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_ctx_trigger_works_from_threads_and_processes(opts, executor):
    result = Loops(executor=executor, **opts).run()
    assert result
    assert sorted(result.statuses) == sorted(
        [("fan_out", "0")] + [("per_item", str(i)) for i in (1, 2, 3)]
        + [("per_part", f"{i}.{j}") for i in (1, 2, 3) for j in "ab"]
    )
    assert set(result.statuses.values()) == {"success"}


def test_ctx_trigger_of_an_unknown_event_fails_the_step_with_the_fix(opts):
    class Typo(Flow):
        start = Event()
        item = Event()

        @step(on=start)
        def fan_out(self, ctx):
            ctx.trigger("itme", 1)

        @step(on=item)
        def handle(self): ...

    result = Typo(executor="process", **opts).run()
    assert not result
    assert result.task("fan_out").error == (
        "EventorUsageError: ctx.trigger('itme'): flow 'Typo' has no such event. Did you mean 'item'?")


def test_a_loop_that_retriggers_its_own_entry_ends_when_the_step_stops(opts):
    class Countdown(Flow):
        tick = Event(entry=True)

        @step(on=tick)
        def count(self, ctx):
            n = int(ctx.sequence)
            if n < 4:
                ctx.trigger(self.tick, n + 1)
            return n

    result = Countdown(executor="thread", **opts).run()
    assert [result["count", n] for n in range(5)] == [0, 1, 2, 3, 4]


# -- context and results ---------------------------------------------------------------


# -- subclasses, function steps, the decorator, the classic API ------------------------


class Daily(Etl):
    reported = Event()

    @step(on=Etl.extracted, success=reported)
    def load(self, ctx):
        return "replaced"

    @step(on=reported)
    def report(self, ctx):
        return f"{ctx.results['load']} for {self.day}"

    def check(self):
        super().check()
        return "checked twice"


def test_a_subclass_runs_its_replacements_extensions_and_super_calls(opts):
    result = Daily(day="fri", executor="process", **opts).run()
    assert result
    assert [t.step for t in result.tasks] == ["extract", "check", "load", "report"]
    assert result["report"] == "replaced for fri"
    assert result["check"] == "checked twice"


@step(on="start", success="extracted")
def extract_fn(ctx):
    return [ctx.sequence] * 2


@step(on="extracted")
def load_fn(ctx):
    return ctx.results["extract"] + ["loaded"]


class Functions(Flow):
    start = Event()
    extracted = Event()
    extract = extract_fn
    load = load_fn


def test_module_level_function_steps_run_without_self(opts):
    result = Functions(executor="process", **opts).run(sequence="7")
    assert result["load"] == ["7", "7", "loaded"]


def test_the_classic_api_adds_step_decorated_functions_with_their_wiring(make_eventor):
    ev = make_eventor()
    ev.add_event("start")
    ev.add_event("extracted")
    ev.add_step("extract", extract_fn)
    ev.add_step(load_fn)
    ev.trigger_event("start", 3)
    assert ev.run()
    rows = {t["step"]: t["result"] for t in ev.store.tasks(ev.run_id)}
    assert rows == {"extract": '["3", "3"]', "load_fn": '["3", "3", "loaded"]'}


def test_a_decorated_plain_class_runs_with_super_calls(opts):
    class Base:
        def greet(self):
            return "hello"

    @evr.flow(executor="invoke")
    class Greeter(Base):
        who: str = "world"
        start = Event()

        @step(on=start)
        def greet(self):
            return f"{super().greet()} {self.who}"

    assert Greeter(who="you", **opts).run()["greet"] == "hello you"


# -- declared triggers (emits=) ---------------------------------------------------------


class Scan(Flow):
    start = Event()
    found = Event()

    @step(on=start, emits=[found])
    def scan(self, ctx):
        for name in ("a", "b"):
            ctx.trigger(self.found, name)

    @step(on=found)
    def load(self, ctx):
        return ctx.sequence


def test_events_a_step_emits_are_not_entry_events_and_run_no_extra_sequence(opts):
    assert Scan.entry_events == ("start",)
    result = Scan(executor="thread", **opts).run()
    assert result and sorted(result.statuses) == [("load", "a"), ("load", "b"), ("scan", "0")]


def test_a_forgotten_emits_makes_two_entry_events_and_the_run_says_which(opts):
    class Forgot(Flow):
        start = Event()
        found = Event()

        @step(on=start)
        def scan(self, ctx):
            ctx.trigger(self.found, "a")

        @step(on=found)
        def load(self):
            return 1

    assert Forgot.entry_events == ("start", "found")
    with capture_events() as events:
        result = Forgot(executor="thread", **opts).run()
    assert result
    (said,) = [e for e in events if e["event"] == "entry_events"]
    assert said["events"] == "start, found"
    (warned,) = [e for e in events if e["event"] == "undeclared_trigger"]
    assert (warned["step"], warned["fired"]) == ("scan", "found")


def test_strict_triggers_fail_a_step_that_triggers_what_it_does_not_emit(opts):
    class Sloppy(Flow, strict_triggers=True):
        start = Event(entry=True)
        found = Event()
        other = Event()

        @step(on=start, emits=[found])
        def scan(self, ctx):
            ctx.trigger(self.other, "x")

        @step(on=other)
        def never(self):
            return 1

    result = Sloppy(executor="thread", **opts).run()
    assert not result
    assert "which step 'scan' does not declare; add it to emits=" in result.task("scan").error
    assert ("never", "x") not in result.statuses


def test_emits_draws_the_edge_and_must_name_events(make_eventor):
    assert "scan -.->|emits| found" in Scan.graph.to_mermaid()
    assert '"scan" -> "found" [label="emits", style=dashed];' in Scan.graph.to_dot()
    assert "emits -> found" in Scan.graph.to_text()
    assert Scan.graph.summary()["steps"][0]["emits"] == ["found"]
    with pytest.raises(evr.FlowDefinitionError, match="emits='fund' is not an event.*Did you mean 'found'"):
        class Typo(Flow):
            start = Event()
            found = Event()

            @step(on=start, emits=["fund"])
            def scan(self): ...
    ev = make_eventor()
    go, found = ev.add_event("go"), ev.add_event("found")
    ev.add_step("scan", emits=[found])
    ev.add_assoc(go, "scan")
    assert ev.graph.entry_events() == ("go",)


def test_a_flow_cli_with_no_arguments_runs_the_flow(tmp_path):
    import subprocess
    import sys

    (tmp_path / "solo.py").write_text(
        "from eventor import Event, Flow, step\n\nclass Solo(Flow):\n    start = Event()\n\n"
        "    @step(on=start, executor='thread')\n    def only(self):\n        return 'ran'\n\n"
        "if __name__ == '__main__':\n    Solo.cli()\n")
    done = subprocess.run([sys.executable, "solo.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "attempt 0: success" in done.stdout and '"ran"' in done.stdout


def test_a_database_tag_the_config_lacks_is_found_when_the_flow_object_is_made(tmp_path):
    # The classic Eventor opens its store when it is made; a flow opens it when it runs, and
    # checks the tag or URL it names when it is made (a file's folder may be made between).
    Loops(store=str(tmp_path / "made-later" / "x.run.db")).close()
    config = {"DATABASES": {"main": {"dialect": "sqlite", "database": str(tmp_path / "m.db")}}}
    with pytest.raises(evr.EventorConfigError, match=r"'mian', which is not a database tag"):
        Loops(store="mian", config=config)
    flow = Loops(store="main", config=config)  # a tag the config has: opened when it runs
    assert not (tmp_path / "m.db").exists()
    flow.close()


class Guarded(Flow):
    start = Event()

    @step(on=start, host="far.example.com")
    def remote(self):
        return "there"

    @step(on=start, acquires=[("db", 1)])
    def pooled(self):
        return "pooled"

    @step(on=start, timeout=5)
    def bounded(self):
        return "bounded"


def test_what_the_config_says_a_flow_s_steps_cannot_do_is_found_when_the_object_is_made(tmp_path):
    hosts = {"far.example.com": {"address": "127.0.0.1"}}
    fine = {**QUIET, "HOSTS": hosts, "POOLS": {"db": 1}}
    store = str(tmp_path / "g.run.db")
    Guarded(store=store, config=fine).close()  # as configured, it could run
    with pytest.raises(evr.EventorConfigError, match=r"host 'far.example.com' is neither in HOSTS"):
        Guarded(store=store, config={**QUIET, "POOLS": {"db": 1}})
    with pytest.raises(evr.EventorConfigError, match=r"step 'pooled' acquires pool 'db', which is "
                       r"not declared"):
        Guarded(store=store, config={**QUIET, "HOSTS": hosts})
    with pytest.raises(evr.EventorConfigError, match=r"step 'bounded' config timeout: it has "
                       r"timeout=5, but runs in the engine's thread \(invoke\)"):
        Guarded(store=store, config={**fine, "task_construct": "invoke"})
    assert not (tmp_path / "g.run.db").exists()  # found before anything was opened


class Where(Flow):
    start = Event()

    @step(on=start)
    def s(self):
        import threading

        return threading.current_thread().name


def test_options_changed_after_the_object_was_made_are_run_with(tmp_path):
    import threading

    flow = Where(store=str(tmp_path / "w.run.db"), config=QUIET, executor="thread")
    flow.options["executor"] = "invoke"  # after the plan was made: the run follows the change
    with flow:
        assert flow.run()["s"] == threading.current_thread().name


def test_enum_parameters_are_recorded_and_read_back_whatever_their_values():
    import enum

    from eventor.params import Param, coerce, recorded

    class Mixed(enum.Enum):
        A = "B"  # a value that is another member's name
        B = (1, 2)  # a value JSON cannot hold

    param = Param("p", Mixed, Mixed.A)
    for member in Mixed:
        assert coerce(param, recorded({"p": member})["p"]) is member
    assert coerce(param, "Mixed.A") is Mixed.A and coerce(param, "B") is Mixed.A  # by value
