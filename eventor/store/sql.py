"""
The SQLAlchemy run store: sqlite (a WAL file, or in memory) and any SQLAlchemy 2 database.

The engine holds one connection and writes each scheduling round in one transaction. On
sqlite, transactions begin with ``BEGIN IMMEDIATE`` and connections wait up to
``BUSY_TIMEOUT`` seconds for a lock, so programs sharing a file queue up instead of failing
with "database is locked".
"""

from __future__ import annotations

import contextlib
import json
import operator
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import MetaData, bindparam, create_engine, event, func, insert, select, update
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.pool import StaticPool

from eventor.exceptions import (
    EventorConfigError,
    EventorUsageError,
    NotAStoreError,
    RunClaimedError,
    SchemaVersionError,
    StoreError,
    StoreIntegrityError,
    StoreUnavailableError,
    StoreURLError,
)
from eventor.store.base import (
    HEARTBEAT_GRACE,
    SCHEMA_VERSION,
    Batch,
    DelayFired,
    DelayRecord,
    LeaseRequest,
    Row,
    TaskRecord,
    TaskStart,
    TriggerRecord,
    TryRecord,
)
from eventor.store.schema import (
    REBUILDS,
    TABLES,
    UPGRADES,
    attempts,
    delays,
    leases,
    meta,
    metadata,
    runs,
    slots,
    tasks,
    tries,
    triggers,
)

BUSY_TIMEOUT = 60.0  # seconds a sqlite connection waits for another writer
WAL_CHECKPOINT_PAGES = 4000  # sqlite: WAL pages written before they are copied to the database

_TASK_KEY = ("run_id", "attempt", "step", "sequence")
_COLUMN = {"try_": "try"}  # record fields whose column name is a Python keyword
_DELAY_KEY = ("run_id", "attempt", "event", "target", "sequence")
_NUMBERED = frozenset({tasks, triggers})  # rows whose id the store gives, per attempt
_NONES = (None,) * max(len(TaskRecord._fields), len(TriggerRecord._fields))
_ROUND = (  # what a round writes, in this order: (field of Batch, kind, table, record)
    ("triggers", "insert", triggers, TriggerRecord),
    ("new_tasks", "insert", tasks, TaskRecord),
    ("task_starts", "update", tasks, TaskStart),
    ("task_updates", "update", tasks, TaskRecord),
    ("delays", "insert", delays, DelayRecord),
    ("delays_fired", "update", delays, DelayFired),
    ("tries", "insert", tries, TryRecord),
)


class _AttemptKey(NamedTuple):
    run_id: str
    attempt: int


def resolve_url(
    target: str, *, program: str, workdir: str, databases: Mapping[str, Any] | None = None
) -> URL:
    """
    The SQLAlchemy URL for a ``store=`` value (see `eventor.store.open_store`).

    Raises:
        StoreURLError: for a malformed URL or a tag whose settings do not make one.
    """
    databases = databases or {}
    if not target:
        tag = os.environ.get("EVENTOR_DB_CONFIG_TAG")
        if not tag:
            return _sqlite_file(Path(workdir) / f"{program}.run.db")
        target = tag  # the database section the environment names, which must exist
        if target not in databases:
            raise _missing_tag(target, databases, "$EVENTOR_DB_CONFIG_TAG names")
    if target == ":memory:":
        return make_url("sqlite://")
    if "://" in target:
        try:
            return make_url(target)
        except (ArgumentError, ValueError) as exc:
            raise StoreURLError(
                f"store URL {_mask_text(target)!r} is malformed: {exc}; write it as "
                "dialect+driver://user:password@host:port/database, e.g. sqlite:///run.db",
                store=_mask_text(target),
            ) from None
    if target in databases:
        return url_from_config(target, databases[target])
    if databases and not any(c in target for c in "/.\\"):
        raise _missing_tag(target, databases, "store=")  # a tag, not a file name
    return _sqlite_file(Path(target))


def sqlite_path(url: URL) -> Path | None:
    """
    The file a sqlite URL names, or None for a database in memory.

    With ``?uri=true`` (SQLAlchemy's form for sqlite URIs, e.g. read-only:
    ``sqlite:///file:run.db?mode=ro&uri=true``) the database is a ``file:`` URI, not a path.
    """
    database = url.database or ""
    if database in ("", ":memory:"):
        return None
    if str(url.query.get("uri", "")).lower() in ("true", "1") and database.startswith("file:"):
        path = urllib.parse.unquote(urllib.parse.urlparse(database).path)
        return None if path == ":memory:" else Path(path)
    return Path(database)


def _missing_tag(tag: str, databases: Mapping[str, Any], who: str) -> EventorConfigError:
    return EventorConfigError(
        f"{who} {tag!r}, which is not a database tag of the config (tags: "
        f"{', '.join(databases) or 'none'}); add it under DATABASES, or give a file path or URL",
        key=f"DATABASES.{tag}")


def _sqlite_file(path: Path) -> URL:
    return URL.create("sqlite", database=str(path.expanduser().absolute()))


def url_from_config(tag: str, entry: Any) -> URL:
    """A URL from a ``DATABASES`` entry: ``dialect`` sqlite (``database``) or postgresql, ..."""
    key = f"DATABASES.{tag}"
    if not isinstance(entry, Mapping):
        raise EventorConfigError(f"expected a mapping of connection settings, got {entry!r}", key=key)
    dialect = entry.get("dialect")
    if dialect == "sqlite":
        database = entry.get("database")
        if not database:
            raise EventorConfigError("a sqlite database needs 'database' (a file path)", key=key)
        return make_url("sqlite://") if database == ":memory:" else _sqlite_file(Path(database))
    if not dialect:
        raise EventorConfigError("missing 'dialect' (sqlite or postgresql)", key=f"{key}.dialect")
    driver = entry.get("drivername") or ("psycopg" if dialect == "postgresql" else None)
    drivername = driver if driver and "+" in driver else f"{dialect}+{driver}" if driver else dialect
    port = entry.get("port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool)):
        raise EventorConfigError(f"expected int, got {port!r}", key=f"{key}.port")
    url = URL.create(
        drivername,
        username=entry.get("username"),
        password=entry.get("password"),
        host=entry.get("host"),
        port=port,
        database=entry.get("database"),
    )
    if entry.get("schema"):
        url = url.update_query_dict({"eventor_schema": str(entry["schema"])})
    return url


def _mask_text(text: str) -> str:
    try:
        return make_url(text).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # malformed: hide what stands for the password
        return re.sub(r"(://[^/@:]*:).*@", r"\1***@", text)  # to the last @: it may hold / or @


class SqlStore:
    """
    A run store in a SQLAlchemy database.

    Opening it checks what is there before writing anything: an empty database gets the
    schema; a current Eventor store is used; anything else raises and is left untouched.
    """

    def __init__(self, url: URL) -> None:
        schema = url.query.get("eventor_schema")
        if schema:
            url = url.difference_update_query(["eventor_schema"])
        self.url = url
        self.address = url.render_as_string(hide_password=True)
        self.is_sqlite = url.get_backend_name() == "sqlite"
        self.in_memory = self.is_sqlite and url.database in (None, "", ":memory:")
        self._lock = threading.RLock()
        self._schema: str | None = None
        self._upgrade_from = 0  # the older schema version found, to upgrade when opening
        self._engine = self._create_engine(url, schema if isinstance(schema, str) else None)
        self._dbapi: Any = self._engine.dialect.dbapi  # before anything _guard may see
        try:
            self._conn: Connection = self._connect()
            self._reader: Connection = self._connect().execution_options(eventor_read=True)
            self._prepare()
        except BaseException:
            self._engine.dispose()
            raise
        self._statements: dict[tuple[str, str, type, tuple[str, ...] | None], _Compiled] = {}
        self._sparse: dict[tuple[int, tuple[bool, ...]], _Compiled] = {}  # see _insert_numbered
        self._selects: dict[tuple[Any, ...], tuple[str, Any, Any]] = {}  # see _select
        self._round: list[_Compiled | None] = [None] * len(_ROUND)  # compiled as first needed
        # (table, run_id, attempt) -> the id its next inserted row gets (see _ids)
        self._next_ids: dict[tuple[str, str, int], int] = {}

    # -- opening -------------------------------------------------------------------------

    def _create_engine(self, url: URL, schema: str | None) -> Engine:
        try:
            engine = self._sqlite_engine(url) if self.is_sqlite else create_engine(url, pool_pre_ping=True)
        except NoSuchModuleError:
            raise StoreURLError(
                f"store {self.address}: SQLAlchemy has no dialect {url.drivername!r}; "
                "use sqlite:///file.db or postgresql+psycopg://user@host/db",
                store=self.address,
            ) from None
        except ModuleNotFoundError as exc:
            raise StoreURLError(
                f"store {self.address}: its driver is not installed ({exc.name}); "
                f"install it, e.g. pip install 'psycopg[binary]' for postgresql+psycopg",
                store=self.address,
            ) from None
        except ArgumentError as exc:
            raise StoreURLError(f"store {self.address}: {exc}", store=self.address) from None
        self._translate = {None: schema} if schema else None  # tables live in that schema
        if schema:
            engine = engine.execution_options(schema_translate_map=self._translate)
        self._schema = schema
        return engine

    def _sqlite_engine(self, url: URL) -> Engine:
        if self.in_memory:
            engine = create_engine(
                "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            folder = (sqlite_path(url) or Path()).parent
            if not folder.is_dir():
                raise StoreUnavailableError(
                    f"cannot open store {self.address}: folder {folder} does not exist; "
                    "create it or give another store path",
                    store=self.address,
                )
            engine = create_engine(
                url, connect_args={"timeout": BUSY_TIMEOUT, "check_same_thread": False}
            )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy, not pysqlite, says when to BEGIN
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: safe when a process dies
            # Copy the WAL back into the database every 4,000 pages (16 MB) rather than 1,000:
            # a chain's rounds touch the same few pages, copied (and synced) once, not 4 times.
            cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the write lock up front: a deferred transaction that upgrades
            # later can fail with "database is locked" at once, whatever the busy timeout.
            # Readers stay deferred: under WAL they neither wait for nor block a writer.
            read = conn.get_execution_options().get("eventor_read")
            conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

        return engine

    def _connect(self) -> Connection:
        try:
            return self._engine.connect()
        except OperationalError as exc:
            raise StoreUnavailableError(
                f"cannot connect to store {self.address}: {_first_line(exc)}; check that the "
                "database is running and the address and credentials are right",
                store=self.address,
            ) from None
        except DatabaseError as exc:
            raise self._not_a_store(exc) from None

    def _not_a_store(self, exc: DatabaseError) -> NotAStoreError:
        return NotAStoreError(
            f"{self.address} is not an Eventor run store ({_first_line(exc)}); it was left "
            "untouched: give another store path",
            store=self.address,
        )

    def _prepare(self) -> None:
        try:
            with self._reader.begin():
                names = self._table_names(self._reader)
                if meta.name in names:
                    self._check_version(self._reader)
        except DatabaseError as exc:
            raise self._not_a_store(exc) from None
        ours = names & set(TABLES)
        if meta.name in names:
            if self._upgrade_from:
                self._upgrade(self._conn)
        elif ours:
            raise NotAStoreError(
                f"{self.address} has Eventor tables ({', '.join(sorted(ours))}) but no "
                f"{meta.name}; it was left untouched: use a new store",
                store=self.address,
            )
        elif self.is_sqlite and names:
            raise NotAStoreError(
                f"{self.address} is a database of something else (tables: "
                f"{', '.join(sorted(names)[:5])}); it was left untouched: give another store path",
                store=self.address,
            )
        else:
            self._create_schema(self._conn)
        if self.is_sqlite and not self.in_memory:
            # Outside any transaction (the mode cannot change inside one); persistent.
            dbapi_conn: Any = self._conn.connection.dbapi_connection
            dbapi_conn.execute("PRAGMA journal_mode=WAL")

    def _table_names(self, conn: Connection) -> set[str]:
        if self.is_sqlite:
            rows = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")
            return {r[0] for r in rows}
        from sqlalchemy import inspect

        return set(inspect(conn).get_table_names(schema=self._schema))

    def _check_version(self, conn: Connection) -> None:
        value = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
        found = int(value) if value is not None and str(value).isdigit() else -1
        if 0 < found < SCHEMA_VERSION and all(v in UPGRADES for v in range(found + 1, SCHEMA_VERSION + 1)):
            self._upgrade_from = found  # upgraded by _prepare, in a write transaction
            return
        if found != SCHEMA_VERSION:
            newer = found > SCHEMA_VERSION
            raise SchemaVersionError(
                f"store {self.address} has schema version {found}, this Eventor uses "
                f"{SCHEMA_VERSION}; "
                + ("upgrade Eventor to use it" if newer else "it cannot be upgraded in place")
                + "; it was left untouched",
                store=self.address,
                found=found,
                expected=SCHEMA_VERSION,
            )

    def _upgrade(self, conn: Connection) -> None:
        """Add what later schema versions add, and rebuild the tables they redefine; every
        old run stays as it was."""
        with self._guard("upgrade the store's schema"), conn.begin():
            if self._engine.dialect.name == "postgresql":
                # Two programs opening an old store at once: the second waits, then finds it
                # upgraded (on sqlite, BEGIN IMMEDIATE serialises them already).
                conn.exec_driver_sql(f"LOCK TABLE {self._qualified(meta.name)} IN EXCLUSIVE MODE")
            value = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
            found = int(value or 0)
            if found >= 4 and any(REBUILDS.get(v) for v in range(found + 1, SCHEMA_VERSION + 1)):
                self._refuse_if_written(conn, found)
            for version in range(found + 1, SCHEMA_VERSION + 1):
                tables, columns = UPGRADES[version]
                metadata.create_all(conn, tables=list(tables), checkfirst=True)
                for column in columns:
                    if column.name in self._column_names(conn, column.table.name):
                        continue  # added already (a store made by this version, relabelled)
                    kind = column.type.compile(dialect=self._engine.dialect)
                    name = self._engine.dialect.identifier_preparer.quote(column.name)
                    conn.exec_driver_sql(
                        f"ALTER TABLE {self._qualified(column.table.name)} ADD COLUMN {name} {kind}")
                if version == 3:
                    self._backfill_origins(conn)
                for table in REBUILDS.get(version, ()):
                    self._rebuild(conn, table)
            conn.execute(update(meta).where(meta.c.key == "schema_version")
                         .values(value=str(SCHEMA_VERSION)))

    def _refuse_if_written(self, conn: Connection, found: int) -> None:
        """
        Refuse to rebuild tables an engine of an earlier Eventor is writing to: its next
        round would fail (it does not number its rows), and its run be left interrupted.
        """
        a = attempts
        live = conn.execute(
            select(a.c.run_id, a.c.attempt, a.c.host, a.c.pid, a.c.heartbeat_at)
            .where(a.c.ended_at.is_(None), a.c.heartbeat_at >= time.time() - HEARTBEAT_GRACE)
        ).first()
        if live is not None:
            raise StoreUnavailableError(
                f"cannot open store {self.address} yet: it is schema version {found}, and "
                f"upgrading it to {SCHEMA_VERSION} rebuilds its triggers and tasks tables, while "
                f"run {live.run_id!r} (attempt {live.attempt}) is being written by an engine of "
                f"an earlier Eventor (pid {live.pid} on {live.host}, alive "
                f"{max(0, round(time.time() - live.heartbeat_at))} s ago); let that run end, or "
                "stop it (recover it after), then open the store again",
                store=self.address,
            )

    def _rebuild(self, conn: Connection, table: Any) -> None:
        """Recreate ``table`` in its current definition, with every row it holds."""
        new = table.to_metadata(MetaData(), name=f"{table.name}_rebuilt")
        new.create(conn)
        names = [c.name for c in table.columns]
        conn.execute(insert(new).from_select(names, select(*(table.c[n] for n in names))))
        table.drop(conn)
        quote = self._engine.dialect.identifier_preparer.quote
        conn.exec_driver_sql(
            f"ALTER TABLE {self._qualified(new.name)} RENAME TO {quote(table.name)}")

    def _qualified(self, table: str) -> str:
        """A table's name for raw SQL: quoted, and in the store's schema when it has one."""
        quote = self._engine.dialect.identifier_preparer.quote
        return f"{quote(self._schema)}.{quote(table)}" if self._schema else quote(table)

    def _column_names(self, conn: Connection, table: str) -> set[str]:
        from sqlalchemy import inspect

        return {c["name"] for c in inspect(conn).get_columns(table, schema=self._schema)}

    def _backfill_origins(self, conn: Connection) -> None:
        """Give triggers recorded before schema 3 their origin, read from their source text."""
        rows = conn.execute(select(triggers.c.id, triggers.c.source)).all()
        updates = [{"k_id": row_id, **_origin_of(source)} for row_id, source in rows]
        if updates:
            conn.execute(update(triggers).where(triggers.c.id == bindparam("k_id")).values(
                origin=bindparam("origin"), origin_step=bindparam("origin_step"),
                origin_sequence=bindparam("origin_sequence")), updates)

    def _create_schema(self, conn: Connection) -> None:
        with self._guard("create the store"), conn.begin():
            if self._engine.dialect.name == "postgresql":
                # Two programs creating one store at once take turns (sqlite: BEGIN IMMEDIATE).
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(4242424242)")
                if self._schema:
                    quote = self._engine.dialect.identifier_preparer.quote
                    conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quote(self._schema)}")
            # Two programs may create the same new store at once: the second, holding the
            # write lock after the first committed, finds the schema and keeps it.
            if meta.name in self._table_names(conn):
                return
            metadata.create_all(conn)
            conn.execute(insert(meta), [{"key": "schema_version", "value": str(SCHEMA_VERSION)}])

    # -- writing -------------------------------------------------------------------------

    def begin_attempt(self, run_id: str, program: str, mode: str, *, now: float, host: str,
                      pid: int, info: Mapping[str, Any] | None = None,
                      after: int | None = None) -> int:
        try:
            with self._lock, self._guard("begin attempt"), self._conn.begin():
                conn = self._conn
                exists = conn.execute(select(runs.c.run_id).where(runs.c.run_id == run_id)).first()
                if exists and mode == "restart":
                    raise StoreIntegrityError(
                        f"run {run_id!r} already exists in {self.address}; give a new run_id, or "
                        "recover or continue that run",
                        store=self.address,
                    )
                if not exists:
                    conn.execute(insert(runs), [{
                        "run_id": run_id, "program": program, "created_at": now,
                        "info": json.dumps(dict(info or {}), default=str),
                    }])
                last = conn.execute(
                    select(func.max(attempts.c.attempt)).where(attempts.c.run_id == run_id)
                ).scalar()
                if after is not None and last != after:
                    raise _claimed(run_id, after, last)
                attempt = 0 if last is None else last + 1
                params = (info or {}).get("params")
                conn.execute(insert(attempts), [{
                    "run_id": run_id, "attempt": attempt, "mode": mode, "status": "running",
                    "started_at": now, "host": host, "pid": pid, "heartbeat_at": time.time(),
                    "params": None if params is None else json.dumps(params, default=str),
                }])
        except StoreIntegrityError:
            if after is None:
                raise
            # PostgreSQL: two recoveries read the same latest attempt, and the second
            # insert of the next one broke the primary key.
            raise _claimed(run_id, after, after + 1) from None
        return attempt

    def claim_slot(self, schedule: str, slot_at: float, *, run_id: str, now: float, host: str,
                   pid: int) -> bool:
        try:
            with self._lock, self._guard("claim a schedule slot"), self._conn.begin():
                self._conn.execute(insert(slots), [{
                    "schedule": schedule, "slot_at": slot_at, "run_id": run_id, "claimed_at": now,
                    "host": host, "pid": pid}])
        except StoreIntegrityError:
            return False  # another scheduler claimed it first: the primary key says once
        return True

    def last_slot(self, schedule: str) -> float | None:
        found = self._rows(select(func.max(slots.c.slot_at).label("at"))
                           .where(slots.c.schedule == schedule))
        return found[0]["at"] if found else None

    def slots(self, schedule: str, *, last: int | None = None) -> list[Row]:
        stmt = select(slots).where(slots.c.schedule == schedule)
        if last is None:
            return self._rows(stmt.order_by(slots.c.slot_at))
        return self._rows(stmt.order_by(slots.c.slot_at.desc()).limit(last))[::-1]

    def unfinished(self) -> list[Row]:
        a = attempts
        latest = (select(a.c.run_id, func.max(a.c.attempt).label("attempt"))
                  .group_by(a.c.run_id).subquery())
        stmt = (select(a, runs.c.program, runs.c.info, runs.c.created_at.label("run_created_at"))
                .join(latest, (a.c.run_id == latest.c.run_id) & (a.c.attempt == latest.c.attempt))
                .join(runs, runs.c.run_id == a.c.run_id)
                .where(a.c.ended_at.is_(None) | (a.c.status == "crashed"))
                .order_by(runs.c.created_at, a.c.run_id))
        return [_with_info(r) for r in self._rows(stmt)]

    def write(self, batch: Batch) -> None:
        """
        Write one round in one transaction, straight through the DBAPI cursor.

        This is the engine's hot path: statements are compiled by SQLAlchemy once per
        shape and then run with ``executemany``, which costs a fraction of going through
        ``Connection.execute`` for every statement of every round.
        """
        if not batch:
            return
        with self._lock:
            try:
                self._write_round(batch)
            except (SQLAlchemyError, self._dbapi.Error) as exc:
                raise self._store_error(exc, "record a round") from exc

    def _write_round(self, batch: Batch) -> None:
        dbapi_conn: Any = self._conn.connection.dbapi_connection
        cursor = dbapi_conn.cursor()
        try:
            if self.is_sqlite:
                cursor.execute("BEGIN IMMEDIATE")
            for at, (field, kind, table, _record) in enumerate(_ROUND):
                records = getattr(batch, field)
                if not records:
                    continue
                if kind == "insert" and table in _NUMBERED:
                    self._insert_numbered(cursor, at, records)
                else:
                    stmt = self._round[at] or self._compile_round(at)
                    cursor.executemany(stmt.sql, list(map(stmt.params, records)))
            for release in batch.releases:  # task and pool releases, in the order given
                stmt = self._statement("release", leases, type(release))
                cursor.execute(stmt.sql, stmt.params(release))
            dbapi_conn.commit()
        except BaseException:
            self._next_ids.clear()  # read them again: what this round took is not there
            with contextlib.suppress(Exception):  # a lost connection: its error is the one
                dbapi_conn.rollback()
            raise
        finally:
            with contextlib.suppress(Exception):
                cursor.close()

    def _compile_round(self, at: int) -> _Compiled:
        _, kind, table, record = _ROUND[at]
        stmt = self._round[at] = self._statement(kind, table, record)
        return stmt

    def _insert_numbered(self, cursor: Any, at: int, records: list[Any]) -> None:
        """
        Insert a round's new triggers or tasks, each row with its id (see `_ids`) and only
        the columns it has a value for.

        A column left out is NULL, as a NULL bound to it would make it, but binding costs:
        a new task has values for 7 of its 18 fields, and sqlite inserted it in a third of
        the time with only those 7 bound. Rows are written in groups of the same columns, one
        statement each, compiled once per group.
        """
        _, _, table, record = _ROUND[at]
        ids = self._ids(cursor, table, records)
        is_ = operator.is_
        groups: dict[tuple[bool, ...], Any] = {}  # which fields are None -> positions
        if len(records) == 1:  # a chain's round
            groups[tuple(map(is_, records[0], _NONES))] = (0,)
        else:
            for i, row in enumerate(records):
                groups.setdefault(tuple(map(is_, row, _NONES)), []).append(i)
        for absent, positions in groups.items():
            stmt = self._sparse.get((at, absent))
            if stmt is None:
                present = tuple(f for f, none in zip(record._fields, absent, strict=True)
                                if not none)
                stmt = self._sparse[at, absent] = self._statement("insert", table, record,
                                                                  present)
            # made as they are written: a 100,000-task round makes no second list of them
            cursor.executemany(stmt.sql, stmt.numbered(ids, records, positions))

    def _ids(self, cursor: Any, table: Any, records: list[Any]) -> range | list[int]:
        """
        The ids ``records`` get, in their order: the next ones in their attempt.

        An attempt has one writer (its engine, which claimed it), so the next id is read
        from the table once per attempt and then counted here.
        """
        next_ids, name = self._next_ids, table.name
        # (run_id, attempt) of the records, which are their first two fields, as named
        of = ([records[0][:2]] if len(records) == 1  # a chain's round
              else list(dict.fromkeys(r[:2] for r in records)))
        for run_id, attempt in of:
            if (name, run_id, attempt) not in next_ids:  # now, not while writing
                next_ids[name, run_id, attempt] = self._last_id(cursor, table, run_id, attempt)
        if len(of) == 1:  # a round: of one attempt
            key = (name, *of[0])
            first = next_ids[key]
            next_ids[key] = first + len(records)
            return range(first, first + len(records))
        ids = []
        for record in records:
            key = (name, record[0], record[1])
            ids.append(next_ids[key])
            next_ids[key] += 1
        return ids

    def _last_id(self, cursor: Any, table: Any, run_id: str, attempt: int) -> int:
        """The id the next row of ``table`` in an attempt gets, read from the table."""
        last = self._statement("last_id", table, _AttemptKey)
        cursor.execute(last.sql, last.params(_AttemptKey(run_id, attempt)))
        return int(cursor.fetchone()[0] or 0) + 1

    def _statement(self, kind: str, table: Any, record: type,
                   present: tuple[str, ...] | None = None) -> _Compiled:
        """
        The statement that writes records of one type, compiled once.

        A record's fields are the table's columns (``try_`` is ``try``); an insert writes the
        ``present`` ones (default: all); an update finds its row by the table's key columns
        and sets the others; a release sets ``released_at`` on the leases its other fields
        select that are still held.
        """
        shape = (kind, table.name, record, present)
        compiled = self._statements.get(shape)
        if compiled is None:
            fields = record._fields if present is None else present  # type: ignore[attr-defined]
            columns = {f: _COLUMN.get(f, f) for f in fields}
            stmt: Any
            if kind == "last_id":  # the last id given in an attempt (see _ids)
                stmt = select(func.max(table.c.id)).where(
                    table.c.run_id == bindparam("run_id"), table.c.attempt == bindparam("attempt"))
                names = {"run_id": "run_id", "attempt": "attempt"}
            elif kind == "insert":
                values: dict[str, Any] = {c: bindparam(f) for f, c in columns.items()}
                if table in _NUMBERED:  # given by _ids
                    values["id"] = bindparam("id")
                stmt = insert(table).values(values)
                names = {f: f for f in columns}
            else:
                key = (tuple(f for f in columns if f != "released_at") if kind == "release"
                       else _TASK_KEY if table is tasks else _DELAY_KEY)
                stmt = update(table).where(
                    *(table.c[columns[f]] == bindparam(f"k_{f}") for f in key),
                    *((leases.c.released_at.is_(None),) if kind == "release" else ()))
                stmt = stmt.values({columns[f]: bindparam(f"v_{f}") for f in columns if f not in key})
                names = {f"k_{f}": f for f in key} | {f"v_{f}": f for f in columns if f not in key}
            sql = stmt.compile(dialect=self._engine.dialect, schema_translate_map=self._translate,
                               render_schema_translate=bool(self._translate))
            compiled = self._statements[shape] = _Compiled(sql, names, record)
        return compiled

    def resume_attempt(self, run_id: str, attempt: int, *, now: float, host: str, pid: int) -> None:
        for table in _NUMBERED:  # another program may have written it since: count again
            self._next_ids.pop((table.name, run_id, attempt), None)
        with self._lock, self._guard("resume attempt"), self._conn.begin():
            self._conn.execute(
                update(attempts)
                .where(attempts.c.run_id == run_id, attempts.c.attempt == attempt)
                .values(status="running", ended_at=None, host=host, pid=pid,
                        heartbeat_at=time.time())
            )

    def heartbeat(self, run_id: str, attempt: int, *, at: float) -> None:
        with self._lock, self._guard("record a heartbeat"), self._conn.begin():
            self._conn.execute(
                update(attempts)
                .where(attempts.c.run_id == run_id, attempts.c.attempt == attempt,
                       attempts.c.ended_at.is_(None))
                .values(heartbeat_at=at)
            )

    def update_run_info(self, run_id: str, info: Mapping[str, Any]) -> None:
        with self._lock, self._guard("update run info"), self._conn.begin():
            self._conn.execute(
                update(runs).where(runs.c.run_id == run_id)
                .values(info=json.dumps(dict(info), default=str))
            )

    def acquire(self, requests: list[LeaseRequest], *, now: float) -> set[int]:
        pools = sorted({pool for r in requests for pool, _, _ in r.wants})
        granted: set[int] = set()
        with self._lock, self._guard("acquire resources"), self._conn.begin():
            conn = self._conn
            if self._engine.dialect.name == "postgresql":
                # Every engine sharing the store counts and grants under this lock.
                conn.exec_driver_sql(
                    f"LOCK TABLE {self._qualified(leases.name)} IN SHARE ROW EXCLUSIVE MODE")
            used = dict(conn.execute(
                select(leases.c.pool, func.sum(leases.c.units))
                .where(leases.c.pool.in_(pools), leases.c.released_at.is_(None))
                .group_by(leases.c.pool)
            ).all())
            blocked: set[str] = set()
            rows = []
            for request in requests:
                wants = request.wants
                names = {pool for pool, _, _ in wants}
                if names & blocked or not all(
                    (used.get(pool) or 0) + units <= limit for pool, units, limit in wants
                ):
                    blocked |= names  # later requests for these pools wait their turn
                    continue
                granted.add(request.key)
                for pool, units, _ in wants:
                    used[pool] = (used.get(pool) or 0) + units
                    rows.append({"pool": pool, "units": units, "run_id": request.run_id,
                                 "attempt": request.attempt, "step": request.step,
                                 "sequence": request.sequence, "granted_at": now})
            if rows:
                conn.execute(insert(leases), rows)
        return granted

    def release_attempt(self, run_id: str, attempt: int, *, now: float) -> int:
        with self._lock, self._guard("release resources"), self._conn.begin():
            result = self._conn.execute(
                update(leases)
                .where(leases.c.run_id == run_id, leases.c.attempt == attempt,
                       leases.c.released_at.is_(None))
                .values(released_at=now)
            )
        return int(result.rowcount or 0)

    def purge(self, before: float) -> list[str]:
        with self._lock, self._guard("purge old runs"), self._conn.begin():
            conn = self._conn
            old = {r for (r,) in conn.execute(select(runs.c.run_id).where(runs.c.created_at < before))}
            busy = {r for (r,) in conn.execute(
                select(attempts.c.run_id).where(attempts.c.run_id.in_(old),
                                                attempts.c.ended_at.is_(None)))}
            gone = sorted(old - busy)  # a run still running (or crashed: recover it) stays
            for table in (leases, tries, delays, tasks, triggers, attempts, runs):
                if gone:
                    conn.execute(table.delete().where(table.c.run_id.in_(gone)))
        return gone

    def end_attempt(self, run_id: str, attempt: int, status: str, *, now: float) -> None:
        with self._lock, self._guard("end attempt"), self._conn.begin():
            self._conn.execute(
                update(attempts)
                .where(attempts.c.run_id == run_id, attempts.c.attempt == attempt)
                .values(status=status, ended_at=now)
            )

    @contextlib.contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Turn database errors met while ``doing`` something into Eventor's store errors."""
        try:
            yield
        except (SQLAlchemyError, self._dbapi.Error) as exc:
            raise self._store_error(exc, doing) from exc

    def _store_error(self, exc: BaseException, doing: str) -> StoreError:
        """The store error that says what ``exc`` (a database error) stopped."""
        orig = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the DBAPI's error
        message = f"store {self.address}: could not {doing}: {_first_line(exc)}"
        if isinstance(orig, self._dbapi.IntegrityError):
            return StoreIntegrityError(
                message + " (a trigger or task was recorded twice: is another engine "
                "running this run?)",
                store=self.address,
            )
        if isinstance(orig, self._dbapi.OperationalError):
            return StoreUnavailableError(message, store=self.address)
        return StoreError(message, store=self.address)

    # -- reading -------------------------------------------------------------------------

    def _rows(self, stmt: Any) -> list[Row]:
        with self._lock, self._guard("read"), self._reader.begin():
            result = self._reader.execute(stmt)
            keys = tuple(result.keys())  # once, not per row: a 100,000-task read is 3x faster
            return [dict(zip(keys, row, strict=False)) for row in result.all()]  # same lengths

    def runs(self) -> list[Row]:
        return [_with_info(r) for r in
                self._rows(select(runs).order_by(runs.c.created_at, runs.c.run_id))]

    def run(self, run_id: str) -> Row | None:
        found = self._rows(select(runs).where(runs.c.run_id == run_id))
        return _with_info(found[0]) if found else None

    def attempts(self, run_id: str) -> list[Row]:
        a = attempts
        return self._rows(select(a).where(a.c.run_id == run_id).order_by(a.c.attempt))

    def tasks(self, run_id: str, attempt: int | None = None, *,
              columns: Iterable[str] | None = None) -> list[Row]:
        if columns is not None:
            columns = tuple(columns)
            unknown = [c for c in columns if c not in tasks.c]
            if unknown:
                raise EventorUsageError(
                    f"store.tasks(columns=...): {unknown[0]!r} is not a column of "
                    f"{tasks.name}; give some of {', '.join(tasks.c.keys())}")
        return self._select(tasks, run_id, attempt, columns=columns)

    def triggers(self, run_id: str, attempt: int | None = None, *,
                 origin: str | None = None) -> list[Row]:
        rows = self._select(triggers, run_id, attempt, origin=origin)
        for row in rows:  # a Boolean column: sqlite's driver gives 0 or 1
            row["acted"] = bool(row["acted"])
        return rows

    def _select(self, table: Any, run_id: str, attempt: int | None, *, origin: str | None = None,
                columns: tuple[str, ...] | None = None) -> list[Row]:
        """
        A run's rows of ``table`` (of one attempt, of one ``origin``), in the order written,
        with every column or only ``columns``.

        The select is compiled once per shape and read straight from the DBAPI cursor:
        recovering a run reads every task of it, and SQLAlchemy's result rows doubled what
        100,000 of them cost.
        """
        shape = (table.name, attempt is None, origin is None, columns)
        compiled = self._selects.get(shape)
        if compiled is None:
            stmt = select(*([table.c[c] for c in columns] if columns else [table]))
            stmt = stmt.where(table.c.run_id == bindparam("run_id"))
            if attempt is not None:
                stmt = stmt.where(table.c.attempt == bindparam("attempt"))
            if origin is not None:
                stmt = stmt.where(table.c.origin == bindparam("origin"))
            sql = stmt.order_by(table.c.attempt, table.c.id).compile(  # ids count per attempt
                dialect=self._engine.dialect, schema_translate_map=self._translate,
                render_schema_translate=bool(self._translate))
            compiled = self._selects[shape] = (sql.string, sql.positiontup, tuple(sql.params))
        text, order, names = compiled
        values = {"run_id": run_id, "attempt": attempt, "origin": origin}
        params: Any = ({name: values[name] for name in names} if order is None
                       else [values[name] for name in order])  # named, or positional
        with self._lock, self._guard("read"), self._reader.begin():
            dbapi_conn: Any = self._reader.connection.dbapi_connection
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute(text, params)
                keys = tuple(d[0] for d in cursor.description)  # as long as every row: not checked
                return [dict(zip(keys, row, strict=False)) for row in cursor.fetchall()]
            finally:
                cursor.close()

    def delays(self, run_id: str, attempt: int | None = None) -> list[Row]:
        return self._select(delays, run_id, attempt)

    def tries(self, run_id: str, attempt: int | None = None) -> list[Row]:
        return self._select(tries, run_id, attempt)

    def leases(self, run_id: str | None = None, *, held: bool = False) -> list[Row]:
        stmt = select(leases)
        if run_id is not None:
            stmt = stmt.where(leases.c.run_id == run_id)
        if held:
            stmt = stmt.where(leases.c.released_at.is_(None))
        return self._rows(stmt.order_by(leases.c.id))

    def close(self) -> None:
        with self._lock:
            self._reader.close()
            self._conn.close()
            self._engine.dispose()

    def __repr__(self) -> str:
        return f"SqlStore({self.address!r})"


def _claimed(run_id: str, after: int, last: int | None) -> RunClaimedError:
    return RunClaimedError(
        f"run {run_id!r} attempt {after} was taken up by another program first (attempt "
        f"{last} began after it); see `eventor show {run_id}`", run_id=run_id)


def _with_info(row: Row) -> Row:
    """A run row with its ``info`` JSON decoded."""
    text = row.get("info")
    row["info"] = json.loads(text) if text else {}
    return row


class _Compiled:
    """A statement compiled once, and how to turn a record into its parameters."""

    def __init__(self, compiled: Any, names: Mapping[str, str], record: Any) -> None:
        self.sql = compiled.string
        order = compiled.positiontup
        self.id_at = 0  # where a numbered insert's id goes among the positional parameters
        self.positional = order is not None
        if order is not None:  # qmark/format paramstyles: a tuple in bind order
            if "id" in order and "id" not in names:  # a numbered insert: see SqlStore._ids
                self.id_at = order.index("id")
                order = [n for n in order if n != "id"]
            fields = tuple(names[n] for n in order)
            if fields == record._fields:  # the record is that tuple already (an insert)
                self.params: Any = lambda record: record
            else:  # by position: a record may be the plain tuple of its fields
                get = operator.itemgetter(*(record._fields.index(f) for f in fields))
                self.params = get if len(fields) > 1 else lambda record: (get(record),)
        else:  # named/pyformat: a dict keyed by bind name
            pairs = tuple((n, record._fields.index(f)) for n, f in names.items())
            self.params = lambda record: {n: record[at] for n, at in pairs}

    def numbered(self, ids: Sequence[int], records: Sequence[Any],
                 positions: Iterable[int]) -> Iterator[Any]:
        """The parameters of a numbered insert of ``records[i]``, id ``ids[i]``, for each i."""
        params, at = self.params, self.id_at
        if not self.positional:
            return ({**params(records[i]), "id": ids[i]} for i in positions)
        if at == 0:
            return ((ids[i], *params(records[i])) for i in positions)
        return ((*p[:at], ids[i], *p[at:]) for i in positions for p in (params(records[i]),))


def _origin_of(source: str) -> dict[str, str | None]:
    """The origin a pre-schema-3 trigger's source text describes (how schema 2 wrote it)."""
    if source in ("user", "expr"):
        return {"origin": source, "origin_step": None, "origin_sequence": None}
    if source.startswith("assoc:"):
        return {"origin": "assoc", "origin_step": None, "origin_sequence": None}
    if source.endswith("]:trigger") and "[" in source:
        step, _, sequence = source[: -len("]:trigger")].partition("[")
        return {"origin": "trigger", "origin_step": step, "origin_sequence": sequence}
    step = source.rpartition(":")[0]
    return {"origin": "status", "origin_step": step or None, "origin_sequence": None}


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
