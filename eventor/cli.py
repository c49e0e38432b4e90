"""
The ``eventor`` command: run, recover and continue flows; list, show, draw and report runs.

    eventor run examples/etl.py:Etl --param day=2026-11-01
    eventor recover examples/etl.py:Etl --run-id 20261128-101500-3fa9c1 --dry-run
    eventor runs --store etl.run.db
    eventor show RUN_ID --json
    eventor graph examples/etl.py:Etl --format dot
    eventor report RUN_ID -o run.html
    eventor purge --older-than 30

A FLOW is ``path/to/file.py:Name`` or ``package.module:Name``, where ``Name`` is a `Flow`
class or a function that builds and returns an `Eventor` (a classic program). Exit codes:
0 the run succeeded, 1 it failed, 2 the command was wrong (one line says how; ``--debug``
shows the traceback). ``Etl.cli()`` makes the same commands for one flow, with an option
per flow parameter. Only this module imports typer.
"""

from __future__ import annotations

import ast
import contextlib
import enum
import importlib
import importlib.util
import inspect
import json
import logging
import os
import shlex
import signal
import sys
import threading
import time
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from eventor.classic import Eventor
from eventor.config import default_program, load_config
from eventor.dsl import FlowMeta
from eventor.enums import RunMode
from eventor.exceptions import (
    EventorError,
    FlowDefinitionError,
    RunClaimedError,
    closest,
    did_you_mean,
)
from eventor.joins import waiting_in
from eventor.log import set_console_level
from eventor.params import Param, checked, coerce, recorded
from eventor.recovery import interrupted, owner_alive
from eventor.session import open_configured, purge
from eventor.store import Store, sqlite_file

__all__ = ["CliError", "app", "flow_app", "load_target", "main"]


class CliError(Exception):
    """A command line mistake: printed as one line, exit code 2."""


_state = {"debug": False, "quiet": False}
class _Consoles:
    """Rich consoles made when first printed to: wide tables when the output is not a terminal."""

    @property
    def out(self) -> Console:
        return Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 160)

    @property
    def err(self) -> Console:
        return Console(stderr=True, highlight=False, emoji=False,
                       width=None if sys.stderr.isatty() else 160)


_con = _Consoles()


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """
    Print what went wrong in one line (several for a flow's definition problems), exit 2.

    Also undoes what loading a flow file changed in this process (the program name, the
    import path), so that commands run in one process (tests, ``Flow.cli``) stay apart.
    """
    program, path = os.environ.get("EVENTOR_PROGRAM"), list(sys.path)
    try:
        yield
    except (CliError, EventorError, FileNotFoundError) as exc:
        if _state["debug"]:
            raise
        text = str(exc) if isinstance(exc, FlowDefinitionError) else str(exc).splitlines()[0]
        # Written as is: rich would fold a long line to the console's width.
        sys.stderr.write(f"error: {text}\n")
        sys.stderr.flush()
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        if _state["debug"]:
            raise
        sys.stderr.write("interrupted (Ctrl-C): a run in progress is left interrupted; "
                         "eventor runs shows it, with the command that recovers it\n")
        sys.stderr.flush()
        raise typer.Exit(130) from None
    finally:
        sys.path[:] = path
        if program is None:
            os.environ.pop("EVENTOR_PROGRAM", None)
        else:
            os.environ["EVENTOR_PROGRAM"] = program


# -- finding flows --------------------------------------------------------------------------


def load_target(ref: str) -> Any:
    """
    The `Flow` class or builder function that ``ref`` names.

    Raises:
        CliError: the file or module does not exist, or has no such flow (the message lists
            the flows it does have).
    """
    module_part, sep, name = ref.rpartition(":")
    if not sep:
        module_part, name = ref, ""
    if module_part.endswith(".py") or os.sep in module_part:
        path = Path(module_part)
        if not path.is_file():
            raise CliError(f"{ref}: no such file {path}; give path/to/file.py:FlowName")
        os.environ["EVENTOR_PROGRAM"] = path.stem  # the store the program itself would use
        sys.path.insert(0, str(path.parent.resolve()))  # for the file's own sibling imports
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        with _importing(ref, str(path)):
            spec.loader.exec_module(module)
        where = str(path)
    else:
        try:
            with _importing(ref, module_part):
                module = importlib.import_module(module_part)
        except ModuleNotFoundError as exc:
            raise CliError(f"{ref}: cannot import {module_part!r} ({exc}); give "
                           "path/to/file.py:FlowName or package.module:FlowName") from None
        where = module_part
    flows = [n for n, v in vars(module).items()
             if _is_flow(v) and v.__module__ == module.__name__]
    if not name:
        if len(flows) == 1:
            return getattr(module, flows[0])
        builders = [n for n, v in vars(module).items() if inspect.isfunction(v)
                    and v.__module__ == module.__name__ and not n.startswith("_")]
        listed = ", ".join(flows) or "none"
        hint = (f"; functions there, one of which may build its Eventor: {', '.join(builders)}"
                if builders and not flows else "")
        raise CliError(f"{ref}: say which flow, as {module_part}:Name (flows in {where}: "
                       f"{listed}{hint})")
    target: Any = module
    for part in name.split("."):  # a class's qualified name: Jobs.Nightly
        target = getattr(target, part, None)
    if target is None:
        raise CliError(f"{ref}: {where} has no {name!r}." + did_you_mean(name, vars(module))
                       + f" Flows there: {', '.join(flows) or 'none'}")
    if _is_flow(target):
        return target
    if callable(target) and not isinstance(target, type):
        return target
    raise CliError(f"{ref}: {name!r} is neither a Flow class nor a function returning an Eventor")


@contextlib.contextmanager
def _importing(ref: str, what: str) -> Iterator[None]:
    """A user's file or module that fails to import is a one-line CliError naming the cause."""
    try:
        yield
    except SyntaxError as exc:
        raise CliError(f"{ref}: {exc.filename or what}:{exc.lineno}: {exc.msg}; fix its "
                       "syntax") from None
    except (EventorError, CliError):
        raise
    except Exception as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == what:
            raise  # the module itself is not there: the caller says how to name one
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CliError(f"{ref}: importing {what} raised {type(exc).__name__}: {first} "
                       "(--debug shows where)") from exc


def _is_flow(target: Any) -> bool:
    """A flow class (the base of flows, `Flow` itself, is none)."""
    return isinstance(target, FlowMeta) and "__eventor_flow__" in vars(target)


