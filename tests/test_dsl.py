"""Declarative flows compile, at class creation, into the classic API's graph, or fail with every problem."""

from __future__ import annotations

import pytest

import eventor as evr
from eventor import Event, Flow, step
from eventor.graph import And, Or


class Etl(Flow):
    """The DESIGN.md flow."""

    day: str = "today"

    start = Event()
    extracted = Event()
    checked = Event()
    ready = extracted & checked
    failed = Event()

    @step(on=start, success=extracted)
    def extract(self, ctx):
        return 42

    @step(on=start, success=checked, failure=failed)
    def check(self): ...

    @step(on=ready, delay=0, recovery={evr.STEP_SUCCESS: evr.STEP_SKIP})
    def load(self, ctx):
        return ctx.results["extract"]

    @step(on=failed)
    def alert(self): ...


# -- compiling -------------------------------------------------------------------------


def shape(graph):
    """A graph with its step functions left out (the classic API wraps @step functions)."""
    steps = {s.name: (s.triggers, s.recovery, s.acquires, s.releases, s.config, s.host)
             for s in graph.steps.values()}
    return graph.name, graph.events, graph.assocs, graph.order, steps


def test_the_graph_equals_the_classic_apis_graph_for_the_same_flow(tmp_path):
    with evr.Eventor(name="Etl", store=str(tmp_path / "c.db"),
                     config={"LOGGING": {"console": False}}) as ev:
        for name in ("start", "extracted", "checked"):
            ev.add_event(name)
        ev.add_event("ready", expr=("extracted", "checked"))
        ev.add_event("failed")
        ev.add_step("extract", triggers={evr.STEP_SUCCESS: "extracted"})
        ev.add_assoc("start", "extract")
        ev.add_step("check", triggers={evr.STEP_SUCCESS: "checked", evr.STEP_FAILURE: "failed"})
        ev.add_step("load", recovery={evr.STEP_SUCCESS: evr.STEP_SKIP})
        ev.add_step("alert")
        ev.add_assoc("start", "check")
        ev.add_assoc("ready", "load")
        ev.add_assoc("failed", "alert")
        assert shape(Etl.graph) == shape(ev.graph)
    assert Etl.graph.steps["extract"].func is Etl.__dict__["extract"]


def test_events_and_steps_keep_their_definition_order():
    assert list(Etl.graph) == ["start", "extracted", "checked", "ready", "failed",
                               "extract", "check", "load", "alert"]


def test_the_entry_events_are_those_nothing_in_the_flow_fires():
    assert Etl.entry_events == ("start",)


def test_event_entry_true_names_the_entry_explicitly():
    class Loop(Flow):
        go = Event(entry=True)
        again = Event()

        @step(on=go | again, success=go)
        def body(self): ...

    assert Loop.entry_events == ("go",)


def test_an_expression_attribute_is_a_named_expression_event():
    assert Etl.graph.events["ready"].expr == And(("extracted", "checked"))
    assert repr(Etl.ready) == "Expr(extracted & checked)"


def test_an_inline_expression_gets_one_stable_name_however_many_steps_use_it():
    class F(Flow):
        a, b, c = Event(), Event(), Event()

        @step(on=(a | b) & c)
        def one(self): ...

        @step(on=(a | b) & c)
        def two(self): ...

    name = "(a | b) & c"
    assert F.graph.events[name].expr == And((Or(("a", "b")), "c"))
    assert [(x.event, x.target) for x in F.graph.assocs] == [(name, "one"), (name, "two")]
    assert list(F.graph).index(name) < list(F.graph).index("one")


def test_chains_of_one_operator_flatten_but_named_subexpressions_stay_named():
    class F(Flow):
        a, b, c, d = Event(), Event(), Event(), Event()
        ab = a & b
        all4 = ab & c & d
        any3 = evr.or_(a, b, c)
        both = (a, b)

        @step(on=all4 | any3 | both)
        def s(self): ...

    assert F.graph.events["all4"].expr == And(("ab", "c", "d"))
    assert F.graph.events["any3"].expr == Or(("a", "b", "c"))
    assert F.graph.events["both"].expr == And(("a", "b"))
    assert F.graph.events["all4 | any3 | both"].expr == Or(("all4", "any3", "both"))


def test_step_records_one_frozen_mark_and_returns_the_function_itself():
    def body(ctx):
        return ctx

    marked = step(on="start", success=("a", "b"), delay=5)(body)
    assert marked is body
    mark = body.__eventor_step__
    assert (mark.on, mark.success, mark.delay) == ("start", ("a", "b"), 5)
    with pytest.raises(AttributeError):
        mark.delay = 1


