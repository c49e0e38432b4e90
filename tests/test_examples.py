"""Every example runs, as a user would run it, in a fresh directory."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

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
