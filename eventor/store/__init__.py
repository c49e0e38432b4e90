"""
The run store: where every run, attempt, trigger, task and delay is recorded.

`Store` (in `eventor.store.base`) is the interface the engine writes through; `open_store`
opens the SQLAlchemy implementation (a sqlite file by default, ``sqlite://`` in memory, or
any SQLAlchemy URL). SQLAlchemy is imported only when a store is opened, never by the graph
or the front ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventor.store.base import SCHEMA_VERSION, Batch, Row, Store

__all__ = ["SCHEMA_VERSION", "Batch", "Row", "Store", "open_store", "sqlite_file"]


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


def sqlite_file(target: str = "", *, program: str = "eventor", workdir: str = ".",
                databases: Mapping[str, Any] | None = None) -> str | None:
    """
    The file a ``store=`` value (as `open_store` reads it) names, when it is a sqlite file;
    None for a store in memory or on a database server.
    """
    from eventor.store.sql import resolve_url, sqlite_path

    url = resolve_url(target, program=program, workdir=workdir, databases=databases)
    path = sqlite_path(url) if url.get_backend_name() == "sqlite" else None
    return None if path is None else str(path)