def test_step_names_can_be_given_and_status_options_take_tuples():
    class F(Flow):
        start, a, b = Event(), Event(), Event()

        @step(on=start, name="first", success=(a, b), complete=b, executor="thread",
              config={"max_concurrent": 2})
        def whatever(self): ...

    spec = F.graph.steps["first"]
    assert spec.triggers == {evr.STEP_SUCCESS: ("a", "b"), evr.STEP_COMPLETE: ("b",)}
    assert spec.config == {"max_concurrent": 2, "task_construct": "thread"}


def test_parameters_are_annotated_attributes_with_types_defaults_and_docs():
    from typing import Annotated

    class F(Flow):
        day: Annotated[str, "the day to load"] = "today"
        limit: int
        ratio: float = 0.5
        TABLE = "facts"  # a constant, not a parameter
        start = Event()

        @step(on=start)
        def s(self): ...

    assert list(F.parameters) == ["day", "limit", "ratio"]
    assert F.parameters["day"].doc == "the day to load"
    assert F.parameters["day"].type is str
    assert F.parameters["limit"].required


def test_module_level_function_steps_join_a_flow_as_attributes():
    assert Functions.graph.steps["extract"].func is extract_fn
    assert [(a.event, a.target) for a in Functions.graph.assocs] == [
        ("start", "extract"), ("extracted", "load")]


@step(on="start", success="extracted")
def extract_fn(ctx):
    return [1, 2, 3]


@step(on="extracted")
def load_fn():
    return "loaded"


class Functions(Flow):
    start = Event()
    extracted = Event()
    extract = extract_fn
    load = load_fn


def test_a_flow_decorator_makes_a_plain_class_a_flow_with_options():
    @evr.flow(name="plain", max_concurrent=3)
    class Plain:
        start = Event()

        @step(on=start)
        def s(self):
            return super().__class__.__name__

    assert issubclass(Plain, Flow)
    assert Plain.graph.name == "plain"
    assert Plain.__eventor_flow__.options == {"name": "plain", "max_concurrent": 3}

    @evr.flow
    class Bare:
        start = Event()

        @step(on=start)
        def s(self): ...

    assert Bare.graph.name == "Bare"


# -- subclassing -----------------------------------------------------------------------


def test_a_subclass_inherits_and_a_step_redefined_with_step_replaces_its_wiring():
    class Daily(Etl):
        reported = Event()

        @step(on=Etl.extracted, success=reported)
        def load(self, ctx): ...

        @step(on=reported)
        def report(self): ...

    assert list(Daily.graph.steps) == ["extract", "check", "load", "alert", "report"]
    assert [(a.event, a.target) for a in Daily.graph.assocs if a.target == "load"] == [
        ("extracted", "load")]
    assert Daily.graph.steps["load"].triggers == {evr.STEP_SUCCESS: ("reported",)}
    assert Daily.graph.steps["load"].func is Daily.__dict__["load"]
    assert Etl.graph.steps["load"].func is Etl.__dict__["load"]  # the base is untouched


def test_a_plain_method_override_keeps_the_steps_wiring():
    class Loud(Etl):
        def check(self):
            return super().check()

    assert Loud.graph.steps["check"].triggers == Etl.graph.steps["check"].triggers
    assert Loud.graph.steps["check"].func is Loud.__dict__["check"]


# -- definition-time errors ------------------------------------------------------------


def test_an_unknown_event_name_fails_with_did_you_mean_and_the_line():
    with pytest.raises(evr.FlowDefinitionError) as info:
        class F(Flow):
            start = Event()

            @step(on="strat")
            def s(self): ...

    text = str(info.value)
    assert "flow 'F' has 1 problem" in text
    assert "step 's': on='strat' is not an event of flow 'F'. Did you mean 'start'?" in text
    assert "test_dsl.py:" in text


def test_a_step_without_on_fails():
    with pytest.raises(evr.FlowDefinitionError, match=r"step 's': it has no on= event"):
        class F(Flow):
            start = Event()

            @step(on=start)
            def ok(self): ...

            @step
            def s(self): ...


def test_a_flow_nothing_can_start_fails():
    with pytest.raises(evr.FlowDefinitionError, match="it has no entry event"):
        class F(Flow):
            a = Event()
            b = Event()

            @step(on=a, success=b)
            def one(self): ...

            @step(on=b, success=a)
            def two(self): ...


def test_two_steps_with_one_name_fail_unless_one_overrides_the_other():
    with pytest.raises(evr.FlowDefinitionError, match="step 'x': the name is already used by a step"):
        class F(Flow):
            start = Event()

            @step(on=start, name="x")
            def one(self): ...

            @step(on=start, name="x")
            def two(self): ...

    with pytest.raises(evr.FlowDefinitionError, match="step 'extract': the name is already used"):
        class Sub(Etl):
            @step(on=Etl.start, name="extract")
            def extract_again(self): ...


def test_a_step_named_like_an_inherited_event_fails():
    with pytest.raises(evr.FlowDefinitionError, match="step 'ready': it hides event 'ready'"):
        class Sub(Etl):
            @step(on=Etl.start)
            def ready(self): ...


def test_a_non_event_in_on_or_success_fails():
    with pytest.raises(evr.FlowDefinitionError) as info:
        class F(Flow):
            start = Event()

            @step(on=start)
            def one(self): ...

            @step(on=42, success=one)
            def two(self): ...

            @step(on=start, success=Event())
            def three(self): ...

    text = str(info.value)
    assert "step 'two': on=42 is not an event" in text
    assert "step 'two': success= holds step 'one', not an event" in text
    assert "step 'three': success= holds an Event() that is not a flow attribute" in text


def test_an_event_of_another_flow_fails():
    with pytest.raises(evr.FlowDefinitionError, match="holds event 'start' of another flow"):
        class F(Flow):
            begin = Event()

            @step(on=Etl.start)
            def s(self): ...


def test_bad_option_values_fail_each_with_its_fix():
    with pytest.raises(evr.FlowDefinitionError) as info:
        class F(Flow):
            start = Event()

            @step(on=start, delay=-1, executor="thraed", recovery={"sucess": evr.STEP_SKIP})
            def s(self): ...

    text = str(info.value)
    assert "has 3 problems" in text
    assert "delay=-1 is not a number of seconds >= 0. Use delay=0 for no delay." in text
    assert "executor='thraed' is unknown. Did you mean 'thread'?" in text
    assert "recovery key 'sucess' is not a step status. Did you mean 'success'?" in text


def test_a_parameter_without_a_type_fails():
    with pytest.raises(evr.FlowDefinitionError,
                       match=r"parameter 'day': it has no type annotation.*Write `day: str = 'x'`"):
        class F(Flow):
            day = "x"
            start = Event()

            @step(on=start)
            def s(self): ...


def test_a_parameter_named_like_a_flow_option_fails():
    with pytest.raises(evr.FlowDefinitionError, match="parameter 'store': the name is taken"):
        class F(Flow):
            store: str = "x"
            start = Event()

            @step(on=start)
            def s(self): ...


def test_a_step_signature_that_does_not_fit_fails():
    with pytest.raises(evr.FlowDefinitionError) as info:
        class F(Flow):
            start = Event()

            @step(on=start)
            def two_args(self, ctx, extra): ...

            @step(on=start)
            def kw_only(self, *, needed): ...

    text = str(info.value)
    assert "step 'two_args': it requires ctx, extra" in text
    assert "Define it as `def two_args(self)` or `def two_args(self, ctx)`" in text
    assert "step 'kw_only': it requires needed" in text


def test_every_problem_is_listed_in_one_error():
    with pytest.raises(evr.FlowDefinitionError) as info:
        class F(Flow, stroe="x.db"):
            start = Event()

            @step(on="strt")
            def a(self): ...

            @step(on=start, success="dnoe")
            def b(self): ...

    problems = info.value.problems
    assert len(problems) == 3
    assert info.value.flow == "F"
    assert "unknown option 'stroe'. Did you mean 'store'?" in str(info.value)
    assert all("test_dsl.py:" in p.where for p in problems)


def test_and_between_events_is_reported_with_the_flow_and_its_other_problems():
    # In a class body, when the class is created, with every other problem; after, at once.
    # A FlowDefinitionError, which is a TypeError too.
    with pytest.raises(evr.FlowDefinitionError) as info:
        class F(Flow):
            a = Event()
            b = Event()
            c = Event()
            both = a and b
            either = not c

            @step(on="bb")
            def s(self):
                pass

    text = str(info.value)
    assert info.value.flow == "F" and text.startswith("flow 'F' has ")
    assert ("event 'a': it was used as a truth value ('and', 'or', 'not', 'if'): it has no truth "
            "value: use & not 'and', | not 'or'") in text
    assert "event 'c': it was used as a truth value" in text
    assert "step 's': on='bb' is not an event of flow 'F'" in text
    assert all("test_dsl.py:" in p.where for p in info.value.problems)
    with pytest.raises(TypeError, match=r"flow 'Etl' has 1 problem:\n  - event 'start': it has no"):
        bool(Etl.start)
    with pytest.raises(evr.FlowDefinitionError,
                       match=r"expression \(extracted & checked\): it has no truth value"):
        _ = not Etl.ready


SHARED = Event(entry=True)  # an event of no class body: defined apart, shared by flows


