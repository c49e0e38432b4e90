"""
The run store: where every run, attempt, trigger, task and delay is recorded.

`Store` is the interface the engine writes through; `open_store` opens the SQLAlchemy
implementation (a sqlite file by default, ``sqlite://`` in memory, or any SQLAlchemy URL).
SQLAlchemy is imported only when a store is opened, never by the graph or the front ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["SCHEMA_VERSION", "Batch", "Store", "open_configured", "open_store", "purge"]

SCHEMA_VERSION = 2  # 2: resource leases and task tries

Row = dict[str, Any]


@dataclass(slots=True)
class Batch:
    """Everything one scheduling round changed; the store writes it in one transaction."""

    triggers: list[Row] = field(default_factory=list)
    new_tasks: list[Row] = field(default_factory=list)
    task_updates: list[Row] = field(default_factory=list)
    delays: list[Row] = field(default_factory=list)
    delays_fired: list[Row] = field(default_factory=list)
    tries: list[Row] = field(default_factory=list)  # failed tries that will be retried
    releases: list[Row] = field(default_factory=list)  # leases to release (see Store.write)

    def __bool__(self) -> bool:
        return bool(
            self.triggers or self.new_tasks or self.task_updates or self.delays
            or self.delays_fired or self.tries or self.releases
        )


class Store(Protocol):
    """What the engine needs of a run store. Every method commits before it returns."""

    address: str  # printable: the password of a URL is masked

    def begin_attempt(self, run_id: str, program: str, mode: str, *, now: float, host: str,
                      pid: int, info: Mapping[str, Any] | None = None) -> int:
        """Record a new attempt of ``run_id`` (creating the run when new); return its number."""
        ...

    def write(self, batch: Batch) -> None:
        """
        Write one round's changes atomically.

        A release row with a ``step`` releases the leases that task holds; one with a
        ``pool`` releases the leases of that pool held in the row's run and sequence.
        """
        ...

    def acquire(self, requests: list[Row], *, now: float) -> set[int]:
        """
        Grant leases, all or nothing per request, in order; return the granted requests' keys.

        Each request has ``key``, ``run_id``, ``attempt``, ``step``, ``sequence`` and
        ``wants``: (pool, units, limit) triples. A request is granted when every pool it
        wants has room under its limit, counting the leases every run in the store holds; a
        request never overtakes an earlier one waiting for the same pool.
        """
        ...

    def purge(self, before: float) -> list[str]:
        """Delete the runs created before ``before`` whose attempts all ended; return their ids."""
        ...

    def release_attempt(self, run_id: str, attempt: int, *, now: float) -> int:
        """Release every lease an attempt still holds; return how many."""
        ...

    def leases(self, run_id: str | None = None, *, held: bool = False) -> list[Row]:
        """Leases (of one run), oldest first; only those still held with ``held``."""
        ...

    def tries(self, run_id: str, attempt: int | None = None) -> list[Row]:
        """The recorded failed tries of retried tasks."""
        ...

    def resume_attempt(self, run_id: str, attempt: int, *, now: float, host: str, pid: int) -> None:
        """Mark an attempt running again, owned by ``host``/``pid`` (continue)."""
        ...

    def update_run_info(self, run_id: str, info: Mapping[str, Any]) -> None:
        """Replace the run's ``info`` (parameters, code fingerprint)."""
        ...

    def end_attempt(self, run_id: str, attempt: int, status: str, *, now: float) -> None:
        """Record how an attempt ended: success, failure, paused, or crashed."""
        ...

    def runs(self) -> list[Row]:
        """Every run, oldest first, with ``info`` decoded."""
        ...

    def run(self, run_id: str) -> Row | None:
        """One run, with ``info`` decoded; None when the store has no such run."""
        ...

    def attempts(self, run_id: str) -> list[Row]: ...
    def tasks(self, run_id: str, attempt: int | None = None) -> list[Row]: ...
    def triggers(self, run_id: str, attempt: int | None = None) -> list[Row]: ...
    def delays(self, run_id: str, attempt: int | None = None) -> list[Row]: ...
    def close(self) -> None: ...


def open_configured(store: Any = "", config: Any = None) -> tuple[Store, bool, Any]:
    """
    The store that ``store`` names, as the config says to find it, and the loaded config.

    ``store`` is anything `open_store` takes, or an open `Store`, which is passed through.

    Returns:
        (store, owned, config): ``owned`` is True when the caller opened it and must close it.
    """
    from eventor.config import default_program, load_config

    cfg = load_config(config)
    if not isinstance(store, str):
        return store, False, cfg
    return (open_store(store, program=default_program(), workdir=cfg.workdir,
                       databases=cfg.DATABASES), True, cfg)


def purge(store: Any = "", *, days: float | None = None, config: Any = None,
          now: float | None = None) -> list[str]:
    """
    Delete runs older than ``days`` (default: the config's ``day_to_keep_db``).

    Never done during a run: call it (or ``eventor purge``) when you choose. Runs with an
    attempt that did not end (running, or crashed and not yet recovered) are kept.

    Returns:
        The ids of the deleted runs.

    Raises:
        EventorUsageError: neither ``days`` nor ``day_to_keep_db`` says how old.
    """
    import time

    from eventor.config import load_config
    from eventor.exceptions import EventorUsageError

    cfg = load_config(config)
    days = cfg.day_to_keep_db if days is None else days
    if days is None or days < 0:
        raise EventorUsageError("purge needs an age: pass days=, or set day_to_keep_db in the config")
    target, owned, _ = open_configured(store, cfg)
    try:
        return target.purge((time.time() if now is None else now) - days * 86400)
    finally:
        if owned:
            target.close()


def open_store(
    target: str = "",
    *,
    program: str = "eventor",
    workdir: str = ".",
    databases: Mapping[str, Any] | None = None,
) -> Store:
    """
    Open (creating when empty) the run store named by ``target``.

    Args:
        target: ``""`` for ``{workdir}/{program}.run.db``; ``":memory:"`` for a store that lives
            as long as this object; a SQLAlchemy URL; a tag under ``databases``; or a file path.
        program: the program's name, for the default file name.
        workdir: where the default file goes.
        databases: the config's ``DATABASES`` section.

    Raises:
        StoreURLError, StoreUnavailableError, NotAStoreError, SchemaVersionError.
    """
    from eventor.store.sql import SqlStore, resolve_url

    return SqlStore(resolve_url(target, program=program, workdir=workdir, databases=databases))