def _options(store: str | None, config: Path | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if store:
        options["store"] = store
    if config:
        options["config"] = str(config)
    return options


def _parse_params(pairs: list[str], known: Mapping[str, Param], flow: str) -> dict[str, Any]:
    """``NAME=VALUE`` pairs as typed parameter values."""
    values = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            example = next(iter(known), "name")
            hint = f"{flow}'s parameters: {', '.join(known)}" if known else f"{flow} has none"
            raise CliError(f"--param {pair!r}: write NAME=VALUE, e.g. --param {example}=... "
                           f"({hint})")
        if name not in known:
            raise CliError(f"--param {name}: {flow} has no parameter {name!r}."
                           + did_you_mean(name, known)
                           + f" Its parameters: {', '.join(known) or 'none'}")
        values[name] = checked(flow, known[name], coerce(known[name], text))
    return values


def _require_params(target: Any, values: Mapping[str, Any]) -> None:
    """
    A new run of a Flow class is given the parameters that have no default: asked for as
    the command line gives them. (A function's missing argument may mean it is no builder.)
    """
    if not _is_flow(target):
        return
    missing = [name for name, p in target.parameters.items() if p.required and name not in values]
    if missing:
        flags = " ".join(f"-p {name}=..." for name in missing)
        raise CliError(f"{_name_of(target)} needs {', '.join(map(repr, missing))}: give {flags}")


_RUN_ARGUMENTS = ("run_mode", "run_id", "store", "recovery_run")  # the CLI's, not parameters


def _builder_params(builder: Callable[..., Any]) -> dict[str, Param]:
    """A classic program's builder arguments, as parameters (typed by annotation or default)."""
    params = {}
    for p in inspect.signature(builder).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in _RUN_ARGUMENTS:
            continue
        tp = p.annotation if p.annotation is not p.empty and isinstance(p.annotation, type) else (
            type(p.default) if p.default not in (p.empty, None) else str)
        params[p.name] = Param(p.name, tp, p.default)
    return params


def _build(builder: Callable[..., Any], values: dict[str, Any], **wanted: Any) -> Eventor:
    """Call a classic program's builder with what it accepts; it must return an Eventor."""
    accepted = inspect.signature(builder).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    for key, value in wanted.items():
        if value is None:
            continue
        if key not in accepted and not takes_any:
            raise CliError(f"{builder.__name__}() takes no {key}=; add it to its parameters "
                           f"(and pass it to Eventor) to use this command")
        values[key] = value
    name = getattr(builder, "__qualname__", repr(builder))
    try:
        inspect.signature(builder).bind(**values)
    except TypeError as exc:
        raise CliError(f"{name} is not a Flow class or a function that builds an Eventor: "
                       f"calling it with {sorted(values) or 'no arguments'} fails ({exc})") from None
    ev = builder(**values)
    if not isinstance(ev, Eventor):
        raise CliError(f"{name}() returned {type(ev).__name__}, not an Eventor: give a Flow "
                       "class or a function that builds and returns an Eventor")
    if "<locals>" not in name:
        ev._ref = name  # its runs record it: `runs` and `show` tell how to recover them
    return ev


def _build_again(builder: Callable[..., Any], values: dict[str, Any], **wanted: Any) -> Eventor:
    """
    A classic program's Eventor for a recover or continue: built with the parameters its run
    recorded, unless ``values`` gives others (the difference is logged).
    """
    ev = _build(builder, dict(values), **wanted)
    params = _builder_params(builder)
    before = (ev.store.run(ev.run_id) or {}).get("info", {}).get("params") or {}
    missing = {k: coerce(params[k], v) for k, v in before.items() if k in params and k not in values}
    if any(missing[k] != _default(params[k]) for k in missing):
        ev.close()
        ev = _build(builder, {**values, **missing}, **wanted)
    ev.record_params({**before, **recorded(values)})
    return ev


def _default(param: Param) -> Any:
    return None if param.required else param.default


# -- progress and summaries ----------------------------------------------------------------


def _verbosity(quiet: bool, verbose: bool, log_level: str | None) -> None:
    """
    What a run prints besides its final table: by default the live progress line, what the
    steps log, and the engine's warnings and errors; ``--verbose`` adds the engine's line per
    step event; ``--quiet`` keeps only errors, and no progress line. ``--log-level`` sets
    the least level shown (the engine's step lines included).
    """
    level: Any = None
    if log_level is not None:
        level = logging.getLevelName(log_level.upper())
        if not isinstance(level, int):
            raise CliError(f"--log-level {log_level}: use DEBUG, INFO, WARNING or ERROR")
    elif quiet:
        level = logging.ERROR
    _state["quiet"] = quiet
    set_console_level(level, engine_lines=verbose or log_level is not None)


class _Progress:
    """
    Task counts while a run goes on: a plain line at most once a second, on a terminal too.
    A line redrawn in place would be overwritten by the log lines that steps and worker
    processes write to the same screen (rich cannot see those), and would leave stale text
    in redirected output.
    """

    def __init__(self) -> None:
        self.last = time.monotonic()  # the first line after a second: short runs print none
        self.counts: Mapping[str, int] = {}

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    @staticmethod
    def _line(counts: Mapping[str, int]) -> str:
        return (f"done {counts.get('done', 0)} (failed {counts.get('failed', 0)}), "
                f"running {counts.get('running', 0)}, waiting {counts.get('waiting', 0)}")

    def __call__(self, counts: Mapping[str, int]) -> None:
        self.counts = dict(counts)
        now = time.monotonic()
        if now - self.last >= 1.0 and not _state.get("quiet"):
            self.last = now
            _con.out.print(f"progress: {self._line(counts)}", markup=False)


def _when(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _took(start: float | None, end: float | None) -> str:
    return "" if start is None or end is None else f"{end - start:.3f}s"


def _first_line(text: str | None, width: int = 60) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def _task_table(rows: list[dict[str, Any]], title: str,
                ended_by: Mapping[int, str] | None = None) -> Table:
    """The tasks as a table; ``ended_by`` names what ended an attempt whose engine died
    (``interrupted``, ``crashed``), shown beside the status its unfinished tasks were left in."""
    table = Table(title=title, title_justify="left")
    for column in ("step", "sequence", "attempt", "status", "host", "started", "took",
                   "result / error"):
        table.add_column(column)
    for r in rows:
        status = r["status"] + (" (skipped)" if r.get("executor") == "skip" else "")
        if ended_by and r["attempt"] in ended_by and r["status"] in ("active", "ready"):
            status = f"{ended_by[r['attempt']]} ({r['status']})"
        outcome = (f"{r['error_type']}: {_first_line(r['error_message'])}" if r.get("error_type")
                   else _first_line(r.get("result")))
        table.add_row(r["step"], r["sequence"], str(r["attempt"]), status, r.get("host") or "",
                      _when(r.get("started_at")), _took(r.get("started_at"), r.get("ended_at")),
                      outcome)
    return table


def _finish(store: Store, run_id: str, attempt: int, ok: bool, status: str) -> None:
    rows = store.tasks(run_id, attempt)
    _con.out.print(_task_table(rows, f"run {run_id} attempt {attempt}: {status}"))
    if not ok:
        _print_failures(store, run_id, rows, full=False)
    elif status == "paused":
        _print_paused(store, run_id, attempt, rows)
    raise typer.Exit(0 if ok else 1)


def _print_paused(store: Store, run_id: str, attempt: int, rows: list[dict[str, Any]]) -> None:
    """What a paused run waits for: joins missing children, delays, tasks left ready."""
    lines = _joins_waiting(store, run_id)
    pending = [d for d in store.delays(run_id, attempt) if d["fired_at"] is None]
    if pending:
        lines.append(f"{len(pending)} delay{'s' if len(pending) != 1 else ''} pending, next at "
                     f"{_when(min(d['due_at'] for d in pending))}")
    ready = sum(r["status"] == "ready" for r in rows)
    if ready:
        lines.append(f"{ready} task{'s' if ready != 1 else ''} left ready (a bounded run)")
    again = _again(store, store.run(run_id) or {"run_id": run_id})
    if pending or ready:
        lines.append(f"paused, not finished: finish it with eventor continue {again}")
    elif any(r["status"] == "failure" for r in rows):  # joins wait, on failed children
        lines.append("paused, not finished: a join waits for children that failed (join the "
                     "event their failure fires too, as in `loaded | failed`, to let failures "
                     f"through); eventor recover {again} reruns the children that failed")
    else:  # joins wait for children that ended without firing the joined event
        lines.append("paused, not finished: a join waits for children that ended without "
                     "firing the event it joins; join the events each child's last step "
                     "fires (see the joins in docs/flows.md)")
    for line in lines:  # one line each, however wide: a command to copy
        _con.out.print(line, markup=False, highlight=False, soft_wrap=True)


def _store_candidates(store: str | None, cfg: Any) -> list[str]:
    """
    Where a reading command looks for runs, in order: ``--store``; ``$EVENTOR_STORE``; the
    database ``$EVENTOR_DB_CONFIG_TAG`` names; else the ``*.run.db`` stores in the config's
    ``workdir`` (the current directory by default), every one of them: where runs of
    programs given that config are recorded.
    """
    if store:
        return [store]
    if os.environ.get("EVENTOR_STORE"):
        return [os.environ["EVENTOR_STORE"]]
    if os.environ.get("EVENTOR_DB_CONFIG_TAG"):
        return [""]  # the store the config's default database tag names
    folder = Path(cfg.workdir).expanduser().resolve()
    found = sorted(str(p) for p in folder.glob("*.run.db"))
    if not found:
        raise CliError(f"no run store found: no --store, no $EVENTOR_STORE, no "
                       f"$EVENTOR_DB_CONFIG_TAG, and no *.run.db file in {folder}; give "
                       "--store the store's path, URL or DATABASES tag")
    return found


@contextlib.contextmanager
def _opened(address: str, cfg: Any) -> Iterator[Store]:
    path = sqlite_file(address, program=default_program(), workdir=cfg.workdir,
                       databases=cfg.DATABASES)
    if path is not None and not Path(path).exists():
        raise CliError(f"no run store at {path}; give --store the store's path or URL")
    opened, owned, _ = open_configured(address, cfg)
    try:
        yield opened
    finally:
        if owned:
            opened.close()


@contextlib.contextmanager
def _store(store: str | None, config: Path | None, run_id: str | None = None) -> Iterator[Store]:
    """
    The store a reading command looks at (see `_store_candidates`); with ``run_id``, the
    first of the candidates that holds that run.
    """
    cfg = load_config(str(config) if config else None)
    candidates = _store_candidates(store, cfg)
    if run_id is not None and len(candidates) > 1:
        for address in candidates:
            with _opened(address, cfg) as opened:
                if opened.run(run_id) is not None:
                    yield opened
                    return
        raise CliError(f"no run {run_id!r} in any store here ({', '.join(map(_short, candidates))}); "
                       "give --store the store that holds it")
    with _opened(candidates[0], cfg) as opened:
        yield opened


def _require_run(store: Store, run_id: str) -> None:
    """A run id the store does not hold is a mistake: say so, with the runs it does hold."""
    if store.run(run_id) is None:
        known = [r["run_id"] for r in store.runs()][-5:]
        raise CliError(f"no run {run_id!r} in {store.address}." + did_you_mean(run_id, known)
                       + (f" Latest runs: {', '.join(known)}" if known else " It holds no run."))


def _note_unrecorded(store: Store, run_id: str) -> None:
    """
    Recovering a run id the store never recorded starts it (its first engine died before
    its first write): say so, even when quiet, and name a recorded run one typo away.
    """
    if store.run(run_id) is None:
        near = closest(run_id, [r["run_id"] for r in store.runs()], cutoff=0.9)
        hint = f" (did you mean {near!r}?)" if near else ""
        _con.err.print(f"note: run {run_id!r} was never recorded in {store.address}{hint}: "
                       "it is started as its first attempt", markup=False, soft_wrap=True)


def _short(path: str) -> str:
    return os.path.relpath(path) if os.path.isabs(path) else path


def _interrupted(attempt: Mapping[str, Any], grace: float) -> bool:
    """An attempt recorded as running whose engine is gone (dead pid here, or silent)."""
    return attempt.get("status") == "running" and not owner_alive(attempt, grace=grace)


def _print_failures(store: Store, run_id: str, rows: list[dict[str, Any]], full: bool) -> None:
    """Each failed try and task: its error, and the end of its traceback (all with ``full``)."""
    failed = [("try", t) for t in store.tries(run_id)]
    failed += [("task", r) for r in rows if r["status"] == "failure" and r.get("error_type")]
    for kind, r in sorted(failed, key=lambda f: (f[1]["attempt"], f[1].get("started_at") or 0)):
        where = f"{r['step']}[{r['sequence']}] attempt {r['attempt']}"
        if kind == "try":
            where += f", try {r['try']} (retried)"
        _con.out.print(f"\n{where}: {r['error_type']}: {r.get('error_message') or ''}",
                       markup=False, highlight=False)
        lines = (r.get("traceback") or "").rstrip().splitlines()
        if lines:
            shown = lines if full else lines[-6:]
            if len(shown) < len(lines):
                _con.out.print(f"  ... {len(lines) - len(shown)} more lines (--full)", markup=False)
            for line in shown:
                _con.out.print(f"  {line}", markup=False, highlight=False)


def _print_graph(graph: Any, fmt: str) -> None:
    render = {"mermaid": graph.to_mermaid, "dot": graph.to_dot, "text": graph.to_text}.get(fmt)
    if render is None:
        raise CliError(f"--format {fmt!r}: use mermaid, dot or text."
                       + did_you_mean(fmt, ["mermaid", "dot", "text"]))
    _con.out.print(render(), end="", markup=False)


# -- the commands ----------------------------------------------------------------------------

Params = Annotated[list[str], typer.Option("--param", "-p", help="A parameter, NAME=VALUE (repeat it).",
    metavar="NAME=VALUE")]
StoreOpt = Annotated[str | None, typer.Option(
    "--store", help="The run store: a path, a URL or a DATABASES tag.", metavar="STORE")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="A YAML config file.", metavar="FILE")]
LoopsOpt = Annotated[int, typer.Option(
    "--max-loops", help="Stop after this many rounds, or once only delays are left to wait for "
    "(-1: no limit).", metavar="N")]


def _run_target(target: Any, values: dict[str, Any], *, store: str | None, config: Path | None,
                sequence: str | None, max_loops: int, run_id: str | None,
                resume_interrupted: bool = False) -> None:
    _check_run_id(run_id)
    if resume_interrupted and run_id:
        raise CliError("--resume-interrupted picks the run itself; drop --run-id, or recover "
                       "that run with eventor recover FLOW --run-id RUN_ID")
    options = _options(store, config)
    with _Progress() as progress:
        if _is_flow(target):
            flow = target(run_id=run_id, progress=progress, **options, **values)
            with flow:
                result = flow.run(sequence=sequence, max_loops=max_loops,
                                  resume_interrupted=resume_interrupted)
                _finish(flow.store, result.run_id, result.attempt, bool(result), result.status)
        if sequence is not None:
            raise CliError("--sequence is for Flow classes; a classic program triggers its own events")
    ev = _build(target, dict(values), store=options.get("store"), run_id=run_id)
    ev.resume_interrupted = resume_interrupted
    params = _builder_params(target)
    ev.record_params(recorded({**{k: _default(p) for k, p in params.items()}, **values}))
    _run_eventor(ev, max_loops)


def _check_run_id(run_id: str | None) -> None:
    if run_id and run_id.startswith("-"):  # an empty $RID before --dry-run, say
        raise CliError(f"--run-id {run_id!r} looks like an option, not a run id; give the "
                       "run's id (eventor runs lists them)")


def _recover_target(target: Any, values: dict[str, Any], *, run_id: str,
                    recovery_run: int | None, dry_run: bool, store: str | None,
                    config: Path | None) -> None:
    _check_run_id(run_id)
    options = _options(store, config)
    if _is_flow(target):
        # A run id the store never recorded is started as that run, with a warning (its first
        # engine died before its first write), as Etl.recover does; a plan needs a record
        if run_id:
            with target._session(options) as session:
                (_require_run if dry_run else _note_unrecorded)(session.store, run_id)
        if dry_run:
            _con.out.print(str(target.recovery_plan(run_id, recovery_run=recovery_run, **options)),
                       markup=False)
            raise typer.Exit(0)
        with _Progress() as progress:
            result = target.recover(run_id, recovery_run=recovery_run, progress=progress,
                                    **options, **values)
        with target._session(options) as session:  # the store the flow itself used
            _finish(session.store, result.run_id, result.attempt, bool(result), result.status)
    ev = _build_again(target, values, run_mode=RunMode.recover, run_id=run_id,
                      recovery_run=recovery_run, store=options.get("store"))
    if dry_run:
        with ev:
            _con.out.print(str(ev.recovery_plan()), markup=False)
        raise typer.Exit(0)
    if run_id:
        _note_unrecorded(ev.store, run_id)
    _run_eventor(ev, -1)


def _recover_interrupted(target: Any, values: dict[str, Any], *, store: str | None,
                         config: Path | None) -> None:
    """Recover every interrupted run of the flow in its store, one after another."""
    options = _options(store, config)
    if _is_flow(target):
        with target._session(options) as session:
            where, grace, program = session.store.address, session.config.heartbeat_grace, session.program
            runs = interrupted(session.store, grace=grace, program=program, flow=target.graph.name)
    else:
        with _build(target, dict(values), store=options.get("store")) as ev:
            where, grace, program = ev.store.address, ev.config.heartbeat_grace, ev.program
            runs = interrupted(ev.store, grace=grace, program=program, flow=ev.name)
    if values:  # -p picks the runs: it never changes what a run recorded
        wanted = recorded(values)
        runs = [r for r in runs if all((r["info"].get("params") or {}).get(k) == v
                                       for k, v in wanted.items())]
    if not runs:
        picked = f" with {recorded(values)}" if values else ""
        _con.out.print(f"no interrupted run of {program}{picked} in {_short(where)}", markup=False)
        raise typer.Exit(0)
    outcomes: list[tuple[str, str]] = []
    for row in runs:
        run_id = row["run_id"]
        shown = _params_text(row["info"].get("params"))
        _con.out.print(f"recovering run {run_id} (attempt {row['attempt']} was interrupted"
                       f"{', ' + shown if shown else ''})",
                       markup=False)
        try:
            if _is_flow(target):
                with _Progress() as progress:
                    result = target.recover(run_id, progress=progress,
                                            expect_attempt=row["attempt"], **options)
                status = result.status
            else:
                with _build_again(target, {}, run_mode=RunMode.recover, run_id=run_id,
                                  store=options.get("store")) as ev:
                    ev.expect_attempt = row["attempt"]
                    ev.run()
                    assert ev.summary is not None
                    status = ev.summary.status
        except RunClaimedError as exc:
            status = f"taken by another program ({exc})"
        outcomes.append((run_id, status))
    for run_id, status in outcomes:
        _con.out.print(f"run {run_id}: {status}", markup=False)
    raise typer.Exit(0 if all(s in ("success", "paused") or s.startswith("taken")
                              for _, s in outcomes) else 1)


def _only_interrupted(run_id: str | None, recovery_run: int | None, dry_run: bool) -> None:
    given = [name for name, value in (("--run-id", run_id), ("--recovery-run", recovery_run),
                                      ("--dry-run", dry_run)) if value]
    if given:
        raise CliError(f"--interrupted recovers every interrupted run; drop {', '.join(given)}, "
                       "or recover one run without --interrupted")


def _continue_target(target: Any, *, run_id: str, max_loops: int, store: str | None,
                     config: Path | None) -> None:
    _check_run_id(run_id)
    options = _options(store, config)
    if _is_flow(target):
        with _Progress() as progress:
            result = target.resume(run_id, max_loops=max_loops, progress=progress, **options)
        with target._session(options) as session:  # the store the flow itself used
            _finish(session.store, result.run_id, result.attempt, bool(result), result.status)
    _run_eventor(_build_again(target, {}, run_mode=RunMode.continue_, run_id=run_id,
                              store=options.get("store")), max_loops)


def _run_eventor(ev: Eventor, max_loops: int) -> None:
    """Run a classic program's Eventor with progress, print its tasks, exit 0 or 1."""
    with ev:
        with _Progress() as progress:
            ev.progress = progress
            ok = ev.run(max_loops)
        assert ev.summary is not None
        _finish(ev.store, ev.run_id, ev.summary.attempt, ok, ev.summary.status)


def _graph_of(target: Any) -> Any:
    if _is_flow(target):
        return target.graph
    ev = _build(target, {}, store=":memory:") if "store" in inspect.signature(target).parameters \
        else _build(target, {})
    with ev:
        return ev.graph


def _params_of(target: Any) -> Mapping[str, Param]:
    return target.parameters if _is_flow(target) else _builder_params(target)


def _name_of(target: Any) -> str:
    name = getattr(target, "__name__", None) or repr(target)  # a functools.partial has none
    return name if _is_flow(target) else f"{name}()"


def cmd_runs(store: StoreOpt = None, config: ConfigOpt = None) -> None:
    """List the runs (without --store: of every *.run.db store here), with their status."""
    _list_runs(store, config)


def _list_runs(store: str | None, config: Path | None, flow: str | None = None) -> None:
    """The runs of the stores `_store_candidates` finds (only ``flow``'s, when given)."""
    with _errors():
        cfg = load_config(str(config) if config else None)
        candidates = _store_candidates(store, cfg)
        several = len(candidates) > 1
        table = Table(title=("runs" if several else None), title_justify="left")
        columns = ["run id", "flow", "started", "attempts", "status", "ok", "failed", "pending",
                   "took"]
        for column in (["store"] if several else []) + columns:
            table.add_column(column)
        hints = []
        for address in candidates:
            with _opened(address, cfg) as opened:
                if not several:
                    table.title = f"runs in {opened.address}"
                for run in opened.runs():
                    if flow is not None and (run.get("info") or {}).get("flow") != flow:
                        continue
                    row, hint = _run_row(opened, run, cfg.heartbeat_grace)
                    table.add_row(*([_short(address)] if several else []), *row)
                    if hint:
                        hints.append(hint)
        _con.out.print(table)
        for hint in hints:  # one line each, however wide: a command to copy
            _con.out.print(hint, markup=False, highlight=False, soft_wrap=True)


def _again(store: Store, run: Mapping[str, Any]) -> str:
    """
    What a command that goes on with ``run`` (recover, continue) is given: the flow, the run
    id, and the store and config file the run used, unless they are the defaults.
    """
    program, info = run.get("program", ""), run.get("info") or {}
    config = info.get("config")
    return (f"{_flow_ref(program, info)} --run-id {run['run_id']}{_store_flag(store, program)}"
            + (f" --config {shlex.quote(_short(config))}" if config else ""))


def _flow_ref(program: str, info: Mapping[str, Any]) -> str:
    """
    The flow reference to recover a run with: its program's file, when the run knows it, and
    the Flow class or builder function its run recorded. A run recorded without one (a
    classic program run as a script, or by an earlier Eventor) names its flow when the file
    defines that name, else only the file: the command then lists the flows and functions
    there.
    """
    flow, ref = str(info.get("flow") or "FLOW"), info.get("ref")
    file = Path(f"{program}.py")
    if not (program and file.is_file()):
        return f"MODULE:{ref or flow}"
    if ref or _defines(file, flow):
        return f"{file}:{ref or flow}"
    return str(file)


def _defines(file: Path, name: str) -> bool:
    """Whether ``file`` defines ``name`` at its top level (read, not imported)."""
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return False
    return any(isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name == name
               for node in tree.body)


def _params_ran(run: Mapping[str, Any], attempt: Mapping[str, Any]) -> Any:
    """The parameters ``attempt`` ran with (a recovery may change them), else the run's."""
    if attempt.get("params"):
        with contextlib.suppress(ValueError, TypeError):
            params = json.loads(attempt["params"])
            if isinstance(params, dict):
                return params
    return (run.get("info") or {}).get("params")


def _params_text(params: Mapping[str, Any] | None) -> str:
    """A run's recorded parameters as ``day=2026-11-28, source=s3://a`` ('' for none)."""
    return ", ".join(f"{k}={v}" for k, v in (params or {}).items())


def _store_flag(store: Store, program: str) -> str:
    """`` --store FILE`` for a command about a run in ``store``, unless it is the default one."""
    try:
        file = sqlite_file(store.address)
        default = sqlite_file("", program=program or "eventor")
    except EventorError:
        return ""
    if file is None or (default is not None and os.path.realpath(file) == os.path.realpath(default)):
        return ""
    return f" --store {_short(file)}"


def _run_row(store: Store, run: Mapping[str, Any], grace: float) -> tuple[list[str], str]:
    """A run's row in `runs`, and the command that recovers it when it was interrupted."""
    run_id = run["run_id"]
    attempts = store.attempts(run_id)
    last = attempts[-1] if attempts else {}
    tasks = store.tasks(run_id, last.get("attempt")) if attempts else []
    ok = sum(t["status"] == "success" for t in tasks)
    failed = sum(t["status"] == "failure" for t in tasks)
    status, hint = last.get("status", ""), ""
    flow = str(run["info"].get("flow", run["program"]))
    if last and _interrupted(last, grace):
        status = "interrupted"
        hint = f"run {run_id} was interrupted (its engine is gone): eventor recover {_again(store, run)}"
    unfired = [d for d in store.delays(run_id, last.get("attempt")) if d["fired_at"] is None] \
        if attempts else []
    pending = unfired if status in ("stopped", "paused") else []
    if pending:
        status = f"paused ({len(pending)} delay{'s' if len(pending) != 1 else ''}, next at " \
                 f"{_when(min(d['due_at'] for d in pending))})"
        hint = (f"run {run_id} is paused with delays pending: finish it with "
                f"eventor continue {_again(store, run)}")
    shown = _params_text(_params_ran(run, last))
    if shown:  # which day a nightly run was for is the first question asked of it
        flow = f"{flow}({shown if len(shown) <= 40 else shown[:39] + '…'})"
    return ([run_id, flow, _when(run["created_at"]), str(len(attempts)), status, str(ok),
             str(failed), str(len(tasks) - ok - failed + len(unfired)),  # as the run's summary
             _took(run["created_at"], last.get("ended_at"))], hint)


def cmd_show(run_id: Annotated[str, typer.Argument(help="The run's id.")],
             store: StoreOpt = None, config: ConfigOpt = None,
             full: Annotated[bool, typer.Option("--full", help="Whole tracebacks.", metavar=" ")] = False,
             as_json: Annotated[bool, typer.Option("--json", help="Print JSON.",
                 metavar=" ")] = False) -> None:
    """Show every task of a run, in every attempt, with the errors of failed tasks and tries."""
    with _errors(), _store(store, config, run_id) as opened:
        _require_run(opened, run_id)
        rows = opened.tasks(run_id)
        if as_json:
            _con.out.print_json(json.dumps(rows, default=str))
            return
        grace = load_config(str(config) if config else None).heartbeat_grace
        attempts = opened.attempts(run_id)
        gone = {a["attempt"] for a in attempts if _interrupted(a, grace)}
        ended_by = {a["attempt"]: "crashed" for a in attempts if a["status"] == "crashed"}
        ended_by.update(dict.fromkeys(gone, "interrupted"))
        shown = _params_text(_params_ran(opened.run(run_id) or {}, attempts[-1] if attempts else {}))
        title = f"run {run_id}" + (f" ({shown})" if shown else "")
        _con.out.print(_task_table(rows, title, ended_by=ended_by))
        for line in _joins_waiting(opened, run_id):
            _con.out.print(line, markup=False)
        _print_failures(opened, run_id, rows, full)
        if gone:
            again = _again(opened, opened.run(run_id) or {"run_id": run_id})
            _con.out.print(f"\nattempt {max(gone)} was interrupted (its engine is gone): recover "
                           f"it with eventor recover {again}",
                           markup=False, highlight=False, soft_wrap=True)


def cmd_logs(run_id: Annotated[str, typer.Argument(help="The run's id.")],
             task: Annotated[str | None, typer.Argument(
                 help="One step, or one task as STEP[SEQUENCE]; default: every task.",
                 metavar="[STEP[SEQ]]")] = None,
             store: StoreOpt = None, config: ConfigOpt = None) -> None:
    """Print what a run's tasks printed (the end of their stdout and stderr), task by task."""
    with _errors(), _store(store, config, run_id) as opened:
        _require_run(opened, run_id)
        step, bracket, sequence = (task or "").partition("[")
        if bracket and not sequence.endswith("]"):
            raise CliError(f"{task!r}: write STEP or STEP[SEQUENCE], e.g. {step}[0]")
        sequence = sequence[:-1] if bracket else ""
        rows = [r for r in opened.tasks(run_id)
                if (not step or r["step"] == step) and (not sequence or r["sequence"] == sequence)]
        if task and not rows:
            ran = opened.tasks(run_id)
            steps = sorted({r["step"] for r in ran})
            if step in steps:
                sequences = sorted({r["sequence"] for r in ran if r["step"] == step})
                raise CliError(f"run {run_id} has no task {task!r}; {step} ran in sequences "
                               f"{', '.join(sequences)}")
            raise CliError(f"run {run_id} has no task {task!r}." + did_you_mean(step, steps)
                           + f" Steps that ran: {', '.join(steps)}")
        for r in rows:
            _con.out.print(f"── {r['step']}[{r['sequence']}] attempt {r['attempt']} "
                           f"({r['status']}) ──", markup=False, highlight=False)
            _con.out.print(r["output"].rstrip("\n") if r.get("output") else "(no output)",
                           markup=False, highlight=False)


def _joins_waiting(store: Store, run_id: str) -> list[str]:
    """A line per join of the run's last attempt still waiting for children, naming them."""
    attempts = store.attempts(run_id)
    graph = ((store.run(run_id) or {}).get("info") or {}).get("graph") or {}
    if not attempts or not graph:
        return []
    triggers = store.triggers(run_id, attempts[-1]["attempt"])
    return [f"join {name}[{parent}] waits for {len(missing)} of {count} children: "
            f"{', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}"
            for name, parent, missing, count in waiting_in(graph, triggers)]


def cmd_report(run_id: Annotated[str, typer.Argument(help="The run's id.")],
               output: Annotated[Path, typer.Option("-o", "--output", help="The HTML file to write.",
                   metavar="FILE")],
               store: StoreOpt = None, config: ConfigOpt = None) -> None:
    """Write one self-contained HTML page: the flow graph, a timeline and the task table."""
    from eventor.report import render_report

    with _errors(), _store(store, config, run_id) as opened:
        _require_run(opened, run_id)
        output.write_text(render_report(opened, run_id), encoding="utf-8")
        _con.out.print(f"wrote {output}", markup=False)


def cmd_purge(older_than: Annotated[float | None, typer.Option(
                  "--older-than", help="Days; default: the config's day_to_keep_db.", metavar="DAYS")] = None,
              store: StoreOpt = None, config: ConfigOpt = None) -> None:
    """Delete runs older than some days (runs whose attempt never ended are kept)."""
    with _errors():
        cfg = load_config(str(config) if config else None)
        candidates = _store_candidates(store, cfg)
        if len(candidates) > 1:
            raise CliError(f"several stores here ({', '.join(map(_short, candidates))}); give "
                           "--store the one to purge")
        gone = purge(candidates[0], days=older_than, config=str(config) if config else None)
        _con.out.print(f"purged {len(gone)} run(s)" + (f": {', '.join(gone)}" if gone else ""),
                   markup=False)


def _debug_callback(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.", metavar=" ")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.",
                                          metavar=" ", is_eager=True)] = False,
) -> None:
    if version:
        _con.out.print(f"eventor {_version()}", markup=False, highlight=False)
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        _con.out.print(ctx.get_help())
        raise typer.Exit(0)
    _state["debug"] = debug


