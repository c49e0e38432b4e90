"""The eventor command and Flow.cli(), through typer's CliRunner and as installed scripts."""

from __future__ import annotations

import enum
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import eventor as evr
from eventor.cli import app
from eventor.testing import capture_events

ROOT = Path(__file__).resolve().parent.parent
ETL = str(ROOT / "examples" / "etl.py")
QUIET_ENV = {"EVENTOR_CONFIG_TAG": "EVENTOR"}


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Invoke ``eventor ARGS`` in tmp_path; returns (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "quiet.yaml"
    config.write_text("EVENTOR:\n  LOGGING:\n    console: false\n")
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    invoke.config = str(config)
    invoke.store = str(tmp_path / "cli.run.db")
    return invoke


def run_ids(store: str) -> list[str]:
    with sqlite3.connect(store) as db:
        return [r for (r,) in db.execute("select run_id from eventor_runs order by created_at")]


def test_run_a_flow_class_from_a_module_with_typed_params(cli):
    code, out, _ = cli("run", "tests.cli_flows:Numbers", "--param", "limit=5",
                       "--store", cli.store, "--config", cli.config)
    assert code == 0
    assert "attempt 0: success" in out
    assert "│ total" in out and "10" in out  # 0+1+2+3+4


def test_runs_shows_the_parameters_each_run_was_given(cli):
    assert cli("run", "tests.cli_flows:Numbers", "-p", "limit=5", "--store", cli.store,
               "--config", cli.config)[0] == 0
    code, out, _ = cli("runs", "--store", cli.store)
    assert code == 0 and "Numbers(limit=5" in out
    [run_id] = run_ids(cli.store)
    code, out, _ = cli("show", run_id, "--store", cli.store)
    assert code == 0 and f"run {run_id} (limit=5" in out


def test_a_failed_run_exits_1_and_shows_the_error(cli):
    code, out, _ = cli("run", "tests.cli_flows:Numbers", "-p", "fail=yes", "--store", cli.store,
                       "--config", cli.config)
    assert code == 1
    assert "RuntimeError: asked to fail" in out


def test_a_flow_file_reference_runs_with_sequence_and_run_id(cli):
    code, out, _ = cli("run", f"{ETL}:Etl", "--param", "day=2026-11-01", "--sequence", "d1",
                       "--run-id", "etl-1", "--store", cli.store, "--config", cli.config)
    assert code == 0, out
    assert "run etl-1 attempt 0: success" in out and "│ d1 " in out


@pytest.mark.parametrize(("args", "message"), [
    (["run", "nope.py:Etl"], "nope.py:Etl: no such file nope.py"),
    (["run", f"{ETL}:Etx"], "has no 'Etx'. Did you mean 'Etl'? Flows there: Etl"),
    (["run", "tests.cli_flowz:Numbers"], "cannot import 'tests.cli_flowz'"),
    (["run", "tests.cli_flows:not_a_builder"], "not_a_builder() returned int, not an Eventor"),
    (["run", "tests.cli_flows"], "say which flow, as tests.cli_flows:Name (flows in "
                                 "tests.cli_flows: Numbers, Later, Fan)"),
    (["run", "tests.cli_flows:Numbers", "--param", "limit"], "--param 'limit': write NAME=VALUE"),
    (["run", "tests.cli_flows:Numbers", "--param", "limt=2"],
     "Numbers has no parameter 'limt'. Did you mean 'limit'?"),
    (["run", "tests.cli_flows:Numbers", "--param", "limit=many"],
     "parameter 'limit' expects int, got str 'many'"),
    (["show", "nope"], "no run store at"),
    (["graph", f"{ETL}:Etl", "--format", "svg"], "--format 'svg': use mermaid, dot or text"),
    (["continue", "tests.cli_flows:Numbers", "--run-id", "missing"], "no run 'missing' in"),
])
def test_mistakes_are_one_line_and_exit_2(cli, args, message):
    if args[0] in ("show", "continue"):
        args = [*args, "--store", cli.store]
    code, out, err = cli(*args)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err + out


def test_reading_commands_do_not_create_a_store_that_is_not_there(cli, tmp_path):
    code, _, err = cli("runs", "--store", str(tmp_path / "typo.db"))
    assert code == 2 and "no run store at" in err
    assert not (tmp_path / "typo.db").exists()


def test_debug_shows_the_traceback(cli):
    with pytest.raises(Exception, match="no such file"):
        cli("--debug", "run", "nope.py:Etl")


def test_a_classic_builder_runs_recovers_and_dry_runs(cli):
    code, out, _ = cli("run", "tests.cli_flows:build_flow", "-p", "fail=true", "--store", cli.store)
    assert code == 1 and "ZeroDivisionError" in out
    (run_id,) = run_ids(cli.store)
    code, out, _ = cli("recover", "tests.cli_flows:build_flow", "--run-id", run_id, "--dry-run",
                       "--store", cli.store)
    assert code == 0 and "work[1]: failure -> rerun (default for failure)" in out
    code, out, _ = cli("recover", "tests.cli_flows:build_flow", "--run-id", run_id,
                       "-p", "fail=false", "--store", cli.store)  # the cause fixed
    assert code == 0 and "attempt 1: success" in out


def test_recover_and_continue_a_flow_class(cli):
    code, _, _ = cli("run", "tests.cli_flows:Numbers", "-p", "fail=true", "--store", cli.store,
                     "--config", cli.config)
    (run_id,) = run_ids(cli.store)
    code, out, _ = cli("recover", "tests.cli_flows:Numbers", "--run-id", run_id, "--dry-run",
                       "--store", cli.store, "--config", cli.config)
    assert code == 0
    assert "count[0]: success -> skip" in out and "total[0]: failure -> rerun" in out
    code, out, _ = cli("recover", "tests.cli_flows:Numbers", "--run-id", run_id, "-p",
                       "fail=false", "--store", cli.store, "--config", cli.config)
    assert code == 0 and "success (skipped)" in out

    code, out, _ = cli("run", "tests.cli_flows:Later", "--max-loops", "1", "--store", cli.store,
                       "--config", cli.config)
    assert code == 0 and "paused" in out
    later = run_ids(cli.store)[-1]
    code, out, _ = cli("runs", "--store", cli.store)
    flat = " ".join(out.split())
    assert "paused (1 delay, next at" in flat
    row = next(line for line in out.splitlines() if later in line)
    assert [cell.strip() for cell in row.split("│")][6:9] == ["1", "0", "1"]  # ok, failed, pending
    # the command names the store and the config the run used, which it needs again
    assert f"eventor continue MODULE:Later --run-id {later} --store cli.run.db --config quiet.yaml" in flat
    code, out, _ = cli("continue", "tests.cli_flows:Later", "--run-id", later, "--store",
                       cli.store, "--config", cli.config)
    assert code == 0 and "│ later" in out


def test_runs_show_and_json(cli):
    cli("run", "tests.cli_flows:Numbers", "--store", cli.store, "--config", cli.config)
    (run_id,) = run_ids(cli.store)
    code, out, _ = cli("runs", "--store", cli.store)
    assert code == 0 and run_id in out and "Numbers" in out and "success" in out
    code, out, _ = cli("show", run_id, "--store", cli.store)
    assert code == 0 and "│ count" in out and "│ total" in out
    code, _, err = cli("show", run_id[:-1], "--store", cli.store)
    assert code == 2 and f"no run {run_id[:-1]!r} in" in err and f"Did you mean {run_id!r}?" in err
    code, out, _ = cli("show", run_id, "--store", cli.store, "--json")
    rows = json.loads(out)
    assert [(r["step"], r["status"], r["result"]) for r in rows] == [
        ("count", "success", "[0, 1, 2]"), ("total", "success", "3")]


def test_graph_in_every_format(cli):
    assert "flowchart LR" in cli("graph", f"{ETL}:Etl")[1]
    assert 'digraph "Etl"' in cli("graph", f"{ETL}:Etl", "--format", "dot")[1]
    text = cli("graph", "tests.cli_flows:build_flow", "--format", "text")[1]
    assert "work  on go" in text


def test_purge_on_the_command_line(cli):
    cli("run", "tests.cli_flows:Numbers", "--store", cli.store, "--config", cli.config)
    assert cli("purge", "--older-than", "1", "--store", cli.store)[1].startswith("purged 0 run")
    code, out, _ = cli("purge", "--older-than", "0", "--store", cli.store)
    assert code == 0 and "purged 1 run" in out


def test_report_is_one_self_contained_page(cli, tmp_path):
    cli("run", f"{ETL}:Etl", "--store", cli.store, "--config", cli.config)
    (run_id,) = run_ids(cli.store)
    out_file = tmp_path / "run.html"
    code, out, _ = cli("report", run_id, "-o", str(out_file), "--store", cli.store)
    assert code == 0 and "wrote" in out
    page = out_file.read_text()
    assert page.count("<svg") == 2 and "<table" in page
    for step in ("extract", "check", "load"):
        assert f"<td>{step}</td>" in page
    assert "src=" not in page and "href=" not in page and "@import" not in page  # no fetches


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_dump(page: Path, profile: Path) -> tuple[str, list[str]]:
    """Render ``page`` headless; return its DOM after scripts ran, and its console messages."""
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.slow
def test_the_report_renders_in_headless_chromium_without_console_errors(cli, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is not installed, and CI requires it (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    broken = tmp_path / "broken.html"  # the detector itself must see a console error
    broken.write_text("<html><body><script>missing();</script></body></html>")
    _, messages = chromium_dump(broken, tmp_path / "p1")
    assert any("missing is not defined" in m for m in messages)

    cli("run", f"{ETL}:Etl", "-p", "day=bad", "--store", cli.store, "--config", cli.config)
    (run_id,) = run_ids(cli.store)
    page = tmp_path / "run.html"
    cli("report", run_id, "-o", str(page), "--store", cli.store)
    dom, messages = chromium_dump(page, tmp_path / "p2")
    assert messages == []
    assert 'data-rendered="yes"' in dom and "alerted about bad" in dom


def test_the_installed_eventor_script_runs_a_flow(tmp_path):
    script = Path(sys.executable).parent / "eventor"
    proc = subprocess.run([str(script), "run", f"{ETL}:Etl", "--param", "day=2026-11-01"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "attempt 0: success" in proc.stdout
    assert (tmp_path / "etl.run.db").exists()  # the store the program itself would use


@pytest.mark.slow
def test_flow_cli_makes_an_option_per_parameter(tmp_path):
    proc = subprocess.run([sys.executable, ETL, "run", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "120"})
    assert proc.returncode == 0, proc.stderr
    assert "--day" in proc.stdout and "today" in proc.stdout
    assert "the day to load, e.g. 2026-11-01" in proc.stdout  # the parameter's doc
    proc = subprocess.run([sys.executable, ETL, "run", "--day", "2026-11-01"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert '"day": "2026-11-01"' in proc.stdout
    proc = subprocess.run([sys.executable, ETL, "run", "--dya", "x"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2


def test_runs_reads_a_store_through_a_read_only_sqlite_uri(cli):
    cli("run", "tests.cli_flows:Numbers", "--store", cli.store, "--config", cli.config)
    (run_id,) = run_ids(cli.store)
    code, out, err = cli("runs", "--store", f"sqlite:///file:{cli.store}?mode=ro&uri=true")
    assert code == 0, err
    assert run_id in out


def test_a_flow_file_with_a_syntax_error_is_one_line_and_exit_2(cli, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("from eventor import Flow\n\nclass Broken(Flow)\n    pass\n")
    code, out, err = cli("run", f"{broken}:Broken")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err + out
    assert err.startswith(f"error: {broken}:Broken: {broken}:3: ")


def test_a_flow_file_that_raises_on_import_is_one_line_and_exit_2(cli, tmp_path):
    raising = tmp_path / "raising.py"
    raising.write_text("import os\nos.environ['NOPE_NOT_SET_EITHER']\n")
    code, _, err = cli("run", f"{raising}:Flow")
    assert code == 2 and err.count("\n") == 1
    assert "importing" in err and "raised KeyError: 'NOPE_NOT_SET_EITHER'" in err


def test_a_long_error_stays_on_one_line_whatever_the_width(cli, tmp_path):
    missing = tmp_path / ("a_very_long_folder_name_" * 8) / "flow.py"
    code, _, err = cli("run", f"{missing}:Etl")
    assert code == 2 and len(err) > 200 and err.count("\n") == 1


@pytest.mark.parametrize(("pair", "message"), [
    ("fail=maybe", "parameter 'fail' expects bool, got str 'maybe'"),
    ("wait=abc", "parameter 'wait' expects float, got str 'abc'"),
])
def test_classic_parameters_are_coerced_and_checked_like_flow_parameters(cli, pair, message):
    code, _, err = cli("run", "tests.cli_flows:build_flow", "-p", pair, "--store", cli.store)
    assert code == 2 and message in err and err.count("\n") == 1


def test_a_classic_run_is_recovered_and_continued_with_its_recorded_parameters(cli):
    code, _, _ = cli("run", "tests.cli_flows:build_flow", "-p", "fail=true", "--store", cli.store)
    assert code == 1
    (run_id,) = run_ids(cli.store)
    code, out, _ = cli("recover", "tests.cli_flows:build_flow", "--run-id", run_id,
                       "--store", cli.store)
    assert code == 1 and "ZeroDivisionError" in out  # still fail=true, as recorded
    with capture_events() as events:
        code, _, _ = cli("recover", "tests.cli_flows:build_flow", "--run-id", run_id,
                         "-p", "fail=false", "--store", cli.store)
    assert code == 0
    (changed,) = [e for e in events if e["event"] == "params_changed"]
    assert changed["changed"] == "fail: True -> False"


def test_continue_of_a_classic_run_rebuilds_it_with_its_recorded_parameters(cli):
    code, out, _ = cli("run", "tests.cli_flows:build_flow", "-p", "fail=true", "-p", "wait=0.2",
                       "--max-loops", "1", "--store", cli.store)
    assert code == 0 and "paused" in out
    (run_id,) = run_ids(cli.store)
    code, out, _ = cli("continue", "tests.cli_flows:build_flow", "--run-id", run_id,
                       "--store", cli.store)
    assert code == 1 and "ZeroDivisionError" in out  # fail=true and wait=0.2 came back


def test_show_and_the_report_name_the_children_a_join_waits_for(cli, tmp_path):
    code, _, _ = cli("run", "tests.cli_flows:Fan", "--store", cli.store, "--config", cli.config)
    assert code == 1
    (run_id,) = run_ids(cli.store)
    code, out, _ = cli("show", run_id, "--store", cli.store)
    assert code == 0 and "join all_loaded[0] waits for 1 of 3 children: bb" in out
    cli("report", run_id, "-o", str(tmp_path / "fan.html"), "--store", cli.store)
    page = (tmp_path / "fan.html").read_text()
    assert "Joins waiting" in page and "waits for 1 of 3 children: bb" in page


def test_the_commands_work_on_a_database_named_in_the_config(cli, backend, tmp_path):
    import yaml

    config = tmp_path / "db.yaml"
    config.write_text(yaml.safe_dump({"EVENTOR": {"LOGGING": {"console": False},
                                                  **backend.config}}))
    store = backend.store
    code, out, err = cli("run", "tests.cli_flows:Numbers", "--store", store, "--config", str(config))
    assert code == 0, err
    code, out, _ = cli("runs", "--store", store, "--config", str(config))
    assert code == 0 and "Numbers" in out
    opened = backend.open()
    (run,) = opened.runs()
    opened.close()
    assert cli("show", run["run_id"], "--store", store, "--config", str(config))[0] == 0
    code, _, _ = cli("report", run["run_id"], "-o", str(tmp_path / "r.html"), "--store", store,
                     "--config", str(config))
    assert code == 0 and "<svg" in (tmp_path / "r.html").read_text()


def test_a_flow_file_importing_a_missing_package_is_one_line_naming_it(cli, tmp_path):
    needy = tmp_path / "needy.py"
    needy.write_text("import no_such_package_here\n")
    code, _, err = cli("run", f"{needy}:Flow")
    assert code == 2 and err.count("\n") == 1
    assert "raised ModuleNotFoundError: No module named 'no_such_package_here'" in err


def test_a_usage_mistake_the_parser_finds_is_one_line_and_exit_2_too(tmp_path):
    script = shutil.which("eventor", path=str(Path(sys.executable).parent))
    for args, message in ((["run", "tests.cli_flows:build_flow", "--bogus"], "No such option: --bogus"),
                          (["run"], "Missing argument 'FLOW'"),
                          (["run", "x.py:F", "--max-loops", "abc"], "Invalid value for '--max-loops'")):
        proc = subprocess.run([script, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error: ") and message in proc.stderr
        assert proc.stderr.count("\n") == 1


def test_a_run_id_that_looks_like_an_option_is_refused(cli):
    code, _, err = cli("recover", "tests.cli_flows:Numbers", "--run-id", "--dry-run",
                       "--store", cli.store)
    assert code == 2 and "looks like an option, not a run id" in err
    assert not Path(cli.store).exists()  # nothing was run or recorded


def test_purge_refuses_a_negative_age(cli):
    code, _, err = cli("purge", "--older-than", "-3", "--store", cli.store)
    assert code == 2 and "give an age >= 0" in err


HELLO = """
from eventor import Event, Flow, step

class Hello(Flow):
    start = Event()

    @step(on=start, executor="thread")
    def hello(self):
        return "hello"
"""


def test_runs_show_and_report_find_the_stores_here_without_store(cli, tmp_path):
    (tmp_path / "hello.py").write_text(HELLO)
    assert cli("run", "hello.py:Hello", "--config", cli.config)[0] == 0
    code, out, _ = cli("runs")
    assert code == 0 and "runs in sqlite:///" in out and "hello.run.db" in out.replace("\n", "")
    (run_id,) = run_ids(str(tmp_path / "hello.run.db"))
    assert run_id in out
    # A second store here: runs lists both, beside their stores; show finds the run's store.
    assert cli("run", "tests.cli_flows:Numbers", "--store", cli.store, "--config", cli.config)[0] == 0
    code, out, _ = cli("runs")
    assert code == 0 and "store" in out and "cli.run.db" in out and "hello.run.db" in out
    code, out, _ = cli("show", run_id)
    assert code == 0 and f"run {run_id}" in out and "hello" in out
    assert cli("report", run_id, "-o", "r.html")[0] == 0
    code, _, err = cli("show", "nosuchrun")
    assert code == 2 and "no run 'nosuchrun' in any store here (cli.run.db, hello.run.db)" in err


def test_with_no_store_anywhere_the_error_says_where_it_looked(cli, tmp_path):
    code, _, err = cli("runs")
    assert code == 2
    assert "no run store found: no --store, no $EVENTOR_STORE" in err and "*.run.db" in err


def test_an_interrupted_run_is_shown_as_interrupted_with_the_command_that_recovers_it(cli, tmp_path):
    import eventor as evr

    store = str(tmp_path / "cut.run.db")
    (tmp_path / "cutprog.py").write_text("def Cut(): ...\n")  # the program the runs name, here
    ev = evr.Eventor(name="cut", store=store, run_id="cut-1", config={"LOGGING": {"console": False}})
    dead = {"host": os.uname().nodename, "pid": 2**22 + 12345}
    # a run that recorded its class or builder; one named as its flow is, where the file has
    # that name; one recorded by a classic program run as a script (its flow is not a name
    # in the file): the command names the file alone, and lists what is there
    ev.store.begin_attempt("cut-1", "cutprog", "restart", now=1.0, **dead,
                           info={"flow": "nightly-cut", "ref": "Cut"})
    ev.store.begin_attempt("cut-2", "cutprog", "restart", now=2.0, **dead, info={"flow": "Cut"})
    ev.store.begin_attempt("cut-3", "cutprog", "restart", now=3.0, **dead, info={"flow": "cut"})
    ev.close()
    code, out, _ = cli("runs", "--store", store)
    out = " ".join(out.split())
    assert code == 0 and "interrupted" in out
    assert "eventor recover cutprog.py:Cut --run-id cut-1" in out
    assert "eventor recover cutprog.py:Cut --run-id cut-2" in out
    assert "eventor recover cutprog.py --run-id cut-3" in out
    code, out, _ = cli("show", "cut-1", "--store", store)
    assert "recover it with eventor recover cutprog.py:Cut --run-id cut-1" in " ".join(out.split())


def test_a_run_records_the_class_or_builder_the_command_line_recovers_it_with(cli, tmp_path):
    (tmp_path / "named.py").write_text(
        "import eventor as evr\n\n"
        "class Nightly(evr.Flow, name='nightly-etl'):\n"
        "    go = evr.Event(entry=True)\n\n"
        "    @evr.step(on=go)\n"
        "    def work(self):\n"
        "        return 1\n\n"
        "def build(store=''):\n"
        "    ev = evr.Eventor(name='cl', store=store)\n"
        "    ev.add_event('go')\n"
        "    ev.add_step('work', func=print)\n"
        "    ev.add_assoc('go', 'work')\n"
        "    ev.trigger_event('go')\n"
        "    return ev\n")
    for ref in ("Nightly", "build"):
        code, out, err = cli("run", f"named.py:{ref}", "--store", cli.store, "--config", cli.config)
        assert code == 0, out + err
    with sqlite3.connect(cli.store) as db:
        infos = [json.loads(i) for (i,) in db.execute("select info from eventor_runs order by created_at")]
    assert [(i["flow"], i["ref"]) for i in infos] == [("nightly-etl", "Nightly"), ("cl", "build")]


def test_show_prints_each_failure_and_each_retried_try_with_its_traceback(cli):
    code, out, _ = cli("run", "tests.cli_flows:Numbers", "-p", "fail=yes", "--store", cli.store,
                       "--config", cli.config)
    assert code == 1 and "total[0] attempt 0: RuntimeError: asked to fail" in out
    assert 'raise RuntimeError("asked to fail")' in out  # the traceback's end, at the run's end
    (run_id,) = run_ids(cli.store)
    code, out, _ = cli("show", run_id, "--store", cli.store)
    assert "total[0] attempt 0: RuntimeError: asked to fail" in out
    code, full, _ = cli("show", run_id, "--store", cli.store, "--full")
    assert "Traceback (most recent call last)" in full


def test_version_and_a_help_that_starts_with_run_and_shows_no_type_noise(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.startswith("eventor 6.")
    code, out, _ = cli("--help")
    assert code == 0
    commands = [line.split()[1] for line in out.splitlines()
                if line.startswith("│ ") and line.split()[1] in
                ("run", "recover", "continue", "graph", "runs", "show", "report", "purge")]
    assert commands[:2] == ["run", "recover"] and "runs" in commands
    code, out, _ = cli("run", "--help")
    assert "<bool>" not in out.replace("-h      <bool>", "") and "<list[str]>" not in out
    assert "NAME=VALUE" in out and "STORE" in out


def test_recover_without_a_run_id_picks_the_flows_latest_run_and_names_it(cli):
    for _ in range(2):
        cli("run", "tests.cli_flows:Numbers", "-p", "fail=yes", "--store", cli.store,
            "--config", cli.config)
    latest = run_ids(cli.store)[-1]
    code, out, _ = cli("recover", "tests.cli_flows:Numbers", "--store", cli.store,
                       "--config", cli.config)
    assert code == 1 and f"run {latest} attempt 1" in out  # still asked to fail


PRINTING = """
import sys
import eventor as evr

def shout(word):
    print("said", word)
    print("complained", word, file=sys.stderr)
    return word

def build(run_mode=evr.RUN_RESTART, run_id=None):
    ev = evr.Eventor(name="printing", run_mode=run_mode, run_id=run_id,
                     config={"LOGGING": {"console": False}})
    go = ev.add_event("go")
    ev.add_assoc(go, ev.add_step("loud", func=shout, args=("process",)),
                 ev.add_step("soft", func=shout, args=("thread",), config={"task_construct": "thread"}))
    ev.trigger_event(go, 1)
    return ev
"""


def test_what_steps_print_is_kept_and_logs_prints_it(cli, tmp_path):
    (tmp_path / "printing.py").write_text(PRINTING)
    code, out, _ = cli("run", "printing.py:build")
    assert code == 0
    (run_id,) = run_ids(str(tmp_path / "printing.run.db"))
    with sqlite3.connect(tmp_path / "printing.run.db") as db:
        kept = dict(db.execute("select step, output from eventor_tasks").fetchall())
    assert kept["loud"] == "said process\ncomplained process\n"  # the process step's fds
    assert "said thread" in kept["soft"] and "complained thread" in kept["soft"]
    code, out, _ = cli("logs", run_id)
    assert code == 0 and "── loud[1] attempt 0 (success) ──" in out and "said process" in out
    code, out, _ = cli("logs", run_id, "soft[1]")
    assert "said thread" in out and "loud" not in out
    code, _, err = cli("logs", run_id, "lod")
    assert code == 2 and "has no task 'lod'. Did you mean 'loud'?" in err


def test_a_function_that_builds_no_eventor_is_one_line_and_a_classic_file_names_its_functions(
        cli, tmp_path):
    code, _, err = cli("run", "json:dumps")
    assert code == 2 and err.count("\n") == 1
    assert "dumps is not a Flow class or a function that builds an Eventor" in err
    (tmp_path / "prog.py").write_text("import eventor as evr\n\ndef build_it():\n"
                                      "    return evr.Eventor(name='p')\n")
    code, _, err = cli("run", "prog.py")
    assert code == 2 and "functions there, one of which may build its Eventor: build_it" in err
    cli("run", "tests.cli_flows:Numbers", "--store", cli.store, "--config", cli.config)
    code, _, err = cli("show", ":smile:", "--store", cli.store)
    assert code == 2 and "no run ':smile:'" in err  # not an emoji


def test_ctx_log_lines_name_the_step_function_as_their_call_site(tmp_path):
    import logging

    import eventor as evr

    seen: list[tuple[str, str]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.funcName, record.getMessage()))

    class Talk(evr.Flow):
        start = evr.Event()

        @evr.step(on=start, executor="thread")
        def talk(self, ctx):
            ctx.log.warning("hello", n=1)

    handler = Keep()
    logging.getLogger("eventor").addHandler(handler)
    try:
        with Talk(store=str(tmp_path / "t.run.db"), config={"LOGGING": {"console": False}}) as flow:
            flow.run()
    finally:
        logging.getLogger("eventor").removeHandler(handler)
    assert ("talk", "hello n=1 (step=talk sequence=0)") in seen


def test_quiet_default_and_verbose_decide_what_a_run_prints(tmp_path):
    (tmp_path / "hello.py").write_text(HELLO)
    eventor = str(Path(sys.executable).with_name("eventor"))

    def run(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([eventor, "run", "hello.py:Hello", *flags], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)

    default, verbose, quiet = run(), run("--verbose"), run("-q")
    assert all(p.returncode == 0 for p in (default, verbose, quiet))
    assert "Running step hello" not in default.stderr and "attempt 0: success" in default.stdout
    assert "Running step hello[0]" in verbose.stderr
    assert quiet.stderr == "" and "progress:" not in quiet.stdout and "success" in quiet.stdout
    bad = run("--log-level", "LOUD")
    assert bad.returncode == 2 and "--log-level LOUD: use DEBUG, INFO, WARNING or ERROR" in bad.stderr


def test_a_mistake_in_a_commands_options_points_at_that_commands_help(tmp_path):
    eventor = str(Path(sys.executable).with_name("eventor"))
    done = subprocess.run([eventor, "purge", "--days", "3"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == "error: No such option: --days (see eventor purge --help)\n"


def test_progress_is_plain_lines_never_redrawn_and_short_runs_print_none(cli, tmp_path):
    (tmp_path / "slowish.py").write_text(
        "import time\nfrom eventor import Event, Flow, step\n\nclass Slowish(Flow):\n"
        "    start = Event()\n\n    @step(on=start, executor='thread')\n    def nap(self):\n"
        "        time.sleep(1.5)\n")
    code, out, _ = cli("run", "slowish.py:Slowish", "--config", cli.config)
    assert code == 0 and "progress: done 1 (failed 0), running 0, waiting 0\n" in out
    assert "\r" not in out and "\x1b[" not in out
    (tmp_path / "hello.py").write_text(HELLO)
    code, out, _ = cli("run", "hello.py:Hello", "--config", cli.config)
    assert code == 0 and "progress:" not in out


def test_recover_of_a_run_id_the_store_never_recorded_starts_it_and_names_a_near_one(cli):
    # "run; if it crashed, recover with the same id" works however far the first engine got
    cli("run", "tests.cli_flows:Numbers", "--store", cli.store, "--config", cli.config)
    (known,) = run_ids(cli.store)
    code, _, err = cli("recover", "tests.cli_flows:Numbers", "--run-id", "never-written",
                       "--store", cli.store, "--config", cli.config)
    assert code == 0 and err.strip() == (f"note: run 'never-written' was never recorded in "
                                         f"sqlite:///{cli.store}: it is started as its first attempt")
    assert sorted(run_ids(cli.store)) == sorted([known, "never-written"])
    typo = known[:-1] + ("0" if known[-1] != "0" else "1")  # one character off
    code, _, err = cli("recover", "tests.cli_flows:Numbers", "--run-id", typo, "--store",
                       cli.store, "--config", cli.config)
    assert code == 0 and f"(did you mean {known!r}?): it is started as its first attempt" in err
    code, _, err = cli("recover", "tests.cli_flows:Numbers", "--run-id", "nosuch", "--dry-run",
                       "--store", cli.store, "--config", cli.config)
    assert code == 2 and f"no run 'nosuch' in sqlite:///{cli.store}" in err  # a plan needs a run


def test_logs_says_which_sequences_ran_and_when_a_task_printed_nothing(cli):
    cli("run", "tests.cli_flows:Numbers", "--store", cli.store, "--config", cli.config)
    (run_id,) = run_ids(cli.store)
    code, out, _ = cli("logs", run_id, "count[0]", "--store", cli.store)
    assert code == 0 and "(no output)" in out
    code, _, err = cli("logs", run_id, "count[7]", "--store", cli.store)
    assert code == 2 and "count ran in sequences 0" in err
    code, _, err = cli("logs", run_id, "count[0", "--store", cli.store)
    assert code == 2 and "write STEP or STEP[SEQUENCE]" in err


def test_recover_shows_its_tasks_whatever_other_stores_are_here(cli, tmp_path):
    (tmp_path / "hello.py").write_text(HELLO)
    (tmp_path / "zcount.py").write_text("from tests.cli_flows import Numbers  # noqa: F401\n")
    assert cli("run", "hello.py:Hello", "--config", cli.config)[0] == 0  # hello.run.db
    assert cli("run", "zcount.py:Numbers", "-p", "fail=yes", "--config", cli.config)[0] == 1
    code, out, _ = cli("recover", "zcount.py:Numbers", "-p", "fail=no", "--config", cli.config)
    assert code == 0 and "│ total" in out and "attempt 1: success" in out


def test_log_level_debug_shows_a_steps_debug_lines_and_the_param_hint_names_real_ones(cli, tmp_path):
    (tmp_path / "deep.py").write_text(
        "from eventor import Event, Flow, step\n\nclass Deep(Flow):\n    day: str = 'mon'\n"
        "    start = Event()\n\n    @step(on=start, executor='thread')\n    def s(self, ctx):\n"
        "        ctx.log.debug('deep detail')\n")
    eventor = str(Path(sys.executable).with_name("eventor"))
    done = subprocess.run([eventor, "run", "deep.py:Deep", "--log-level", "DEBUG"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "deep detail" in done.stderr
    code, _, err = cli("run", "deep.py:Deep", "-p", "day")
    assert code == 2 and "e.g. --param day=... (Deep's parameters: day)" in err


def test_runs_looks_in_the_workdir_of_the_config_where_the_run_was_recorded(cli, tmp_path):
    work = tmp_path / "wd"
    work.mkdir()
    config = tmp_path / "cfg.yaml"
    config.write_text(f"EVENTOR:\n  workdir: {work}\n  LOGGING:\n    console: false\n")
    code, out, err = cli("run", "tests.cli_flows:Numbers", "--config", str(config))
    assert code == 0, out + err
    assert [p.name for p in work.glob("*.run.db")] and not list(tmp_path.glob("*.run.db"))
    code, out, err = cli("runs", "--config", str(config))
    assert code == 0 and "success" in out, out + err
    (run_id,) = run_ids(str(next(work.glob("*.run.db"))))
    code, out, err = cli("show", run_id, "--config", str(config))
    assert code == 0 and "total" in out, out + err


def test_a_missing_parameter_is_asked_for_as_the_command_line_gives_it(cli, tmp_path):
    (tmp_path / "params.py").write_text(
        "import eventor as evr\n\n"
        "class P(evr.Flow):\n"
        "    who: str\n"
        "    day: str\n"
        "    times: int = 1\n"
        "    go = evr.Event(entry=True)\n\n"
        "    @evr.step(on=go)\n"
        "    def hello(self):\n"
        "        return self.who\n")
    code, _, err = cli("run", "params.py:P", "-p", "who=me", "--config", cli.config)
    assert code == 2 and err.strip() == "error: P needs 'day': give -p day=..."
    code, _, err = cli("run", "params.py:P", "--config", cli.config)
    assert code == 2 and err.strip() == "error: P needs 'who', 'day': give -p who=... -p day=..."
    assert list(tmp_path.glob("*.run.db")) == []  # refused before anything was recorded


STUCK = '''
import eventor as evr

class Stuck(evr.Flow):
    start = evr.Event(entry=True)
    found = evr.Event()
    loaded = evr.Event()
    failed = evr.Event()
    all_loaded = evr.join(loaded, over=found)

    @evr.step(on=start, emits=[found], executor="thread")
    def scan(self, ctx):
        for name in ("a.csv", "bad.csv"):
            ctx.trigger(self.found, name)

    @evr.step(on=found, success=loaded, failure=failed, executor="thread")
    def load(self, ctx):
        if ctx.sequence == "bad.csv":
            raise ValueError("bad")

    @evr.step(on=failed, executor="thread")
    def quarantine(self):
        pass

    @evr.step(on=all_loaded, executor="thread")
    def summarize(self):
        pass
'''


def test_a_paused_run_says_what_it_waits_for_and_how_to_finish_it(cli, tmp_path):
    (tmp_path / "stuck.py").write_text(STUCK)
    code, out, _ = cli("run", "stuck.py:Stuck", "--config", cli.config)
    assert code == 0 and "attempt 0: paused" in out  # not failed: the failure was handled
    lines = out.splitlines()
    assert "join all_loaded[0] waits for 1 of 2 children: bad.csv" in lines
    assert any(line.startswith("paused, not finished: a join waits for children that failed")
               and "eventor recover stuck.py:Stuck --run-id " in line for line in lines)
    code, out, _ = cli("run", "tests.cli_flows:Numbers", "--max-loops", "1", "--config", cli.config,
                       "--store", cli.store)
    assert code == 0 and "attempt 0: paused" in out
    assert "1 task left ready (a bounded run)" in out.splitlines()
    assert "paused, not finished: finish it with eventor continue MODULE:Numbers --run-id " in out


def test_a_flow_nested_in_a_class_and_a_partial_builder_are_found_by_their_names(cli, tmp_path):
    (tmp_path / "jobs.py").write_text(
        "import functools\n"
        "import eventor as evr\n\n"
        "class Jobs:\n"
        "    class Nightly(evr.Flow):\n"
        "        go = evr.Event(entry=True)\n\n"
        "        @evr.step(on=go)\n"
        "        def work(self):\n"
        "            return 1\n\n"
        "def build(label, store=''):\n"
        "    return evr.Eventor(name=label, store=store)\n\n"
        "tuesday = functools.partial(build, 'tue')\n")
    code, out, err = cli("run", "jobs.py:Jobs.Nightly", "--store", cli.store, "--config", cli.config)
    assert code == 0 and "success" in out, out + err
    with sqlite3.connect(cli.store) as db:
        (info,) = [json.loads(i) for (i,) in db.execute("select info from eventor_runs")]
    assert info["ref"] == "Jobs.Nightly"  # which `eventor recover jobs.py:Jobs.Nightly` finds
    code, out, err = cli("run", "jobs.py:tuesday", "--store", cli.store, "--config", cli.config)
    assert code == 0, out + err


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


class Typed(evr.Flow):
    mode: Mode = Mode.FAST
    limit: int | None = None
    verify: bool = True
    start = evr.Event()

    @evr.step(on=start, executor="thread")
    def show(self):
        if self.mode is Mode.SLOW and not self.verify:
            raise RuntimeError("not verified")
        return f"{self.mode.value} {self.limit} {self.verify}"


def test_flow_cli_options_for_an_enum_a_none_default_and_a_true_bool(tmp_path, monkeypatch):
    from eventor.cli import flow_app

    monkeypatch.chdir(tmp_path)
    app, runner, store = flow_app(Typed), CliRunner(), str(tmp_path / "typed.run.db")
    config = tmp_path / "quiet.yaml"
    config.write_text("EVENTOR:\n  LOGGING:\n    console: false\n")
    help_text = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "120"}).stdout
    assert "<fast|slow>" in help_text and "--no-verify" in help_text
    result = runner.invoke(app, ["run", "--store", store, "--config", str(config), "-q"])
    assert result.exit_code == 0, result.stderr
    assert '"fast None True"' in result.stdout  # every default is the flow's own
    result = runner.invoke(app, ["run", "--mode", "slow", "--no-verify", "--limit", "3",
                                 "--store", store, "--config", str(config), "-q"])
    assert result.exit_code == 1 and "not verified" in result.stdout + result.stderr
    failed = run_ids(store)[-1]
    # the recorded Enum comes back as a Mode: the run can be recovered, with a fix
    result = runner.invoke(app, ["recover", "--run-id", failed, "-p", "verify=true", "--store",
                                 store, "--config", str(config)])
    assert result.exit_code == 0, result.stderr
    assert '"slow 3 True"' in result.stdout
    runs = runner.invoke(app, ["runs", "--store", store], env={"COLUMNS": "250"}).stdout
    row = next(line for line in runs.splitlines() if failed in line)
    assert "mode=slow" in row and "verify=True" in row  # as its latest attempt ran


OWN = """
import eventor as evr

class Own(evr.Flow):
    start = evr.Event()

    @evr.step(on=start, executor="thread")
    def hello(self):
        print("hello from own")
        return 1

if __name__ == "__main__":
    Own.cli()
"""


@pytest.mark.slow
def test_a_flow_s_own_reading_commands_read_its_store_and_its_runs(tmp_path):
    (tmp_path / "own.py").write_text(OWN)
    (tmp_path / "other.py").write_text(OWN.replace("Own", "Other").replace("own", "other"))
    env = {**os.environ, "EVENTOR_CONFIG_TAG": "EVENTOR", "COLUMNS": "200"}

    def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, script, *args, *(["-q"] if args == ("run",) else [])],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)

    assert run("own.py", "run").returncode == 0 and run("other.py", "run").returncode == 0
    (other,) = run_ids(str(tmp_path / "other.run.db"))
    listed = run("own.py", "runs")
    assert listed.returncode == 0 and "runs in sqlite:///" in listed.stdout  # one store, its own
    assert other not in listed.stdout and "Own" in listed.stdout
    logs = run("own.py", "logs", other)
    assert logs.returncode == 2 and f"no run {other!r}" in logs.stderr
    (own,) = run_ids(str(tmp_path / "own.run.db"))
    assert "hello from own" in run("own.py", "logs", own).stdout
