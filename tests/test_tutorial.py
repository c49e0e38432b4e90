"""
The tutorial (docs/tutorial.md) shows what its programs really print.

Each stage of the tutorial is a program in examples/tutorial/, included into the page by a
``--8<-- "examples/tutorial/NN_name.py"`` line and followed by the output it prints: a
```` ```text ```` block (stdout), or ```` ```console ```` blocks of ``$ command`` lines and
their output, run here as a shell session would, with the real ``eventor`` command. The
programs run as real subprocesses in a fresh directory, and their output must match the
page's, line for line (for console tables: word for word, as the table's width depends on
the host name), but for what differs on every run: run ids (the n-th id of the page stands
for the n-th id printed), times, durations, the directory, the host and where eventor is
installed.

After a change that alters what the programs print, rewrite the page's outputs from real
runs, then read the diff before committing it:

    .venv/bin/python tests/test_tutorial.py --update
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import eventor

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "tutorial.md"
STAGES = ROOT / "examples" / "tutorial"
EVENTOR_DIR = Path(eventor.__file__).resolve().parent

# What the page shows in place of what differs from machine to machine.
DOC_CWD = "/home/me/shop"
DOC_EVENTOR = "/home/me/shop/.venv/lib/python3.11/site-packages/eventor"
DOC_HOST = "vm"

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
INCLUDE = re.compile(r'--8<-- "(examples/tutorial/[^"]+)"')
RUN_ID = re.compile(r"\b\d{8}-\d{6}-[0-9a-f]{6}\b")
WHEN = re.compile(r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\b")
TOOK = re.compile(r"\b\d+\.\d{3}s\b")  # the CLI's durations (0.503s); not "0.5 s" in messages
EVENTOR_LINE = re.compile(rf'(File "{re.escape(DOC_EVENTOR)}/[^"]+", line )\d+')
BOX = re.compile(r"[\u2500-\u257f]")  # the borders of rich's tables
SLOW = {"10_cli.py"}  # a session of several eventor commands


@dataclass
class Stage:
    """One program of the tutorial, and what the page says it prints."""

    path: Path
    text: str | None  # the ```text block after its include: its stdout
    session: list[tuple[str, str]]  # the $ commands of the ```console blocks after it, with output


def stages(page: str | None = None) -> list[Stage]:
    """
    The page's stages, in order. Every include is followed by its output, and every output
    block belongs to an include: a block of output nothing checks would drift unseen.
    """
    blocks = [(m.group(1), m.group(2)) for m in FENCE.finditer(PAGE.read_text() if page is None else page)]
    found: list[Stage] = []
    included_at = -2  # the index of the last include block
    for n, (lang, body) in enumerate(blocks):
        if lang == "python" and "--8<--" in body:
            included_at = n
            match = INCLUDE.fullmatch(body.strip())
            assert match, f"a tutorial block includes something, but not as one --8<-- line: {body!r}"
            after = blocks[n + 1][0] if n + 1 < len(blocks) else "nothing"
            assert after in ("text", "console"), (
                f"{match.group(1)} is followed by ```{after}, not by its output (```text or ```console)")
            found.append(Stage(ROOT / match.group(1), None, []))
        elif lang == "text":
            assert included_at == n - 1, (
                f"a ```text block that is not the output of the program included before it: {body[:60]!r}")
            found[-1].text = body
        elif lang == "console":
            assert found, f"a ```console block before any program: {body[:80]!r}"
            found[-1].session.extend(commands(body))
    return found


def commands(block: str) -> list[tuple[str, str]]:
    """A console block as ``[(command, output), ...]``."""
    lines = block.splitlines()
    assert lines and lines[0].startswith("$ "), f"a ```console block starts with a $ command: {block[:80]!r}"
    session: list[tuple[str, str]] = []
    for line in lines:
        if line.startswith("$ "):
            session.append((line[2:], ""))
        else:
            command, output = session[-1]
            session[-1] = (command, output + line + "\n")
    return session


def machine_neutral(text: str, cwd: Path) -> str:
    """Program output as the page shows it: this directory, host and eventor as the page's."""
    text = text.replace(str(cwd.resolve()), DOC_CWD).replace(str(cwd), DOC_CWD)
    text = text.replace(str(EVENTOR_DIR), DOC_EVENTOR)
    host = socket.gethostname()
    if host != DOC_HOST:  # a table cell, padded to the host column: keep the columns aligned
        text = re.sub(rf"(?<=│ ){re.escape(host)}( *)(?= │)",
                      lambda m: DOC_HOST.ljust(len(m.group(0))), text)
        text = re.sub(rf"\b{re.escape(host)}\b", DOC_HOST, text)
    # A progress line appears only when a run takes more than a second: a matter of load.
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("progress: "))