def _version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("eventor")
    except PackageNotFoundError:
        return "(not installed)"


def _new_app(help_text: str) -> typer.Typer:
    new = typer.Typer(help=help_text, no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False,
                      context_settings={"help_option_names": ["--help", "-h"]})
    new.callback(invoke_without_command=True)(_debug_callback)
    return new


def _add_reading_commands(new: typer.Typer) -> None:
    """The commands that read runs, listed after those that run flows."""
    new.command("runs")(cmd_runs)
    new.command("show")(cmd_show)
    new.command("logs")(cmd_logs)
    new.command("report")(cmd_report)
    new.command("purge")(cmd_purge)


def _add_flow_reading_commands(new: typer.Typer, flow: FlowMeta) -> None:
    """
    The reading commands of one flow's command line: without --store, they read the flow's
    own store, and ``runs`` lists the flow's runs only.
    """
    def runs(store: StoreOpt = None, config: ConfigOpt = None) -> None:
        """List this flow's runs (without --store: in its own store), with their status."""
        _list_runs(store or _flow_store(flow, config), config, flow=flow._compiled().graph.name)

    def show(run_id: Annotated[str, typer.Argument(help="The run's id.")],
             store: StoreOpt = None, config: ConfigOpt = None,
             full: Annotated[bool, typer.Option("--full", help="Whole tracebacks.",
                                                metavar=" ")] = False,
             as_json: Annotated[bool, typer.Option("--json", help="Print JSON.",
                                                   metavar=" ")] = False) -> None:
        """Show every task of a run, in every attempt, with the errors of failed tasks and tries."""
        cmd_show(run_id, store or _flow_store(flow, config), config, full, as_json)

    def logs(run_id: Annotated[str, typer.Argument(help="The run's id.")],
             task: Annotated[str | None, typer.Argument(
                 help="One step, or one task as STEP[SEQUENCE]; default: every task.",
                 metavar="[STEP[SEQ]]")] = None,
             store: StoreOpt = None, config: ConfigOpt = None) -> None:
        """Print what a run's tasks printed (the end of their stdout and stderr), task by task."""
        cmd_logs(run_id, task, store or _flow_store(flow, config), config)

    new.command("runs")(runs)
    new.command("show")(show)
    new.command("logs")(logs)
    new.command("report")(cmd_report)
    new.command("purge")(cmd_purge)


def _flow_store(flow: FlowMeta, config: Path | None) -> str | None:
    """The store a flow records its runs in (its ``store=`` option, else its default file)."""
    options = flow._compiled().options
    store = options.get("store", "")
    if not isinstance(store, str):
        return None  # an open Store cannot be named again (its password is hidden): look here
    with _errors():
        cfg = load_config(str(config) if config else options.get("config"))
        path = sqlite_file(store, program=default_program(), workdir=cfg.workdir,
                           databases=cfg.DATABASES)
    return path if path is not None else (store or None)


app = _new_app("Run, recover and inspect Eventor flows.")

FlowArg = Annotated[str, typer.Argument(help="path/to/file.py:Name or package.module:Name",
                                         metavar="FLOW")]
RunIdOpt = Annotated[str, typer.Option("--run-id", help="The run to pick up.", metavar="RUN_ID")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only the final table (and errors).",
                                        metavar=" ")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Also a line per step event.",
                                          metavar=" ")]
LevelOpt = Annotated[str | None, typer.Option(
    "--log-level", help="The least level of log lines shown: DEBUG, INFO, WARNING, ERROR.",
    metavar="LEVEL")]
ResumeOpt = Annotated[bool, typer.Option(
    "--resume-interrupted", metavar=" ",
    help="If the store holds an interrupted run of this flow with the same parameters, "
         "recover it instead of starting a new run.")]
