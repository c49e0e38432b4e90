"""The benchmark script still runs end to end (at toy sizes), so its figures stay reproducible."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "core.py"


def test_core_benchmark_runs_every_case_and_prints_ratios(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--floor", "20", "--chain", "20", "--fanout", "50",
         "--process-chain", "5", "--delays", "3"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for case in ("floor", "fanout-thread (50 steps)", "chain-thread (20 steps)",
                 "chain-process (5 steps)", "chain-invoke (20 steps)", "thread hop",
                 "chain-dsl-thread (20 steps)", "peak RSS", "delays fired at most",
                 "fanout-join-thread (50 children)", "fan-out + join per child", "process hop",
                 "fan-out's rows alone (50 tasks)"):
        assert case in proc.stdout
    assert list(tmp_path.iterdir()) == []  # everything went to a temporary folder


CRASH = BENCH.parent / "crash.py"


@pytest.mark.slow
def test_crash_benchmark_runs_its_kills_and_counts_them(tmp_path):
    proc = subprocess.run([sys.executable, str(CRASH), "--kills", "2"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2/2 recoveries passed every check" in proc.stdout


def test_postgres_benchmark_runs_and_leaves_no_schema_behind(backend):
    if backend.kind != "postgresql":
        pytest.skip("the PostgreSQL benchmark needs the PostgreSQL server")
    from tests.conftest import POSTGRES

    proc = subprocess.run(
        [sys.executable, str(BENCH.parent / "postgres.py"), "--floor", "20", "--chain", "20",
         "--fanout", "50"],
        env={**os.environ, "CI_POSTGRES_URL": POSTGRES}, capture_output=True, text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for case in ("floor (1 insert + commit)", "chain-thread (20 steps)", "fanout-thread (50 steps)"):
        assert case in proc.stdout
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES)
    with engine.connect() as conn:
        left = conn.execute(text("select schema_name from information_schema.schemata "
                                 "where schema_name like 'bench_%'")).all()
    engine.dispose()
    assert left == []


@pytest.mark.slow
def test_ssh_benchmark_runs_against_the_loopback_host(tmp_path):
    from tests.conftest import ssh_env

    ssh_env()
    proc = subprocess.run([sys.executable, str(BENCH.parent / "ssh.py"), "--chain", "5",
                           "--fanout", "5", "--first", "1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for case in ("chain-process (5 steps)", "chain-ssh (5 steps)", "fanout-ssh (5 steps)",
                 "remote step overhead", "first task (connect + agent)"):
        assert case in proc.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_dask_benchmark_runs_on_a_local_cluster(tmp_path):
    pytest.importorskip("distributed")
    proc = subprocess.run([sys.executable, str(BENCH.parent / "dask_cluster.py"), "--fanout", "50",
                           "--chain", "5", "--workers", "1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    for case in ("dask-map (50 calls)", "fanout-dask (50 steps)", "chain-thread (5 steps)",
                 "chain-dask (5 steps)"):
        assert case in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_definition_benchmark_runs_every_case_against_its_floor(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH.parent / "definition.py"), "--steps", "50",
                           "--repeat", "1"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    for case in ("no checks (the floor)", "Flow(...) of a 50-step chain, then its engine",
                 "Eventor.add_step x 50, each with config="):
        assert case in proc.stdout
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran
