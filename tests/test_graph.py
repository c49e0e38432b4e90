"""The pure graph model: building, immutability, expressions, validation."""

from __future__ import annotations

import dataclasses

import pytest

import eventor as evr
from eventor.builder import GraphBuilder
from eventor.graph import And, Assoc, Or, StepSpec, or_, to_operand


def build_chain() -> evr.FlowGraph:
    b = GraphBuilder("chain")
    b.add_event("e1")
    b.add_event("e2")
    b.add_step(StepSpec.make("s1", triggers={evr.STEP_SUCCESS: "e2"}))
    b.add_step(StepSpec.make("s2"))
    b.add_assoc("e1", "s1")
    b.add_assoc("e2", "s2")
    return b.build()


def test_graph_iterates_in_definition_order_and_looks_up_by_name():
    g = build_chain()
    assert list(g) == ["e1", "e2", "s1", "s2"]
    assert g["s1"].triggers[evr.StepStatus.success] == ("e2",)
    assert "e2" in g and "nope" not in g
    assert g.assocs_from("e1") == (Assoc("e1", "s1", 0),)
    assert g.entry_events() == ("e1",)


def test_graph_and_its_specs_are_immutable():
    g = build_chain()
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        g.steps["s3"] = StepSpec.make("s3")  # type: ignore[index]
    with pytest.raises(TypeError):
        g["s1"].triggers[evr.STEP_FAILURE] = ("e1",)  # type: ignore[index]


def test_tuple_means_and_and_or_nests():
    assert to_operand(("a", "b")) == And(("a", "b"))
    expr = to_operand(("a", or_("b", ("c", "d"))))
    assert expr == And(("a", Or(("b", And(("c", "d"))))))
    assert str(expr) == "(a & (b | (c & d)))"
    fired = {"a", "c", "d"}
    assert expr.holds(fired.__contains__)
    assert not expr.holds({"a", "c"}.__contains__)


def test_mermaid_and_dot_show_every_node_and_edge():
    g = build_chain()
    mermaid = g.to_mermaid()
    assert "e1 --> s1" in mermaid and "s1 -->|success| e2" in mermaid
    dot = g.to_dot()
    assert '"s1" [shape=box];' in dot and '"e1" -> "s1";' in dot


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