InterruptedOpt = Annotated[bool, typer.Option(
    "--interrupted", metavar=" ",
    help="Recover every interrupted run of the flow in its store (engine killed, host lost), "
         "each with the parameters it recorded; -p NAME=VALUE picks the runs to recover.")]
LatestOpt = Annotated[str | None, typer.Option(
    "--run-id", help="The run to pick up (default: the flow's latest run, named when picked).",
    metavar="RUN_ID")]




@app.command("run")
def cmd_run(flow: FlowArg, param: Params = [],  # noqa: B006 - typer reads the default
            store: StoreOpt = None,
            sequence: Annotated[str | None, typer.Option("--sequence", help="The sequence to start.",
                metavar="SEQUENCE")] = None,
            config: ConfigOpt = None, max_loops: LoopsOpt = -1,
            run_id: Annotated[str | None, typer.Option("--run-id", help="Give the run this id.",
                metavar="RUN_ID")] = None,
            resume_interrupted: ResumeOpt = False,
            quiet: QuietOpt = False, verbose: VerboseOpt = False, log_level: LevelOpt = None,
            ) -> None:
    """Run a flow: its entry events fire in one sequence; exit 0 on success, 1 on failure."""
    with _errors():
        _verbosity(quiet, verbose, log_level)
        target = load_target(flow)
        values = _parse_params(param, _params_of(target), _name_of(target))
        _require_params(target, values)
        _run_target(target, values, store=store, config=config, sequence=sequence,
                    max_loops=max_loops, run_id=run_id, resume_interrupted=resume_interrupted)


