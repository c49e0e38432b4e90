"""Every example runs, as a user would run it, in a fresh directory."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_simple_classic_runs_the_chain_and_records_it(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / "simple_classic.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    log = proc.stderr
    for step, prog in (("s1", "prog1"), ("s2", "prog2"), ("s3", "prog3")):
        assert f"Running step {step}[1]" in log
        assert f"doing what {prog} is doing" in log
        assert f'Step completed {step}[1], status: success, result "{prog}"' in log
    assert log.index("Running step s2[1]") > log.index("Step completed s1[1]")
    assert "success" in proc.stdout
    with sqlite3.connect(tmp_path / "simple_classic.run.db") as db:
        rows = db.execute("select step, sequence, status from eventor_tasks order by id").fetchall()
    assert rows == [("s1", "1", "success"), ("s2", "1", "success"), ("s3", "1", "success")]


def run_example(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_etl_runs_the_design_flow_and_prints_the_result(tmp_path):
    proc = run_example("etl.py", cwd=tmp_path)  # no arguments: run with the defaults
    assert proc.returncode == 0, proc.stderr
    assert "attempt 0: success" in proc.stdout
    assert re.search(r"│ load +│ 0 +│ 0 +│ success .*│ 14 +│", proc.stdout)
    assert "extracting day='today' (step=extract sequence=0)" in proc.stderr
    with sqlite3.connect(tmp_path / "etl.run.db") as db:
        rows = db.execute("select step, status from eventor_tasks order by id").fetchall()
    assert sorted(rows) == [("check", "success"), ("extract", "success"), ("load", "success")]


def test_etl_takes_the_failure_branch_on_a_bad_day(tmp_path):
    proc = run_example("etl.py", "run", "--day", "bad", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr  # the failure was handled by the alert step
    assert re.search(r"│ check +│ 0 +│ 0 +│ failure .*ValueError: no data for day 'bad'", proc.stdout)
    assert re.search(r'│ alert +│ 0 +│ 0 +│ success .*"alerted about bad"', proc.stdout)
    assert "│ load " not in proc.stdout


def test_simple_dsl_logs_what_simple_classic_logs(tmp_path):
    proc = run_example("simple_dsl.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for step, prog in (("s1", "prog1"), ("s2", "prog2"), ("s3", "prog3")):
        assert f"Running step {step}[1]" in proc.stderr
        assert f'Step completed {step}[1], status: success, result "{prog}"' in proc.stderr
    with sqlite3.connect(tmp_path / "simple_dsl.run.db") as db:
        rows = db.execute("select step, sequence, status from eventor_tasks order by id").fetchall()
    assert rows == [("s1", "1", "success"), ("s2", "1", "success"), ("s3", "1", "success")]


def test_the_subclass_example_replaces_load_and_adds_a_report(tmp_path):
    proc = run_example("etl_daily.py", "2026-11-01", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "2026-11-01: loaded 14"


def test_recovery_classic_fails_then_recovers_skipping_s1(tmp_path):
    proc = run_example("recovery_classic.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "s1[3]: success -> skip (default for success)" in proc.stdout
    assert "s1[3] skipped: success, result 9" in proc.stdout
    assert "s2[3] ran: success, result 3.0" in proc.stdout
    assert "s3[3] ran: success, result 3.0" in proc.stdout
    with sqlite3.connect(tmp_path / "recovery_classic.run.db") as db:
        attempts = db.execute("select attempt, mode, status from eventor_attempts").fetchall()
    assert attempts == [(0, "restart", "failure"), (1, "recover", "success")]


def test_recovery_dsl_is_the_twin_of_recovery_classic(tmp_path):
    proc = run_example("recovery_dsl.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "s1[3] skipped: success, result 9" in proc.stdout
    assert "s3[3] ran: success, result 3.0" in proc.stdout


def executions(db_path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db_path) as db:
        return db.execute("select step, status from eventor_tasks order by id").fetchall()


@pytest.mark.slow
def test_delay_classic_runs_each_step_once_across_continue_sessions(tmp_path):
    proc = run_example("delay_classic.py", "0.3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "success after 3 sessions" in proc.stdout
    assert executions(tmp_path / "delay_classic.run.db") == [
        ("s1", "success"), ("s2", "success"), ("s3", "success")]
    for prog in ("prog1", "prog2", "prog3"):
        assert proc.stderr.count(f"doing what {prog} is doing") == 1
    with sqlite3.connect(tmp_path / "delay_classic.run.db") as db:
        late = db.execute("select fired_at - due_at from eventor_delays").fetchall()
    assert len(late) == 2 and all(lag >= 0 for (lag,) in late)


@pytest.mark.slow
def test_delay_dsl_is_the_twin_of_delay_classic(tmp_path):
    proc = run_example("delay_dsl.py", "0.3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "success after 3 sessions" in proc.stdout
    assert executions(tmp_path / "delay_dsl.run.db") == [
        ("s1", "success"), ("s2", "success"), ("s3", "success")]


def test_fan_out_join_loads_each_file_in_its_sequence_and_summarizes_after_all(tmp_path):
    proc = run_example("fan_out_join.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "{'files': 3, 'loaded': {'a.csv': 10, 'b.csv': 30}, 'total': 40}" in proc.stdout
    assert "Step completed quarantine[broken.csv], status: success" in proc.stderr
    with sqlite3.connect(tmp_path / "fan_out_join.run.db") as db:
        rows = dict(db.execute("select step || '[' || sequence || ']', status from eventor_tasks"))
    assert rows == {"scan[0]": "success", "load[a.csv]": "success", "load[b.csv]": "success",
                    "load[broken.csv]": "failure", "quarantine[broken.csv]": "success",
                    "summarize[0]": "success"}


def test_remote_hosts_runs_its_middle_step_on_the_host(tmp_path):
    import yaml

    from tests.conftest import host_config

    host = {**host_config(), "workdir": str(EXAMPLES)}
    (tmp_path / "hosts.yaml").write_text(yaml.safe_dump({"EVENTOR": {"HOSTS": {"worker": host}}}))
    proc = run_example("remote_hosts.py", "hosts.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"success \| sum 55 crunched by process \d+\n", proc.stdout)
    assert re.search(r"\]\[ worker \]\[ \d+ \]\[ WARNING \]\[ crunching 10 numbers \]", proc.stderr)
    with sqlite3.connect(tmp_path / "remote_hosts.run.db") as db:
        rows = db.execute("select step, host, status from eventor_tasks order by id").fetchall()
    assert rows[1] == ("crunch", "worker", "success")


@pytest.mark.slow
def test_on_dask_fans_a_week_out_over_a_local_cluster(tmp_path):
    pytest.importorskip("distributed")
    proc = subprocess.run([sys.executable, str(EXAMPLES / "on_dask.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "success | week total: 210"
    with sqlite3.connect(tmp_path / "on_dask.run.db") as db:
        rows = db.execute("select sequence, host from eventor_tasks where step = 'count'").fetchall()
    assert sorted(s for s, _ in rows) == sorted(["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
    assert all(host.startswith("tcp://127.0.0.1:") for _, host in rows)
