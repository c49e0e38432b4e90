"""
What running a flow opens, opened one way for both front ends.

A `Session` loads the config, opens the run store (or takes the caller's), makes the
logger, chooses the run (a new id, or the run to recover or continue), and starts the
engine with the per-run log file. `close` closes what the session opened, and only that.
The classic `Eventor` and the declarative `Flow` each hold one.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from eventor.clock import Clock
from eventor.config import Config, default_program, load_config
from eventor.engine import Engine, StepPlan
from eventor.enums import RunMode
from eventor.exceptions import EventorConfigError, EventorUsageError, RunClaimedError
from eventor.graph import FlowGraph
from eventor.log import EventLogger, close_run_log, make_logger, open_run_log
from eventor.recovery import interrupted, pick_run
from eventor.store import Row, Store, open_store, sqlite_file

__all__ = ["Session", "check_store", "new_run_id", "note_changed_params", "open_configured",
           "purge"]


def new_run_id() -> str:
    """A fresh run id that sorts by creation time: ``20261128-061502-3fa9c1``."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def open_configured(store: str | Store = "", config: Any = None) -> tuple[Store, bool, Config]:
    """
    The store that ``store`` names, as the config says to find it, and the loaded config.

    ``store`` is anything `open_store` takes, or an open `Store`, which is passed through.

    Returns:
        (store, owned, config): ``owned`` is True when the caller opened it and must close it.
    """
    cfg = load_config(config)
    if not isinstance(store, str):
        if not hasattr(store, "begin_attempt"):
            raise EventorConfigError(
                f"store={store!r} is not a store: give a file path, a URL (sqlite:///run.db), "
                "':memory:', a DATABASES tag of the config, or an open store", key="store")
        return store, False, cfg
    return (open_store(store, program=default_program(), workdir=cfg.workdir,
                       databases=cfg.DATABASES), True, cfg)


def check_store(store: str | Store = "", config: Any = None) -> None:
    """
    Whether ``store`` names a store as the config reads it, without opening it: a database
    tag the config has, a well-formed URL. A flow object checks when it is made, and opens
    its store when it runs (a sqlite file's folder is looked for then: it may be made in
    between, and a host that runs the flow's steps has none).

    Raises:
        EventorConfigError: a database tag the config does not have (or a bad config).
        StoreURLError: a malformed URL.
    """
    if isinstance(store, str):  # an open store: open_configured checks it
        cfg = load_config(config)
        sqlite_file(store, program=default_program(), workdir=cfg.workdir,
                    databases=cfg.DATABASES)


def purge(store: str | Store = "", *, days: float | None = None, config: Any = None,
          now: float | None = None) -> list[str]:
    """
    Delete runs older than ``days`` (default: the config's ``day_to_keep_db``).

    Never done during a run: call it (or ``eventor purge``) when you choose. Runs with an
    attempt that did not end (running, or crashed and not yet recovered) are kept.
    Everything recorded of a deleted run goes: its attempts, tasks, triggers, delays,
    tries and leases.

    Args:
        store: The store: ``""`` for the default (the ``DATABASES`` tag that
            ``$EVENTOR_DB_CONFIG_TAG`` names, else ``{workdir}/{program}.run.db``),
            ``":memory:"``, a file path, a SQLAlchemy URL, a tag under the config's
            ``DATABASES``, or an open store (left open).
        days: Delete the runs created more than this many days ago (``0``: every run
            that is not kept).
        config: A dict, a YAML file path, or YAML text (see `Config`): where the default
            store is, its ``DATABASES``, and ``day_to_keep_db``.
        now: The time to count the age from, in seconds since the epoch (default: now).

    Returns:
        The ids of the deleted runs, sorted.

    Raises:
        EventorUsageError: neither ``days`` nor ``day_to_keep_db`` says how old, or
            ``days`` is negative.
    """
    cfg = load_config(config)
    days = cfg.day_to_keep_db if days is None else days
    if days is None:
        raise EventorUsageError("purge needs an age: pass days= (--older-than DAYS), or set "
                                "day_to_keep_db in the config")
    if days < 0:
        raise EventorUsageError(f"purge of runs older than {days} days: give an age >= 0")
    target, owned, _ = open_configured(store, cfg)
    try:
        return target.purge((time.time() if now is None else now) - days * 86400)
    finally:
        if owned:
            target.close()


def note_changed_params(log: EventLogger, run_id: str, recorded: Mapping[str, Any],
                        given: Mapping[str, Any]) -> None:
    """Log the parameters of a recover or continue that differ from those the run recorded."""
    changed = {k: (recorded[k], v) for k, v in given.items() if k in recorded and recorded[k] != v}
    if changed:
        log.warning("params_changed", run_id=run_id, changed=", ".join(
            f"{k}: {old!r} -> {new!r}" for k, (old, new) in sorted(changed.items())))


def importing_main_in_a_child() -> bool:
    """
    True while a spawned process (a Dask worker, a multiprocessing child) runs the program's
    script top to bottom, as multiprocessing does under the name ``__mp_main__``. A run
    started there would run the flow again in every worker (and start their own clusters).
    """
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__mp_main__":
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