@app.command("recover")
def cmd_recover(flow: FlowArg, run_id: LatestOpt = None,
                recovery_run: Annotated[int | None, typer.Option(
                    "--recovery-run", help="The attempt to recover from (default: the latest).",
                        metavar="N")] = None,
                dry_run: Annotated[bool, typer.Option(
                    "--dry-run", help="Print what would be skipped and rerun; run nothing.",
                        metavar=" ")] = False,
                param: Params = [],  # noqa: B006
                every_interrupted: InterruptedOpt = False,
                store: StoreOpt = None, config: ConfigOpt = None,
                quiet: QuietOpt = False, verbose: VerboseOpt = False, log_level: LevelOpt = None,
                ) -> None:
    """Recover a failed or crashed run: skip what succeeded, rerun the rest."""
    with _errors():
        _verbosity(quiet, verbose, log_level)
        target = load_target(flow)
        values = _parse_params(param, _params_of(target), _name_of(target))
        if every_interrupted:
            _only_interrupted(run_id, recovery_run, dry_run)
            _recover_interrupted(target, values, store=store, config=config)
        _recover_target(target, values, run_id=run_id or "", recovery_run=recovery_run,
                        dry_run=dry_run, store=store, config=config)


@app.command("continue")
def cmd_continue(flow: FlowArg, run_id: RunIdOpt, max_loops: LoopsOpt = -1,
                 store: StoreOpt = None, config: ConfigOpt = None,
                 quiet: QuietOpt = False, verbose: VerboseOpt = False, log_level: LevelOpt = None,
                 ) -> None:
    """Continue a paused run where it stopped (pending delays, a bounded run, a crash)."""
    with _errors():
        _verbosity(quiet, verbose, log_level)
        _continue_target(load_target(flow), run_id=run_id, max_loops=max_loops, store=store,
                         config=config)