def match_ids(expected: str, actual: str, ids: dict[str, str], where: str) -> str:
    """
    ``actual`` with its run ids replaced by the page's, learning which is which in ``ids``
    (page id -> real id): the same page id must always stand for the same run.
    """
    want, got = RUN_ID.findall(expected), RUN_ID.findall(actual)
    assert len(want) == len(got), f"{where}: the page shows {len(want)} run ids, the output has {len(got)}"
    for page_id, real_id in zip(want, got, strict=True):
        assert ids.setdefault(page_id, real_id) == real_id, (
            f"{where}: {page_id} stands for two runs on the page")
    back = {real: page for page, real in ids.items()}
    assert len(back) == len(ids), f"{where}: two run ids of the page stand for one run"
    return RUN_ID.sub(lambda m: back.get(m.group(0), m.group(0)), actual)


def lines(text: str) -> list[str]:
    """
    Lines without trailing blanks (rich pads its titles), times and durations as
    placeholders, and no line numbers in eventor's own frames of a traceback (the user's are
    kept).
    """
    text = TOOK.sub("<took>", WHEN.sub("<when>", text))
    text = EVENTOR_LINE.sub(r"\1<line>", text)
    return [line.rstrip() for line in text.rstrip().splitlines()]


def words(text: str) -> list[str]:
    """The words of the text, tables' borders left out: how a table wraps its cells varies."""
    return BOX.sub(" ", "\n".join(lines(text))).split()


def assert_same(expected: str, actual: str, ids: dict[str, str], where: str) -> None:
    actual = match_ids(expected, actual, ids, where)
    if BOX.search(expected):
        assert words(actual) == words(expected), where
    else:
        assert lines(actual) == lines(expected), where


def run_program(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(path)], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=clean_env())


def clean_env() -> dict[str, str]:
    """This environment without the variables that would point eventor at another store or config."""
    return {k: v for k, v in os.environ.items() if not k.startswith("EVENTOR_")}


def argv(command: str, ids: dict[str, str], where: str) -> list[str]:
    """A command of the page as this machine runs it: the real eventor script, the real run ids."""
    args = shlex.split(command)
    for n, arg in enumerate(args):
        if RUN_ID.fullmatch(arg):
            assert arg in ids, f"{where}: {arg} is not the id of a run printed before it on the page"
            args[n] = ids[arg]
    if args[0] == "eventor":
        script = Path(sys.executable).parent / "eventor"  # the console script of this venv
        assert script.exists(), f"no {script}: install eventor in this venv (pip install -e .)"
        return [str(script), *args[1:]]
    assert args[0] == "python", f"{where}: the session runs eventor and python only, not {args[0]}"
    return [sys.executable, *args[1:]]


Ran = subprocess.CompletedProcess[str]


def run_session(stage: Stage, cwd: Path) -> Iterator[tuple[str, Ran, dict[str, str]]]:
    """Run the stage's console session in ``cwd``, next to a copy of its program."""
    shutil.copy(stage.path, cwd / stage.path.name)
    ids: dict[str, str] = {}
    for command, _ in stage.session:
        proc = subprocess.run(argv(command, ids, f"$ {command}"), cwd=cwd, capture_output=True,
                              text=True, timeout=120, env=clean_env())
        yield command, proc, ids


# -- the page ---------------------------------------------------------------------------


