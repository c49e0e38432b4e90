"""A Session opens what a run needs, the same way for both front ends, and closes what it opened."""

from __future__ import annotations

import re

import pytest

import eventor as evr
from eventor.builder import GraphBuilder
from eventor.enums import RunMode
from eventor.graph import StepSpec
from eventor.session import Session, new_run_id
from eventor.store import open_store

QUIET = {"LOGGING": {"console": False}}


def one_step_graph():
    b = GraphBuilder("g")
    b.add_event("go")
    b.add_step(StepSpec.make("s", func=lambda: 7, config={"task_construct": "invoke"}))
    b.add_assoc("go", "s")
    return b.build()


def test_new_run_ids_sort_by_time_and_differ():
    ids = [new_run_id() for _ in range(20)]
    assert all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", i) for i in ids)
    assert len(set(ids)) == 20


def test_a_session_runs_a_graph_and_closes_the_store_it_opened(tmp_path):
    session = Session("g", str(tmp_path / "g.run.db"), QUIET)
    run_id = session.choose_run()
    engine = session.start(one_step_graph())
    engine.trigger("go")
    assert engine.run()
    session.close()
    with pytest.raises(Exception):  # noqa: B017 - closed: the SQLAlchemy connection is gone
        session.store.runs()
    store = open_store(str(tmp_path / "g.run.db"))
    assert [r["run_id"] for r in store.runs()] == [run_id]
    store.close()


def test_a_session_leaves_a_store_it_was_given_open(tmp_path):
    store = open_store(str(tmp_path / "given.run.db"))
    with Session("g", store, QUIET) as session:
        session.choose_run("r1")
        engine = session.start(one_step_graph())
        engine.trigger("go")
        engine.run()
    assert [r["run_id"] for r in store.runs()] == ["r1"]
    store.close()


def test_recover_picks_the_latest_run_of_the_program_or_says_there_is_none(tmp_path):
    path = str(tmp_path / "p.run.db")
    with Session("g", path, QUIET) as session, pytest.raises(evr.RunNotFoundError,
                                                            match="no run of program"):
        session.choose_run("", RunMode.recover)
    for run_id in ("first", "second"):
        with Session("g", path, QUIET) as session:
            session.choose_run(run_id)
            engine = session.start(one_step_graph())
            engine.trigger("go")
            engine.run()
    with Session("g", path, QUIET) as session:
        assert session.choose_run("", RunMode.recover) == "second"
        assert session.choose_run("first", RunMode.continue_) == "first"
