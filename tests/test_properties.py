"""
The engine against a reference model of DESIGN.md section 3, on random small flows.

Hypothesis draws flows (plain and and/or expression events, steps on events, status
triggers, event-to-event associations), the sequences a user starts with which events, and
which tasks fail. The model in this file computes, per sequence, the least set of fired
events closed under the rules (an event fires at most once per sequence; an association
fires its target; an expression event fires once its expression holds; a task fires its
success or failure events, and its complete events), and the final status of every task.
The engine must record exactly those tasks, statuses and triggers, each (step, sequence) at
most once, and return False exactly when a failure went unhandled.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventor as evr

EXAMPLES = 50  # per executor; the suite's budget, with no deadline per example


@dataclass
class Spec:
    events: list[str]
    exprs: dict[str, tuple[str, list[str]]]  # name -> ("and" | "or", operands)
    on: dict[str, str]  # step -> the event that runs it
    links: list[tuple[str, str]]  # event -> event associations
    triggers: dict[str, dict[str, list[str]]]  # step -> status -> events
    starts: dict[str, list[str]]  # sequence -> events the user fires there
    fails: set[tuple[str, str]] = field(default_factory=set)  # (step, sequence)


@st.composite
def specs(draw):
    events = [f"e{i}" for i in range(draw(st.integers(2, 5)))]
    exprs = {
        f"x{i}": (draw(st.sampled_from(["and", "or"])),
                  draw(st.lists(st.sampled_from(events), min_size=2, max_size=3, unique=True)))
        for i in range(draw(st.integers(0, 2)))
    }
    steps = [f"s{i}" for i in range(draw(st.integers(1, 5)))]
    on = {s: draw(st.sampled_from(events + list(exprs))) for s in steps}
    links = draw(st.lists(st.tuples(st.sampled_from(events), st.sampled_from(events)),
                          max_size=3, unique=True))
    some = st.lists(st.sampled_from(events), max_size=2, unique=True)
    triggers = {s: {status: draw(some) for status in ("success", "failure", "complete")}
                for s in steps}
    sequences = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3,
                              unique=True))
    starts = {seq: draw(st.lists(st.sampled_from(events), min_size=1, max_size=2, unique=True))
              for seq in sequences}
    fails = draw(st.sets(st.tuples(st.sampled_from(steps), st.sampled_from(sequences))))
    return Spec(events, exprs, on, links, triggers, starts, fails)


def model(spec: Spec) -> tuple[dict[tuple[str, str], str], set[tuple[str, str]], bool]:
    """(step, sequence) -> final status, the (event, sequence) fired, and whether run() is True."""
    tasks: dict[tuple[str, str], str] = {}
    fired_all: set[tuple[str, str]] = set()
    for seq, starts in spec.starts.items():
        fired: set[str] = set()
        pending = list(starts)
        while pending:
            event = pending.pop()
            if event in fired:
                continue
            fired.add(event)
            pending += [target for source, target in spec.links if source == event]
            for step, on in spec.on.items():
                if on == event and (step, seq) not in tasks:
                    status = "failure" if (step, seq) in spec.fails else "success"
                    tasks[step, seq] = status
                    pending += spec.triggers[step][status] + spec.triggers[step]["complete"]
            for name, (op, operands) in spec.exprs.items():
                holds = (all if op == "and" else any)(o in fired for o in operands)
                if name not in fired and holds:
                    pending.append(name)
        fired_all |= {(event, seq) for event in fired}
    handled = {s for s, t in spec.triggers.items() if t["failure"] or t["complete"]}
    ok = all(status == "success" or step in handled for (step, _), status in tasks.items())
    return tasks, fired_all, ok


def run_engine(spec: Spec, executor: str, folder: Path):
    ev = evr.Eventor(name="prop", store=str(folder / "prop.run.db"), config={
        "task_construct": executor, "stop_on_exception": False, "LOGGING": {"console": False}})
    for event in spec.events:
        ev.add_event(event)
    for name, (op, operands) in spec.exprs.items():
        ev.add_event(name, expr=tuple(operands) if op == "and" else evr.or_(*operands))
    for step, on in spec.on.items():
        fails = {seq for s, seq in spec.fails if s == step}

        def work(fails=fails):
            if evr.task_env()["EVENTOR_STEP_SEQUENCE"] in fails:
                raise RuntimeError("drawn to fail")
            return "ok"

        triggers = {getattr(evr, f"STEP_{status.upper()}"): tuple(events)
                    for status, events in spec.triggers[step].items() if events}
        ev.add_step(step, func=work, triggers=triggers)
        ev.add_assoc(on, step)
    for source, target in spec.links:
        ev.add_assoc(source, target)
    for seq, starts in spec.starts.items():
        for event in starts:
            ev.trigger_event(event, seq)
    ok = ev.run()
    rows = ev.store.tasks(ev.run_id)
    triggers = {(t["event"], t["sequence"]) for t in ev.store.triggers(ev.run_id)}
    ev.close()
    return ok, rows, triggers


@pytest.mark.parametrize("executor", ["invoke", "thread"])
def test_the_engine_runs_what_the_reference_model_says(executor):
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(spec=specs())
    def check(spec: Spec) -> None:
        expected_tasks, expected_fired, expected_ok = model(spec)
        with tempfile.TemporaryDirectory() as folder:
            ok, rows, fired = run_engine(spec, executor, Path(folder))
        keys = [(r["step"], r["sequence"]) for r in rows]
        assert len(keys) == len(set(keys)), "a (step, sequence) ran twice in one attempt"
        assert {(r["step"], r["sequence"]): r["status"] for r in rows} == expected_tasks
        assert fired == expected_fired
        assert ok == expected_ok

    check()