def test_the_page_includes_every_program_of_the_tutorial_once_in_order():
    included = [stage.path.name for stage in stages()]
    programs = sorted(path.name for path in STAGES.glob("*.py"))
    assert included == programs
    assert len(programs) >= 10


def test_a_program_without_its_output_on_the_page_is_refused():
    page = '```python\n--8<-- "examples/tutorial/01_first.py"\n```\n\nsome prose\n\n```bash\nls\n```\n'
    with pytest.raises(AssertionError, match="not by its output"):
        stages(page)
    with pytest.raises(AssertionError, match="not the output of the program"):
        stages("```text\nhello\n```\n")
    with pytest.raises(AssertionError, match="not the output of the program"):  # not an include's
        stages(page.replace("some prose", "```text\nits output\n```\n\n```python\nprint(1)\n```")
               .replace("```bash\nls\n```", "```text\n1\n```"))


def test_output_that_differs_from_the_page_fails_and_run_ids_must_match_one_to_one():
    assert_same("run 20261128-101500-3fa9c1: success\n", "run 20991231-235959-abcdef: success\n", {}, "ok")
    with pytest.raises(AssertionError):
        assert_same("run 20261128-101500-3fa9c1: success\n", "run 20991231-235959-abcdef: failure\n", {}, "x")
    with pytest.raises(AssertionError, match="stands for two runs"):
        assert_same("20261128-101500-3fa9c1\n20261128-101500-3fa9c1\n",
                    "20991231-235959-abcdef\n20991231-235959-000000\n", {}, "x")
    with pytest.raises(AssertionError):  # a table is compared word for word
        assert_same("│ load │ success │\n", "│ load │ failure │\n", {}, "x")


# -- the programs -------------------------------------------------------------------------


def check_recovery(cwd: Path, proc: subprocess.CompletedProcess[str]) -> None:
    """Stage 6 killed a real engine: its attempt is recorded as crashed, and no worker is left."""
    with sqlite3.connect(cwd / "06_recovery.run.db") as db:
        attempts = db.execute("select attempt, mode, status from eventor_attempts order by attempt")
        assert attempts.fetchall() == [(0, "restart", "crashed"), (1, "recover", "success")]
    assert "was left running by an engine that died" in proc.stderr
    deadline = time.monotonic() + 5
    while (left := processes_in(cwd)) and time.monotonic() < deadline:  # the killed load's worker
        time.sleep(0.05)
    assert not left, f"processes left running in {cwd}: {left}"
    assert (cwd / "warehouse" / "2026-11-02.csv").read_text().split() == ["tea,7.0", "cake,4.0"]


def processes_in(cwd: Path) -> list[int]:
    """The pids of the processes whose working directory is ``cwd``."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if Path(os.readlink(proc / "cwd")) == cwd.resolve():
                pids.append(int(proc.name))
        except OSError:  # gone, or not ours to look at
            continue
    return pids


def check_delays(cwd: Path, proc: subprocess.CompletedProcess[str]) -> None:
    """Stage 7's delay is a row in the store, fired no earlier than it was due."""
    with sqlite3.connect(cwd / "07_delays.run.db") as db:
        delays = db.execute("select target, due_at - activated_at, fired_at >= due_at from eventor_delays")
        assert delays.fetchall() == [("publish", pytest.approx(1.0), 1)]


def check_pools(cwd: Path, proc: subprocess.CompletedProcess[str]) -> None:
    """Stage 8 counted four loads, each taking then giving back the warehouse."""
    changes = [line.split()[1] for line in (cwd / "writers.log").read_text().splitlines()]
    assert sorted(changes) == ["-1"] * 4 + ["1"] * 4