CronOpt = Annotated[str | None, typer.Option(
    "--cron", metavar="EXPR", help="A cron expression: '0 2 * * *' is 02:00 every day.")]
EveryOpt = Annotated[str | None, typer.Option(
    "--every", metavar="INTERVAL", help="An interval instead: 90s, 15m, 1h30m, 2d.")]
SlotParamOpt = Annotated[str | None, typer.Option(
    "--slot-param", metavar="NAME", help="The flow parameter that gets each slot's time.")]
SlotFormatOpt = Annotated[str | None, typer.Option(
    "--slot-format", metavar="STRFTIME", help="How a str slot parameter gets it, e.g. %Y-%m-%d.")]
CatchupOpt = Annotated[bool, typer.Option(
    "--catchup", metavar=" ", help="Run every slot missed while no scheduler ran, not just the latest.")]
TzOpt = Annotated[str | None, typer.Option(
    "--tz", metavar="ZONE", help="The time zone of the slots (default: this machine's).")]
RunsOpt = Annotated[int | None, typer.Option(
    "--runs", metavar="N", help="Stop after N slot runs (default: run until stopped).")]
ScheduleNameOpt = Annotated[str | None, typer.Option(
    "--name", metavar="NAME",
    help="The schedule's name in the store (default: program:flow and its parameters).")]


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _schedule_target(target: Any, values: dict[str, Any], *, cron: str | None, every: str | None,
                     param: str | None, fmt: str | None, catchup: bool, tz: str | None,
                     runs: int | None, name: str | None, store: str | None,
                     config: Path | None) -> None:
    if not _is_flow(target):
        raise CliError("eventor schedule runs Flow classes; run a classic program from cron "
                       "or a systemd timer with eventor run --resume-interrupted")
    if cron and every:
        raise CliError("give --cron or --every, not both")
    pressed: list[bool] = []  # Ctrl-C between slots ends the schedule without raising

    def interrupted(signum: int, frame: Any) -> None:
        pressed.append(True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupted) if _in_main_thread() else None
    try:
        results = target.schedule(cron or every, param=param, format=fmt, catchup=catchup or None,
                                  tz=tz, runs=runs, name=name, **_options(store, config), **values)
    except KeyboardInterrupt:
        _con.err.print("stopped by Ctrl-C while a slot ran: its run is interrupted, and a "
                       "scheduler started again recovers it (SIGTERM lets the slot finish)",
                       markup=False)
        raise typer.Exit(130) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if pressed:
        _con.err.print(f"stopped by Ctrl-C between slots, after {len(results)} run"
                       f"{'s' if len(results) != 1 else ''}", markup=False)
        raise typer.Exit(130)
    failed = [r for r in results if not r]
    _con.out.print(f"{len(results)} runs, {len(failed)} failed"
                   + "".join(f"\n  {r.run_id}: {r.status}" for r in failed), markup=False)
    raise typer.Exit(1 if failed else 0)


@app.command("schedule")
def cmd_schedule(flow: FlowArg, cron: CronOpt = None, every: EveryOpt = None,
                 slot_param: SlotParamOpt = None, slot_format: SlotFormatOpt = None,
                 catchup: CatchupOpt = False, tz: TzOpt = None, runs: RunsOpt = None,
                 name: ScheduleNameOpt = None, param: Params = [],  # noqa: B006
                 store: StoreOpt = None, config: ConfigOpt = None,
                 quiet: QuietOpt = False, verbose: VerboseOpt = False, log_level: LevelOpt = None,
                 ) -> None:
    """
    Run a flow once per slot of a schedule, until stopped (Ctrl-C, SIGTERM). Each slot is
    claimed in the store: several schedulers on one store run it once.
    """
    with _errors():
        _verbosity(quiet, verbose, log_level)
        target = load_target(flow)
        values = _parse_params(param, _params_of(target), _name_of(target))
        _schedule_target(target, values, cron=cron, every=every, param=slot_param, fmt=slot_format,
                         catchup=catchup, tz=tz, runs=runs, name=name, store=store, config=config)


