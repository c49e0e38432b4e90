"""Logging: the seed's bracketed lines, JSON lines, per-run files that child processes share."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import eventor as evr

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^\[ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \]\[ (\S+) \]\[ (\d+) \]\[ (\w+) \]"
                  r"\[ (.*) \]\[ ([\w<>.]+) \]$")


def test_console_lines_have_the_seeds_fields(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "simple_classic.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [LINE.match(line) for line in proc.stderr.splitlines()]
    assert all(lines), proc.stderr
    running = next(m for m in lines if m.group(4) == "Running step s1[1]")
    assert running.group(1) == os.uname().nodename
    assert running.group(3) == "INFO" and running.group(5) == "engine._submit"
    step_line = next(m for m in lines if m.group(4) == "doing what prog1 is doing")
    assert step_line.group(5) == "simple_classic.prog"  # the step's own call site
    assert step_line.group(2) != running.group(2)  # logged from its worker process


def chatty(n, width):
    log = logging.getLogger(os.environ["EVENTOR_LOGGER_NAME"])
    for i in range(n):
        log.info("%s %04d %s|", os.environ["EVENTOR_STEP_NAME"], i, "x" * width)
    return n


def test_a_run_log_gets_every_whole_line_of_every_worker(tmp_path):
    logdir = tmp_path / "logs"
    ev = evr.Eventor(name="loud", store=str(tmp_path / "l.db"),
                     config={"logdir": str(logdir), "LOGGING": {"console": False}})
    go = ev.add_event("go")
    for s in range(4):
        ev.add_step(f"s{s}", chatty, args=(150, 3000))
        ev.add_assoc(go, f"s{s}")
    ev.trigger_event(go, 1)
    with ev:
        assert ev.run()
        run_id = ev.run_id
    (log_file,) = logdir.iterdir()
    assert log_file.name == f"loud.{run_id}.log"
    lines = log_file.read_text().splitlines()
    payload = [m.group(4) for m in map(LINE.match, lines) if m and m.group(4).endswith("|")]
    assert len(payload) == 4 * 150
    assert all(len(p) == len("s0 0000 ") + 3000 + 1 for p in payload)
    assert {p.split()[0] for p in payload} == {"s0", "s1", "s2", "s3"}
    assert sum("Step completed" in line for line in lines) == 4


def test_json_lines_carry_the_run_context(tmp_path):
    logdir = tmp_path / "logs"
    config = {"LOGGING": {"console": False, "renderer": "json", "logdir": str(logdir)},
              "task_construct": "thread"}

    @evr.step
    def s(ctx: evr.StepContext) -> int:
        ctx.log.info("working", rows=3, day="d1")
        return 7

    with evr.Eventor(name="js", store=str(tmp_path / "j.db"), config=config) as ev:
        ev.add_event("go")
        ev.add_assoc("go", ev.add_step(s))
        ev.trigger_event("go", 3)
        assert ev.run()
        run_id = ev.run_id
    records = [json.loads(line) for line in next(logdir.iterdir()).read_text().splitlines()]
    done = next(r for r in records if r["event"] == "step_succeeded")
    assert done["step"] == "s" and done["sequence"] == "3" and done["result"] == "7"
    assert (done["flow"], done["run_id"], done["attempt"]) == ("js", run_id, 0)
    assert done["level"] == "INFO" and done["process"] == os.getpid() and done["host"]
    # what a step logs with ctx.log keeps its fields, and the run's, as JSON
    said = next(r for r in records if r["event"] == "working")
    assert (said["rows"], said["day"], said["step"], said["sequence"]) == (3, "d1", "s", "3")
    assert (said["flow"], said["run_id"]) == ("js", run_id) and said["logger"] == "eventor.js.s"


def test_level_formats_and_rotation_are_configurable(tmp_path):
    logdir = tmp_path / "logs"
    config = {"task_construct": "thread", "stop_on_exception": False,
              "LOGGING": {"console": False, "logdir": str(logdir), "file_prefix": "p-",
                          "file_suffix": ".txt", "maxBytes": 600, "backupCount": 2,
                          "level_formats": {"ERROR": "E! %(message)s"}}}
    with evr.Eventor(name="rot", store=str(tmp_path / "r.db"), config=config) as ev:
        go = ev.add_event("go")
        for i in range(6):
            ev.add_step(f"s{i}", lambda: 1 / 0)
            ev.add_assoc(go, f"s{i}")
        ev.trigger_event(go, 1)
        assert not ev.run()
        run_id = ev.run_id
    names = sorted(p.name for p in logdir.iterdir())
    assert names == [f"p-rot.{run_id}.txt", f"p-rot.{run_id}.txt.1", f"p-rot.{run_id}.txt.2"]
    text = "".join(p.read_text() for p in logdir.iterdir())
    assert "E! Step completed s5[1], status: failure, ZeroDivisionError" in text


def seen(sequence=None, logger=None):
    return f"{sequence} {logger.name}"


def test_a_step_may_get_its_sequence_and_logger_as_arguments(make_eventor):
    ev = make_eventor(config={"sequence_arg_name": "sequence", "pass_logger_to_task": True})
    ev.add_event("go")
    ev.add_assoc("go", ev.add_step("s", seen))
    ev.trigger_event("go", 5)
    assert ev.run()
    assert ev.store.tasks(ev.run_id)[0]["result"] == '"5 eventor.t.s"'


def test_secrets_in_the_config_never_reach_the_log(tmp_path, monkeypatch):
    monkeypatch.setenv("PG_PASSWORD", "hunter2-secret")
    logdir = tmp_path / "logs"
    config = {"logdir": str(logdir), "LOGGING": {"console": False, "logging_level": "DEBUG"},
              "task_construct": "thread",
              "DATABASES": {"pg": {"dialect": "postgresql", "username": "u",
                                   "password": "${PG_PASSWORD}", "host": "db", "database": "d"}}}
    with evr.Eventor(name="sec", store=str(tmp_path / "s.db"), config=config) as ev:
        ev.add_event("go")
        ev.add_assoc("go", ev.add_step("s", lambda: "ok"))
        ev.trigger_event("go")
        assert ev.run()
    text = next(logdir.iterdir()).read_text()
    assert "Eventor store: sqlite:///" in text and "hunter2-secret" not in text


def test_capture_events_collects_what_the_engine_logs():
    from eventor.testing import capture_events

    with capture_events() as events:
        ev = evr.Eventor(name="cap", store=":memory:",
                         config={"task_construct": "invoke", "LOGGING": {"console": False}})
        ev.add_event("go")
        ev.add_assoc("go", ev.add_step("s", lambda: 41 + 1))
        ev.trigger_event("go", 2)
        assert ev.run()
        ev.close()
    done = [e for e in events if e["event"] == "step_succeeded"]
    assert [(e["step"], e["sequence"], e["result"], e["flow"], e["level"]) for e in done] == [
        ("s", "2", "42", "cap", "info")]
    assert next(e["event"] for e in events) == "run_started"


def test_a_run_that_cannot_start_leaves_no_log_file_open(tmp_path):
    from eventor.builder import GraphBuilder
    from eventor.graph import StepSpec
    from eventor.session import Session

    # A graph no front end lets through (they refuse the pool when the step is added): the
    # engine refuses it when it is made, and the run's log file must not stay open
    builder = GraphBuilder("leak")
    builder.add_event("e")
    builder.add_step(StepSpec.make("s", print, acquires=[("undeclared", 1)]))
    builder.add_assoc("e", "s")
    graph = builder.build()
    session = Session("leak", ":memory:", {"logdir": str(tmp_path), "LOGGING": {"console": False}})
    try:
        for _ in range(3):
            with pytest.raises(evr.EventorConfigError, match="undeclared"):
                session.start(graph)
        assert logging.getLogger("eventor.leak").handlers == []
    finally:
        session.close()


def test_console_false_holds_after_a_run_that_printed_in_the_same_process(tmp_path):
    code = (
        "import eventor as evr\n"
        "def run(name, **logging):\n"
        "    ev = evr.Eventor(name=name, store=':memory:', config={'LOGGING': logging})\n"
        "    ev.add_assoc(ev.add_event('e'), ev.add_step('s', func=lambda: 1))\n"
        "    ev.trigger_event('e')\n"
        "    ev.run()\n"
        "    ev.close()\n"
        "run('loud')\n"
        "run('etl')\n"
        "import sys; print('--', file=sys.stderr)\n"
        "run('loud', console=False)\n"
        "run('other', console=False)\n"
        "run('etl.nightly', console=False)\n"  # a dotted name, beside a flow 'etl' that prints
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    printed, after = proc.stderr.split("--\n")
    assert "Processing finished" in printed and after == ""


def test_console_false_prints_nothing_even_for_warnings(tmp_path):
    code = (
        "import eventor as evr\n"
        "ev = evr.Eventor(name='quiet', store=':memory:', config={'LOGGING': {'console': False}})\n"
        "e = ev.add_event('e')\n"
        "ev.add_assoc(e, ev.add_step('s', func=lambda: 1 / 0))\n"
        "ev.trigger_event(e)\n"
        "ok = ev.run()\n"
        "ev.close()\n"
        "print('ran', ok)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "ran False\n"
    assert proc.stderr == ""