def check_retries(cwd: Path, proc: subprocess.CompletedProcess[str]) -> None:
    """Stage 9 recorded the failed tries, and stopped the hung download."""
    with sqlite3.connect(cwd / "09_retries.run.db") as db:
        tries = db.execute("select step, sequence, try, error_type from eventor_tries order by sequence, try")
        assert tries.fetchall() == [("download_prices", day, n, "ConnectionError")
                                    for day in ("2026-11-02", "2026-11-03") for n in (1, 2)]
        (error,) = db.execute("select error_type from eventor_tasks where sequence = '2026-11-03' "
                              "and step = 'download_orders'").fetchone()
    assert error == "StepTimeout"
    assert "retrying in 0.05s" in proc.stderr and "retrying in 0.1s" in proc.stderr


CHECKS = {"06_recovery.py": check_recovery, "07_delays.py": check_delays, "08_pools.py": check_pools,
          "09_retries.py": check_retries}


def program_params() -> list[object]:
    return [pytest.param(stage, id=stage.path.name,
                         marks=[pytest.mark.slow] if stage.path.name in SLOW else []) for stage in stages()]


@pytest.mark.parametrize("stage", program_params())
def test_each_program_prints_what_the_tutorial_shows(stage: Stage, tmp_path: Path):
    assert stage.text or stage.session, f"the page shows no output of {stage.path.name}"
    if stage.text is not None:
        proc = run_program(stage.path, tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        assert_same(stage.text, machine_neutral(proc.stdout, tmp_path), {}, stage.path.name)
        if stage.path.name in CHECKS:
            CHECKS[stage.path.name](tmp_path, proc)
    for command, proc, ids in run_session(stage, tmp_path):
        expected = dict(stage.session)[command]
        assert proc.returncode == 0, f"$ {command}\n{proc.stdout}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr, proc.stderr
        assert_same(expected, machine_neutral(proc.stdout, tmp_path), ids, f"$ {command}")
    if stage.session:
        report = (tmp_path / "run.html").read_text()
        assert all(step in report for step in ("download_orders", "download_prices", "publish"))
        assert [c for c, _ in stage.session if c.startswith("eventor ")], "the CLI stage runs eventor"


# -- rewriting the page -------------------------------------------------------------------


def update() -> None:
    """Rewrite the page's outputs from real runs (see the module docstring)."""
    page = PAGE.read_text()
    done = 0
    for stage in stages(page):
        with tempfile.TemporaryDirectory() as tmp:
            cwd = Path(tmp)
            if stage.text is not None:
                proc = run_program(stage.path, cwd)
                if proc.returncode:
                    raise SystemExit(f"{stage.path.name} failed:\n{proc.stderr}")
                new = "".join(line.rstrip() + "\n" for line in machine_neutral(proc.stdout, cwd).splitlines())
                page = page.replace(f"```text\n{stage.text}```", f"```text\n{new}```", 1)
                done += 1
            if stage.session:
                page = update_session(page, stage, cwd)
                done += 1
    PAGE.write_text(page)
    print(f"rewrote {done} outputs in {PAGE}; read the diff before committing it")


def update_session(page: str, stage: Stage, cwd: Path) -> str:
    shutil.copy(stage.path, cwd / stage.path.name)
    ids: dict[str, str] = {}  # the page's ids -> this session's
    printed: list[str] = []  # the run ids this session printed, in order
    for command, old in stage.session:
        args = shlex.split(command)
        for n, arg in enumerate(args):  # an id no output showed: the session's first run
            if RUN_ID.fullmatch(arg):
                args[n] = ids.get(arg) or printed[0]
        new_command = shlex.join(args)
        proc = subprocess.run(argv(new_command, {i: i for i in printed}, new_command), cwd=cwd,
                              capture_output=True, text=True, timeout=120, env=clean_env())
        if proc.returncode:
            raise SystemExit(f"$ {new_command} failed:\n{proc.stdout}{proc.stderr}")
        output = "".join(line.rstrip() + "\n" for line in machine_neutral(proc.stdout, cwd).splitlines())
        was, now = RUN_ID.findall(old), RUN_ID.findall(output)
        if len(was) == len(now):
            ids.update(zip(was, now, strict=True))
        printed.extend(i for i in now if i not in printed)
        page = page.replace(f"$ {command}\n{old}", f"$ {new_command}\n{output}", 1)
    return page


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        raise SystemExit(__doc__)
    update()
