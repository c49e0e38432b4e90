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