def test_and_on_an_event_the_class_body_does_not_define_fails_at_once():
    with pytest.raises(evr.FlowDefinitionError, match="it has no truth value"):
        class F(Flow):
            done = Event(entry=True)

            @step(on=SHARED and done)
            def work(self):
                pass
    assert not SHARED.misused  # nothing left to blame on a later flow that uses it


def test_an_events_repr_says_when_it_is_in_no_flow():
    assert "assign it to an attribute of a Flow class" in repr(Event())

    class Forgot:
        start = Event()

    assert repr(Forgot.start) == (
        "<Event('start'), in no flow: did you forget @flow, or to subclass Flow?>")
    assert repr(evr.flow(Forgot).start) == "Event('start')"
    assert repr(Etl.start) == "Event('start')"


def test_one_event_object_under_two_names_fails():
    with pytest.raises(evr.FlowDefinitionError, match="it is the same object as event 'a'"):
        class F(Flow):
            a = Event()
            b = a

            @step(on=a)
            def s(self): ...


def test_unknown_step_options_fail_at_the_decorator():
    with pytest.raises(evr.FlowDefinitionError,
                       match=r"@step\(\): 'sucess' is not an option. Did you mean 'success'\?") as info:
        step(on="x", sucess="y")
    assert "test_dsl.py:" in info.value.problems[0].where


def test_step_on_something_that_is_not_a_function_fails_at_the_decorator():
    with pytest.raises(evr.FlowDefinitionError, match="it decorates 42, which is not a function"):
        step(on="x")(42)


@pytest.mark.parametrize(("options", "message"), [
    ({"max_concurrent": "four"}, "max_concurrent='four' is not a positive int or -1"),
    ({"executor": "thred"}, "executor='thred' is unknown. Did you mean 'thread'"),
    ({"stop_on_exception": "yes"}, "stop_on_exception='yes' is not True or False"),
    ({"store": 42}, "store=42 is not a store"),
    ({"config": 3.5}, "config=3.5 is not a config"),
])
def test_bad_flow_option_values_fail_when_the_class_is_defined(options, message):
    with pytest.raises(evr.FlowDefinitionError, match=message):
        class F(Flow, **options):
            start = Event()

            @step(on=start)
            def s(self): ...


def test_bad_flow_options_on_the_object_are_config_errors():
    with pytest.raises(evr.EventorConfigError, match="max_concurrent: flow 'Etl': max_concurrent='four'"):
        Etl(max_concurrent="four")


@pytest.mark.parametrize(("param", "annotation", "default", "problem"), [
    ("rows", int, "ten", "parameter 'rows': its default 'ten' is not int"),
    ("name", str, "x", "parameter 'name': the name is taken by a Flow option"),
])
def test_a_bad_parameter_fails_when_the_class_is_defined_and_is_said_once(param, annotation,
                                                                          default, problem):
    body = {"__annotations__": {param: annotation}, param: default, "start": Event()}
    body["s"] = step(on=body["start"])(lambda self: None)
    with pytest.raises(evr.FlowDefinitionError, match=problem) as info:
        type(Flow)("F", (Flow,), body)
    assert len(info.value.problems) == 1  # not also "it has no type annotation", nor twice


def test_a_bad_delay_is_a_definition_error_in_both_front_ends(make_eventor):
    with pytest.raises(evr.FlowDefinitionError, match="delay='soon' is not a number of seconds"):
        class F(Flow):
            start = Event()

            @step(on=start, delay="soon")
            def s(self): ...
    ev = make_eventor()
    go = ev.add_event("go")
    s = ev.add_step("s")
    with pytest.raises(evr.FlowDefinitionError, match="association go -> s: delay 'soon' is "
                       "not a number of seconds"):
        ev.add_assoc(go, s, delay="soon")  # where it is made
    with pytest.raises(evr.FlowDefinitionError, match="delay -1.0 is not a number of seconds"):
        ev.add_assoc(go, s, delay=-1.0)
    ev.add_assoc(go, s, delay=0.5)  # nothing was added by the refused ones
    ev.trigger_event(go)
    assert ev.run()


def test_the_flow_base_itself_has_no_graph():
    with pytest.raises(AttributeError):
        Flow.graph  # noqa: B018


def test_a_bad_config_given_to_a_flow_fails_when_the_class_or_object_is_made():
    with pytest.raises(evr.FlowDefinitionError, match="unknown renderer 'xml'"):
        class G(Flow, config={"LOGGING": {"renderer": "xml"}}):
            start = Event()

            @step(on=start)
            def s(self): ...
    with pytest.raises(evr.EventorConfigError, match="unknown level 'LOUD'"):
        Etl(config={"LOGGING": {"logging_level": "LOUD"}})