class Session:
    """
    The config, store, logger, run id and engine of one run of a flow.

    Args:
        name: the flow's name (the logger is ``eventor.{name}``).
        store: ``""`` for ``{workdir}/{program}.run.db``, ``":memory:"``, a path, a URL, a
            ``DATABASES`` tag, or an open `Store` (which the session does not close).
        config: a dict, a YAML path or text, or a `Config`.
        config_tag: the config's root tag.
    """

    def __init__(self, name: str, store: str | Store = "", config: Any = None, *,
                 config_tag: str | None = None) -> None:
        if importing_main_in_a_child():
            raise EventorUsageError(
                f"flow {name!r} was started again by a worker process (of Dask or "
                "multiprocessing) that imports the program's script, whose run starts at its top "
                "level; start the run under 'if __name__ == \"__main__\":'")
        self.name = name
        self.config = load_config(config, tag=config_tag)
        self.program = default_program()
        self.log: EventLogger = make_logger(name, self.config.LOGGING)
        self.store, self._owns_store, _ = open_configured(store, self.config)
        self.run_id = ""
        self.mode = RunMode.restart
        self.engine: Engine | None = None
        self._run_log: Any = None
        self._closed = False

    def choose_run(self, run_id: str = "", mode: RunMode = RunMode.restart, *,
                   unrecorded_is_new: bool = True) -> str:
        """
        The run this session records: ``run_id`` or a new one for a restart; for recover
        and continue, ``run_id`` or else the latest run of this program in the store.

        Recover with a ``run_id`` the store never recorded (its first engine died before
        writing anything) starts that run as its first attempt, with a warning: ``mode``
        then says restart. With ``unrecorded_is_new=False`` it is a `RunNotFoundError`.

        Raises:
            RunNotFoundError: recover or continue found no such run.
            EventorUsageError: a ``shared_db`` store holds several runs to choose from.
        """
        self.mode = mode
        if mode is RunMode.restart:
            self.run_id = run_id or new_run_id()
        elif (mode is RunMode.recover and run_id and unrecorded_is_new
              and self.store.run(run_id) is None):
            # Its engine stopped before its first write: "run; if it crashed, recover" must
            # work however far the first attempt got, so this is the run's first attempt.
            self.log.warning("run_not_recorded", run_id=run_id, store=self.store.address)
            self.run_id, self.mode = run_id, RunMode.restart
        else:
            self.run_id = pick_run(self.store, run_id, program=self.program,
                                   shared_db=self.config.shared_db, log=self.log)
        return self.run_id

    def resume_interrupted(self, flow: str, params: Mapping[str, Any] | None,
                           start: Callable[[], Engine]) -> Mapping[str, Any] | None:
        """
        Take up the latest interrupted run of this program and ``flow`` (with these
        ``params``, when given) as this session's run, in recover mode: the engine ``start``
        makes claims it in the store. When another program takes a run first, the next one
        is tried.

        Returns:
            The interrupted attempt's row; or None when there was none to take, and the
            session's run and mode are as they were.
        """
        grace = self.config.heartbeat_grace
        found = interrupted(self.store, grace=grace, program=self.program, flow=flow)
        mine: list[Row] = []
        left: list[Row] = []
        for row in found:
            same = params is None or (row["info"].get("params") or {}) == params
            (mine if same else left).append(row)
        if left:
            self.log.warning("interrupted_runs_left", program=self.program, runs=len(left),
                             which=", ".join(f"{r['run_id']} {r['info'].get('params') or {}}"
                                             for r in left[-3:]))
        run_id, mode = self.run_id, self.mode
        for row in reversed(mine):  # the latest first
            self.choose_run(row["run_id"], RunMode.recover)
            engine = start()
            engine.expect_latest = row["attempt"]  # not one another program took up meanwhile
            try:
                engine.open()
            except RunClaimedError as exc:
                self.log.warning("run_taken", run_id=row["run_id"], why=str(exc))
                self.drop_engine()
                continue
            self.log.warning("run_resumed", run_id=row["run_id"], interrupted_attempt=row["attempt"],
                             attempt=engine.attempt, pid=row["pid"], host=row["host"])
            return row
        self.run_id, self.mode = run_id, mode
        if not mine:
            self.log.info("no_interrupted_run", program=self.program, flow=flow)
        return None

    def drop_engine(self) -> None:
        """Close the engine `start` made, and its log file, so that `start` makes a new one."""
        engine, self.engine = self.engine, None
        try:
            if engine is not None:
                engine.close()
        finally:
            close_run_log(self.name, self._run_log)
            self._run_log = None

    def start(self, graph: FlowGraph, *, attempt: int | None = None, clock: Clock | None = None,
              progress: Callable[[Mapping[str, int]], None] | None = None,
              info: Mapping[str, Any] | None = None, plan: StepPlan | None = None,
              **overrides: Any) -> Engine:
        """
        The engine that runs ``graph`` as this session's run (in the ``mode`` that
        `choose_run` settled), with its log file opened. ``attempt`` is the attempt to
        recover from or continue (default: the latest).

        ``overrides`` are engine options that win over the config (``max_concurrent``,
        ``executor``, ``stop_on_exception``) when not None; ``plan`` is what `plan_steps`
        made of ``graph`` under them, when the caller has it.
        """
        if self._closed:
            raise EventorUsageError(f"run {self.run_id!r} is closed; start a new one to run again")
        if self.engine is not None:
            return self.engine
        if not self.run_id:
            self.choose_run()
        if self.config.file:  # a command that goes on with the run needs it again: --config
            info = {**(info or {}), "config": self.config.file}
        engine = Engine(graph, self.store, run_id=self.run_id, program=self.program,
                        options=self.config.engine_options(**overrides), clock=clock,
                        log=self.log, mode=self.mode,
                        attempt=None if self.mode is RunMode.restart else attempt,
                        progress=progress, info=info, plan=plan)
        self._run_log = open_run_log(self.name, self.run_id, self.config.LOGGING,
                                     self.config.logdir)  # once the engine could be made
        self.engine = engine
        return engine

    def close(self) -> None:
        """Stop the engine's executors, close the run's log file, and the store if opened here."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.engine is not None:
                self.engine.close()
        finally:
            close_run_log(self.name, self._run_log)
            if self._owns_store:
                self.store.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
