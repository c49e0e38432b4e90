"""The SQLAlchemy store on real sqlite files: schema, rules in the database, bad inputs."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Integer, insert
from sqlalchemy.exc import IntegrityError

import eventor as evr
from eventor.store import SCHEMA_VERSION, Batch, open_store
from eventor.store.base import (
    DelayFired,
    DelayRecord,
    LeaseRequest,
    PoolRelease,
    TaskRecord,
    TaskRelease,
    TaskStart,
    TriggerRecord,
    TryRecord,
)
from eventor.store.schema import tasks, triggers
from tests.conftest import POSTGRES


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_new_file_gets_the_schema_in_wal_mode(tmp_path):
    path = tmp_path / "new.run.db"
    store = open_store(str(path))
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
        names = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
        version = db.execute("select value from eventor_meta").fetchone()[0]
    assert {"eventor_runs", "eventor_attempts", "eventor_triggers", "eventor_tasks",
            "eventor_delays"} <= names
    assert version == str(SCHEMA_VERSION)


def test_the_default_store_is_named_after_the_program_in_the_workdir(tmp_path):
    store = open_store("", program="simple_classic", workdir=str(tmp_path))
    store.close()
    assert (tmp_path / "simple_classic.run.db").exists()


def test_a_store_is_reopened_with_its_runs(backend):
    store = backend.open()
    store.begin_attempt("r1", "prog", "restart", now=1.0, host="h", pid=1)
    store.close()
    store = backend.open()
    assert [r["run_id"] for r in store.runs()] == ["r1"]
    store.close()


def test_unique_constraints_hold_at_most_once_in_the_database(backend):
    store = backend.open()
    store.begin_attempt("r", "p", "restart", now=1.0, host="h", pid=1)
    record = TriggerRecord("r", 0, "e", "1", 1.0, "user", "user")
    store.write(Batch(triggers=[record]))
    with pytest.raises(evr.StoreIntegrityError, match="recorded twice"):
        store.write(Batch(triggers=[record]))
    row = {"run_id": "r", "attempt": 0, "event": "e", "sequence": "1", "created_at": 1.0,
           "source": "user", "acted": True}
    engine = store._engine  # the store's own connection settings (schema included)
    # The rule lives in the schema itself, not only in Eventor's code:
    with engine.begin() as conn, pytest.raises(IntegrityError):
        conn.execute(insert(triggers), [row])
    task = {"run_id": "r", "attempt": 0, "step": "s", "sequence": "1", "status": "ready",
            "executor": "thread", "created_at": 1.0}
    with engine.begin() as conn, pytest.raises(IntegrityError):
        conn.execute(insert(tasks), [task, task])
    store.close()


def test_a_round_the_store_cannot_write_is_a_store_error_naming_it(backend):
    store = backend.open()
    store.begin_attempt("r", "p", "restart", now=1.0, host="h", pid=1)
    round_ = Batch(triggers=[TriggerRecord("r", 0, "e", "1", 1.0, "user", "user")])
    if backend.kind == "postgresql":  # the server drops the store's connections
        from sqlalchemy import create_engine

        pids = [c.connection.dbapi_connection.info.backend_pid for c in (store._conn, store._reader)]
        other = create_engine(POSTGRES)
        with other.begin() as conn:
            for pid in pids:
                conn.exec_driver_sql(f"select pg_terminate_backend({pid})")
        other.dispose()
        for _ in range(2):  # the lost connection, then the closed one
            with pytest.raises(evr.StoreUnavailableError, match="could not record a round"):
                store.write(round_)
        store.close()
    else:
        store.close()
        with pytest.raises(evr.StoreError, match=f"store {backend.kind}.*could not record a round"):
            store.write(round_)


def test_tasks_may_be_read_with_only_some_columns(backend):
    store = backend.open()
    store.begin_attempt("r", "p", "restart", now=1.0, host="h", pid=1)
    store.write(Batch(new_tasks=[TaskRecord("r", 0, "s", "1", "success", "thread", 1.0, pid=7)]))
    assert store.tasks("r", 0, columns=["step", "pid"]) == [{"step": "s", "pid": 7}]
    with pytest.raises(evr.EventorUsageError, match="'pdi' is not a column of eventor_tasks"):
        store.tasks("r", columns=("step", "pdi"))
    store.close()


def test_a_round_of_rows_with_different_empty_fields_is_read_back_in_its_order(backend):
    # The store inserts each row with the columns it has values for, grouped by which those
    # are: the rows, their values and their order (ids) come back as given.
    store = backend.open()
    store.begin_attempt("r", "p", "restart", now=1.0, host="h", pid=1)
    store.begin_attempt("q", "p", "restart", now=1.0, host="h", pid=1)
    shapes = [dict(), dict(started_at=2.0, host="h"), dict(result_kind="json", result="1", pid=3),
              dict(error_type="E", error_message="m", traceback="t", exit_code=1, output="o")]
    made = [TaskRecord(run, 0, f"s{i}", "1", "ready", "thread", float(i), **shapes[i % 4])
            for i in range(9) for run in ("r", "q")]
    store.write(Batch(new_tasks=made, triggers=[
        TriggerRecord("r", 0, "go", "1", 1.0, "user", "user"),
        TriggerRecord("r", 0, "item", "2", 1.1, "s[1]:trigger", "trigger", "s", "1"),
        TriggerRecord("r", 0, "go", "3", 1.2, "user", "user")]))
    for run in ("r", "q"):
        assert [TaskRecord(**{f: row[f] for f in TaskRecord._fields}) for row in store.tasks(run)] \
            == [t for t in made if t.run_id == run]
        assert [row["id"] for row in store.tasks(run)] == list(range(1, 10))
    assert [(t["id"], t["sequence"], t["origin_step"]) for t in store.triggers("r")] == [
        (1, "1", None), (2, "2", "s"), (3, "3", None)]
    store.close()


def test_a_task_start_sets_only_what_a_start_changes(backend):
    store = backend.open()
    store.begin_attempt("r", "p", "restart", now=1.0, host="h", pid=1)
    failed = TaskRecord("r", 0, "s", "1", "ready", "thread", 1.0, ended_at=None, pid=4,
                        error_type="ValueError", error_message="try 1", output="out")
    store.write(Batch(new_tasks=[failed]))  # a try failed, and the task waits for the next
    store.write(Batch(task_starts=[TaskStart("r", 0, "s", "1", "active", 5.0, "h2")]))
    (row,) = store.tasks("r")
    assert {f: row[f] for f in TaskRecord._fields} == failed._replace(
        status="active", started_at=5.0, host="h2")._asdict()
    store.close()


def test_a_restart_with_an_existing_run_id_is_refused(backend):
    store = backend.open()
    store.begin_attempt("r", "p", "restart", now=1.0, host="h", pid=1)
    with pytest.raises(evr.StoreIntegrityError, match="run 'r' already exists"):
        store.begin_attempt("r", "p", "restart", now=2.0, host="h", pid=1)
    store.close()


def test_every_kind_of_record_is_written_and_read_back(backend):
    store = backend.open()
    store.begin_attempt("r", "prog", "restart", now=1.0, host="h", pid=7, info={"flow": "f"})
    task = TaskRecord("r", 0, "s", "1", "active", "thread", 1.0, started_at=1.5, host="h")
    store.write(Batch(
        triggers=[TriggerRecord("r", 0, "go", "1", 1.0, "user", "user"),
                  TriggerRecord("r", 0, "item", "2", 1.1, "s[1]:trigger", "trigger", "s", "1")],
        new_tasks=[task],
        delays=[DelayRecord("r", 0, "go", "later", "1", 1.0, 61.0)],
    ))
    store.write(Batch(
        task_updates=[task._replace(status="success", ended_at=2.0, result_kind="json",
                                    result='"ok"', pid=9)],
        delays_fired=[DelayFired("r", 0, "go", "later", "1", 61.5)],
        tries=[TryRecord("r", 0, "s", "1", 1, 1.5, 1.8, 9, "ValueError", "no", None, None)],
    ))
    (row,) = store.tasks("r")
    assert (row["status"], row["result"], row["pid"], row["ended_at"]) == ("success", '"ok"', 9, 2.0)
    assert [(t["event"], t["origin"], t["origin_step"], t["origin_sequence"])
            for t in store.triggers("r")] == [("go", "user", None, None), ("item", "trigger", "s", "1")]
    assert [(d["due_at"], d["fired_at"]) for d in store.delays("r")] == [(61.0, 61.5)]
    assert [(t["try"], t["error_type"]) for t in store.tries("r")] == [(1, "ValueError")]
    store.update_run_info("r", {"flow": "f", "params": {"day": "x"}})
    assert store.run("r")["info"] == {"flow": "f", "params": {"day": "x"}}
    store.end_attempt("r", 0, "paused", now=3.0)
    store.resume_attempt("r", 0, now=4.0, host="h2", pid=8)
    assert [(a["status"], a["host"], a["ended_at"]) for a in store.attempts("r")] == [
        ("running", "h2", None)]
    store.end_attempt("r", 0, "success", now=5.0)
    assert store.purge(before=0.5) == [] and store.purge(before=10.0) == ["r"]
    assert store.runs() == []
    store.close()


def test_in_memory_store_works_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ev = evr.Eventor(name="m", store=":memory:", config={"LOGGING": {"console": False},
                                                          "task_construct": "thread"})
    e = ev.add_event("e")
    ev.add_assoc(e, ev.add_step("s", func=lambda: 1))
    ev.trigger_event(e)
    assert ev.run()
    assert ev.store.tasks(ev.run_id)[0]["status"] == "success"
    ev.close()
    assert list(tmp_path.iterdir()) == []


def test_a_store_in_a_missing_folder_is_unavailable(tmp_path):
    with pytest.raises(evr.StoreUnavailableError, match="folder .*nope does not exist") as info:
        open_store(str(tmp_path / "nope" / "x.run.db"))
    assert isinstance(info.value, ConnectionError)
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize("url", ["://x", "postgresql+psycopg://u:secret@h:notaport/db",
                                 "postgresql+psycopg://u:se/cret@h:notaport/db",
                                 "postgresql+psycopg://u:se@cret@h:notaport/db"])
def test_a_malformed_url_is_a_store_url_error_without_the_password(url):
    with pytest.raises(evr.StoreURLError, match="is malformed") as info:
        open_store(url)
    assert isinstance(info.value, ValueError)
    assert "secret" not in str(info.value) and "cret" not in str(info.value)
    if "secret@" in url:  # the whole URL, its password hidden: which host, which port is wrong
        assert "'postgresql+psycopg://u:***@h:notaport/db' is malformed" in str(info.value)


def test_an_unknown_dialect_is_a_store_url_error():
    with pytest.raises(evr.StoreURLError, match="no dialect 'nosuchdb'"):
        open_store("nosuchdb://u:secret@host/db")


def test_a_database_that_cannot_be_opened_is_unavailable(tmp_path):
    folder = tmp_path / "a_folder.db"
    folder.mkdir()
    with pytest.raises(evr.StoreUnavailableError, match="cannot connect to store .*a_folder.db"):
        open_store(str(folder))
    assert list(folder.iterdir()) == []


def test_a_text_file_is_not_a_store_and_is_left_untouched(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database\n" * 100)
    before = digest(path)
    with pytest.raises(evr.NotAStoreError, match="not an Eventor run store"):
        open_store(str(path))
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_foreign_sqlite_database_is_not_a_store_and_is_left_untouched(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("create table customers (id integer primary key, name text)")
    before = digest(path)
    with pytest.raises(evr.NotAStoreError, match="database of something else.*customers"):
        open_store(str(path))
    assert digest(path) == before
    with sqlite3.connect(path) as db:
        assert db.execute("pragma journal_mode").fetchone()[0] == "delete"


def test_a_store_from_a_newer_eventor_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "future.run.db"
    open_store(str(path)).close()
    with sqlite3.connect(path) as db:
        db.execute("update eventor_meta set value = '99' where key = 'schema_version'")
    before = digest(path)
    with pytest.raises(evr.SchemaVersionError, match="schema version 99.*upgrade Eventor") as info:
        open_store(str(path))
    assert (info.value.found, info.value.expected) == (99, SCHEMA_VERSION)
    assert digest(path) == before


def test_a_databases_tag_in_config_names_the_store(tmp_path):
    cfg = {"LOGGING": {"console": False}, "task_construct": "thread",
           "DATABASES": {"local": {"dialect": "sqlite", "database": str(tmp_path / "tag.db")}}}
    ev = evr.Eventor(name="t", store="local", config=cfg)
    assert ev.store.address.endswith("tag.db")
    ev.close()
    assert (tmp_path / "tag.db").exists()


def test_two_eventors_share_one_store_keyed_by_run_id(backend):
    ids = []
    for name in ("a", "b"):
        ev = evr.Eventor(name=name, store=backend.store, config={
            "LOGGING": {"console": False}, "task_construct": "thread", **backend.config})
        e = ev.add_event("e")
        ev.add_assoc(e, ev.add_step("s", func=lambda n=name: n))
        ev.trigger_event(e)
        assert ev.run()
        ids.append(ev.run_id)
        ev.close()
    store = backend.open()
    assert [r["run_id"] for r in store.runs()] == ids
    assert [t["result"] for t in store.tasks(ids[1])] == ['"b"']
    store.close()


def test_the_store_file_is_closed_by_close(tmp_path):
    path = tmp_path / "c.run.db"
    store = open_store(str(path))
    store.close()
    fds = os.listdir("/proc/self/fd")
    assert not any(os.path.realpath(f"/proc/self/fd/{fd}") == str(path) for fd in fds)


def _as_older_schema(path, version, legacy_triggers=()):
    """Make a store what an older Eventor wrote: without the tables and columns added since."""
    with sqlite3.connect(path) as db:
        db.execute("alter table eventor_attempts drop column heartbeat_at")  # added by version 4
        for column in ("origin", "origin_step", "origin_sequence"):  # added by version 3
            db.execute(f"alter table eventor_triggers drop column {column}")
        db.executemany("insert into eventor_triggers (id, run_id, attempt, event, sequence, "
                       "created_at, source, acted) values (?, 'old', 0, ?, ?, 1.0, ?, 1)",
                       [(i, *t) for i, t in enumerate(legacy_triggers, 1)])
        if version < 2:
            db.execute("drop table eventor_leases")
            db.execute("drop table eventor_tries")
        db.execute(f"update eventor_meta set value = '{version}' where key = 'schema_version'")


def test_a_version_1_store_is_upgraded_in_place_keeping_its_runs(tmp_path):
    path = tmp_path / "old.run.db"
    store = open_store(str(path))
    store.begin_attempt("old", "prog", "restart", now=1.0, host="h", pid=1)
    store.close()
    _as_older_schema(path, 1)
    store = open_store(str(path))
    assert [r["run_id"] for r in store.runs()] == ["old"]
    assert store.leases() == [] and store.tries("old") == []
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("select value from eventor_meta").fetchone() == (str(SCHEMA_VERSION),)


def test_a_version_2_store_gets_the_origin_of_its_triggers_from_their_text(tmp_path):
    path = tmp_path / "old.run.db"
    store = open_store(str(path))
    store.begin_attempt("old", "prog", "restart", now=1.0, host="h", pid=1)
    store.close()
    _as_older_schema(path, 2, [
        ("go", "0", "user"), ("both", "0", "expr"), ("e2", "0", "assoc:e1"),
        ("done", "0", "s1:success"), ("item", "a[1]", "scan[0]:trigger")])
    store = open_store(str(path))
    origins = {t["event"]: (t["origin"], t["origin_step"], t["origin_sequence"])
               for t in store.triggers("old")}
    store.close()
    assert origins == {"go": ("user", None, None), "both": ("expr", None, None),
                       "e2": ("assoc", None, None), "done": ("status", "s1", None),
                       "item": ("trigger", "scan", "0")}


def _as_schema_6(backend, rows):
    """
    Make a store's triggers and tasks tables what schema 6 made them (a row id for each row,
    counted across runs, and a unique key beside it) holding ``rows``: (table, values) in
    the order an old engine wrote them.
    """
    from sqlalchemy import Column, MetaData, Table, UniqueConstraint, create_engine, update

    from eventor.store.schema import meta

    old = MetaData()
    for table, key in ((triggers, ("event",)), (tasks, ("step",))):
        Table(table.name, old, Column("id", Integer, primary_key=True, autoincrement=True),
              *(Column(c.name, c.type, nullable=c.nullable) for c in table.columns if c.name != "id"),
              UniqueConstraint("run_id", "attempt", *key, "sequence"))
    if backend.kind == "sqlite":
        engine = create_engine(f"sqlite:///{backend.store}")
    else:
        database = backend.config["DATABASES"]["pg"]
        engine = create_engine(POSTGRES).execution_options(
            schema_translate_map={None: database["schema"]})
    with engine.begin() as conn:
        triggers.drop(conn)
        tasks.drop(conn)
        old.create_all(conn)
        for table, values in rows:
            conn.execute(insert(old.tables[table.name]), [values])
        conn.execute(update(meta).values(value="6"))
    engine.dispose()


def test_a_version_6_store_keeps_its_triggers_and_tasks_in_order_when_upgraded(backend):
    store = backend.open()
    for run_id in ("old", "other"):
        store.begin_attempt(run_id, "prog", "restart", now=1.0, host="h", pid=1)
        store.end_attempt(run_id, 0, "paused", now=1.5)
    store.close()
    trigger = {"created_at": 1.0, "acted": True, "origin": "user", "source": "user"}
    task = {"executor": "thread", "created_at": 1.0, "status": "success"}
    _as_schema_6(backend, [  # two runs written at once: their row ids interleave
        (triggers, {"run_id": "old", "attempt": 0, "event": "go", "sequence": "0", **trigger}),
        (triggers, {"run_id": "other", "attempt": 0, "event": "go", "sequence": "0", **trigger}),
        (tasks, {"run_id": "old", "attempt": 0, "step": "s9", "sequence": "0", **task}),
        (tasks, {"run_id": "other", "attempt": 0, "step": "s1", "sequence": "0", **task}),
        (tasks, {"run_id": "old", "attempt": 0, "step": "s10", "sequence": "0",
                 **task, "status": "active"}),
    ])
    store = backend.open()
    assert [t["step"] for t in store.tasks("old")] == ["s9", "s10"]  # as written, not by key
    assert [t["status"] for t in store.tasks("old")] == ["success", "active"]
    assert [t["event"] for t in store.triggers("old")] == ["go"]
    # the run goes on: its next rows come after the old ones, and the key still holds
    store.resume_attempt("old", 0, now=2.0, host="h", pid=1)
    store.write(Batch(new_tasks=[TaskRecord("old", 0, "s2", "0", "active", "thread", 2.0)],
                      triggers=[TriggerRecord("old", 0, "e2", "0", 2.0, "s9:success", "status")]))
    assert [t["step"] for t in store.tasks("old")] == ["s9", "s10", "s2"]
    assert [t["event"] for t in store.triggers("old")] == ["go", "e2"]
    with pytest.raises(evr.StoreError):
        store.write(Batch(new_tasks=[TaskRecord("old", 0, "s2", "0", "ready", "thread", 3.0)]))
    store.close()
    if backend.kind == "sqlite":
        with sqlite3.connect(backend.store) as db:
            made = dict(db.execute("select name, sql from sqlite_master where type = 'table'"))
            assert db.execute("select value from eventor_meta").fetchone() == (str(SCHEMA_VERSION),)
        assert all("WITHOUT ROWID" in made[t.name] for t in (tasks, triggers))


def test_a_version_6_store_is_not_rebuilt_while_an_earlier_eventor_writes_to_it(backend):
    # That engine numbers no rows: its next round would fail, and its run be interrupted.
    import time

    from sqlalchemy import create_engine, update

    from eventor.store.schema import attempts

    store = backend.open()
    store.begin_attempt("live", "prog", "restart", now=1.0, host="h", pid=4242)
    store.close()
    _as_schema_6(backend, [])
    with pytest.raises(evr.StoreUnavailableError, match="run 'live'.*pid 4242 on h.*let that run end"):
        backend.open()
    # once its heartbeat is old (the engine died) the store is upgraded
    if backend.kind == "sqlite":
        engine = create_engine(f"sqlite:///{backend.store}")
    else:
        engine = create_engine(POSTGRES).execution_options(
            schema_translate_map={None: backend.config["DATABASES"]["pg"]["schema"]})
    with engine.begin() as conn:
        conn.execute(update(attempts).values(heartbeat_at=time.time() - 3600))
    engine.dispose()
    store = backend.open()
    assert [r["run_id"] for r in store.runs()] == ["live"]
    store.close()


def test_leases_are_granted_all_or_nothing_in_order_across_runs(backend):
    store = backend.open()

    def want(key, run, *wants):
        return LeaseRequest(key, run, 0, f"s{key}", "1", wants)

    assert store.acquire([want(1, "a", ("db", 1, 2)), want(2, "a", ("db", 1, 2))], now=1.0) == {1, 2}
    # db is full: 3 waits; 4 needs db too, so it may not overtake 3 even though its other
    # pool (cpu) is free, and 5, which wants cpu, may not overtake 4; 6 wants another pool
    assert store.acquire([want(3, "b", ("db", 1, 2)), want(4, "b", ("db", 1, 2), ("cpu", 1, 4)),
                          want(5, "b", ("cpu", 2, 4)), want(6, "b", ("gpu", 1, 1))],
                         now=2.0) == {6}
    store.write(Batch(releases=[TaskRelease("a", 0, "s1", "1", 3.0)]))
    assert store.acquire([want(3, "b", ("db", 1, 2)), want(4, "b", ("db", 1, 2), ("cpu", 1, 4)),
                          want(5, "b", ("cpu", 2, 4))], now=4.0) == {3}
    held = [(r["pool"], r["run_id"], r["step"]) for r in store.leases(held=True)]
    assert held == [("db", "a", "s2"), ("gpu", "b", "s6"), ("db", "b", "s3")]
    store.write(Batch(releases=[PoolRelease("b", "1", "gpu", 5.0)]))
    assert store.release_attempt("a", 0, now=6.0) == 1
    assert [(r["pool"], r["step"]) for r in store.leases(held=True)] == [("db", "s3")]
    store.close()


def test_a_read_only_sqlite_uri_opens_the_store_for_reading(tmp_path):
    path = tmp_path / "ro.run.db"
    store = open_store(str(path))
    store.begin_attempt("r1", "prog", "restart", now=1.0, host="h", pid=1)
    store.close()
    for url in (f"sqlite:///file:{path}?mode=ro&uri=true", "sqlite:///file:ro.run.db?mode=ro&uri=true"):
        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            reader = open_store(url)
            assert [r["run_id"] for r in reader.runs()] == ["r1"]
            with pytest.raises(evr.StoreError, match="readonly"):
                reader.begin_attempt("r2", "prog", "restart", now=2.0, host="h", pid=1)
            reader.close()
        finally:
            os.chdir(cwd)
    with pytest.raises(evr.StoreUnavailableError, match="folder /no/such does not exist"):
        open_store("sqlite:///file:/no/such/x.db?mode=ro&uri=true")