@app.command("graph")
def cmd_graph(flow: FlowArg,
              fmt: Annotated[str, typer.Option("--format", help="mermaid, dot or text",
                  metavar="FORMAT")] = "mermaid",
              ) -> None:
    """Print a flow's graph as Mermaid, Graphviz DOT, or text."""
    with _errors():
        _print_graph(_graph_of(load_target(flow)), fmt)


_add_reading_commands(app)


def _run_option(name: str, param: Param) -> inspect.Parameter:
    """
    The ``run`` option of a flow parameter. Types typer knows (str, int, float, bool, an
    Enum: its values are the choices) are typed; others are text, made the parameter's type
    by `coerce`. A parameter not given is left to its default (shown, not passed), so a
    default of None or of any type is the flow's own. A bool is ``--x/--no-x``.
    """
    kind = _optional_enum(param.type) or param.type
    native = kind in (str, int, float, bool) or (
        isinstance(kind, type) and issubclass(kind, enum.Enum))
    flag = name.replace("_", "-")
    names = [f"--{flag}/--no-{flag}"] if param.type is bool else [f"--{flag}"]
    if param.required:
        default: Any = ...
        shown: bool | str = False
    elif param.type is bool:
        default, shown = param.default, True
    else:
        default = None
        value = param.default.value if isinstance(param.default, enum.Enum) else param.default
        shown = "none" if value is None else str(value)
    metavar = " " if param.type is bool else None if native and kind not in (
        str, int, float) else name.upper()  # an Enum's choices show as its metavar
    option = typer.Option(default, *names, help=param.doc or None, show_default=shown,
                          metavar=metavar)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                             annotation=kind if native else str)


def _optional_enum(tp: Any) -> Any:
    """The Enum of ``Mode | None`` (or ``Optional[Mode]``); None for any other type."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 2 \
            and type(None) in args:
        inner = args[0] if args[1] is type(None) else args[1]
        if isinstance(inner, type) and issubclass(inner, enum.Enum):
            return inner
    return None


def flow_app(flow: FlowMeta) -> typer.Typer:
    """The commands of ``eventor`` for one flow; ``run`` has an option per flow parameter."""
    new = _new_app(inspect.getdoc(flow) or f"Run the {flow.__name__} flow.")
    compiled = flow._compiled()
    params = compiled.params

    def run(**kwargs: Any) -> None:
        with _errors():
            _verbosity(kwargs.pop("quiet"), kwargs.pop("verbose"), kwargs.pop("log_level"))
            given = {name: kwargs.pop(name) for name in params}
            values = {name: coerce(params[name], value) for name, value in given.items()
                      if value is not None}  # one not given keeps the flow's default
            _run_target(flow, values, **kwargs)

    options = [_run_option(name, p) for name, p in params.items()]
    hints = typing.get_type_hints(_common_run_options, include_extras=True)
    common = [p.replace(annotation=hints[p.name])
              for p in inspect.signature(_common_run_options).parameters.values()]
    run.__signature__ = inspect.Signature([*options, *common])  # type: ignore[attr-defined]
    run.__doc__ = f"Run {flow.__name__}: its entry events fire in one sequence."
    new.command("run")(run)

    def recover(run_id: LatestOpt = None,
                recovery_run: Annotated[int | None, typer.Option("--recovery-run", metavar="N")] = None,
                dry_run: Annotated[bool, typer.Option("--dry-run", metavar=" ")] = False,
                param: Params = [],  # noqa: B006
                every_interrupted: InterruptedOpt = False,
                store: StoreOpt = None, config: ConfigOpt = None) -> None:
        """Recover a failed or crashed run: skip what succeeded, rerun the rest."""
        with _errors():
            values = _parse_params(param, params, flow.__name__)
            if every_interrupted:
                _only_interrupted(run_id, recovery_run, dry_run)
                _recover_interrupted(flow, values, store=store, config=config)
            _recover_target(flow, values, run_id=run_id or "", recovery_run=recovery_run,
                            dry_run=dry_run, store=store, config=config)

    def resume(run_id: RunIdOpt, max_loops: LoopsOpt = -1, store: StoreOpt = None,
               config: ConfigOpt = None) -> None:
        """Continue a paused run where it stopped."""
        with _errors():
            _continue_target(flow, run_id=run_id, max_loops=max_loops, store=store, config=config)

    def graph(fmt: Annotated[str, typer.Option("--format", help="mermaid, dot or text",
        metavar="FORMAT")] = "mermaid"
              ) -> None:
        """Print the flow's graph."""
        with _errors():
            _print_graph(compiled.graph, fmt)

    def schedule(cron: CronOpt = None, every: EveryOpt = None, slot_param: SlotParamOpt = None,
                 slot_format: SlotFormatOpt = None, catchup: CatchupOpt = False, tz: TzOpt = None,
                 runs: RunsOpt = None, name: ScheduleNameOpt = None,
                 param: Params = [],  # noqa: B006
                 store: StoreOpt = None, config: ConfigOpt = None) -> None:
        """Run the flow once per slot of a schedule (its own, or --cron/--every), until stopped."""
        with _errors():
            values = _parse_params(param, params, flow.__name__)
            _schedule_target(flow, values, cron=cron, every=every, param=slot_param,
                             fmt=slot_format, catchup=catchup, tz=tz, runs=runs, name=name,
                             store=store, config=config)

    new.command("recover")(recover)
    new.command("continue")(resume)
    new.command("schedule")(schedule)
    new.command("graph")(graph)
    _add_flow_reading_commands(new, flow)
    return new


def _common_run_options(
    *, store: StoreOpt = None,
    sequence: Annotated[str | None, typer.Option("--sequence", help="The sequence to start.",
        metavar="SEQUENCE")] = None,
    config: ConfigOpt = None, max_loops: LoopsOpt = -1,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Give the run this id.",
        metavar="RUN_ID")] = None,
    resume_interrupted: ResumeOpt = False,
    quiet: QuietOpt = False, verbose: VerboseOpt = False, log_level: LevelOpt = None,
) -> None:
    """The options every ``run`` takes besides the flow's parameters (their signature only)."""


def run_app(command: typer.Typer, args: list[str] | None = None, prog_name: str = "eventor") -> None:
    """
    Run a command line and exit with its code: a usage mistake the parser finds itself (an
    unknown option, a missing argument) is one line and exit 2, like the rest.
    """
    from typer.exceptions import TyperException

    try:
        code = command(args=args, prog_name=prog_name, standalone_mode=False)
    except TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # no arguments at all: the help
            exc.show()  # type: ignore[attr-defined]
            raise SystemExit(2) from None
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        ctx = getattr(exc, "ctx", None)  # the command the mistake is in: its own --help
        where = getattr(ctx, "command_path", None) or prog_name
        sys.stderr.write(f"error: {message.splitlines()[0] if message else type(exc).__name__}"
                         f" (see {where} --help)\n")
        sys.stderr.flush()
        raise SystemExit(getattr(exc, "exit_code", 2)) from None
    except typer.Abort:
        raise SystemExit(1) from None
    raise SystemExit(code if isinstance(code, int) else 0)


def main() -> None:
    """The ``eventor`` console script."""
    run_app(app)
