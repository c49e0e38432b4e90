"""
The store's tables (SQLAlchemy Core). Unique constraints hold the at-most-once rules.

Times are seconds since the epoch (float): cheap to write, exact to compare, and
converted for display by the readers that show them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

meta = Table(
    "eventor_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

runs = Table(
    "eventor_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("program", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("info", Text),  # JSON: flow parameters, config summary, code fingerprint
)

attempts = Table(
    "eventor_attempts",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("attempt", Integer, primary_key=True),  # 0 for the first run, then one per recovery
    Column("mode", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # running, success, failure, stopped, paused
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("host", String(256)),
    Column("pid", Integer),
    # Schema version 4: when its engine last said it was alive (real time, whatever clock
    # the engine runs on); an attempt not ended and silent for longer than a grace is dead.
    Column("heartbeat_at", Float),
    Column("params", Text),  # schema 5: the parameters this attempt ran with (JSON)
)

# Schema 7: triggers and tasks are keyed by what they are (an event fired, a step triggered,
# once per sequence of an attempt) rather than by a row id with a unique index beside it: a
# round then writes one b-tree per table, not two (on sqlite, WITHOUT ROWID tables). Their
# ``id`` orders them within their attempt; the store gives it (see SqlStore.write).
triggers = Table(
    "eventor_triggers",
    metadata,
    Column("id", Integer, nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("event", String(256), nullable=False),
    Column("sequence", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("source", String(300), nullable=False),  # "user", "step:status", "assoc:event", "expr"
    # Schema version 3: what fired it, as data (user, status, assoc, expr, trigger), and the
    # task that fired it (a status trigger: its step; a ctx.trigger: its step and sequence).
    Column("origin", String(16)),
    Column("origin_step", String(256)),
    Column("origin_sequence", String(256)),
    # Its associations were expanded (same transaction). Last, as in TriggerRecord: a round's
    # rows are written as the engine made them, with no reordering.
    Column("acted", Boolean, nullable=False),
    PrimaryKeyConstraint("run_id", "attempt", "event", "sequence", name="pk_eventor_triggers"),
    sqlite_with_rowid=False,
)

tasks = Table(
    "eventor_tasks",
    metadata,
    Column("id", Integer, nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("step", String(256), nullable=False),
    Column("sequence", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("executor", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("host", String(256)),
    Column("pid", Integer),
    Column("result_kind", String(16)),
    Column("result", Text),
    Column("error_type", String(256)),
    Column("error_message", Text),
    Column("traceback", Text),
    Column("exit_code", Integer),
    Column("output", Text),  # schema 5: the end of what the task printed
    PrimaryKeyConstraint("run_id", "attempt", "step", "sequence", name="pk_eventor_tasks"),
    sqlite_with_rowid=False,
)

delays = Table(
    "eventor_delays",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("event", String(256), nullable=False),
    Column("target", String(256), nullable=False),
    Column("sequence", String(256), nullable=False),
    Column("activated_at", Float, nullable=False),
    Column("due_at", Float, nullable=False),
    Column("fired_at", Float),
    UniqueConstraint("run_id", "attempt", "event", "target", "sequence", name="uq_delay_once"),
)

Index("ix_eventor_delays_pending", delays.c.run_id, delays.c.fired_at, delays.c.due_at)

# Schema version 2 -------------------------------------------------------------------------

leases = Table(
    "eventor_leases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pool", String(256), nullable=False),
    Column("units", Integer, nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("step", String(256), nullable=False),  # the task that acquired it
    Column("sequence", String(256), nullable=False),
    Column("granted_at", Float, nullable=False),
    Column("released_at", Float),  # NULL while held
)

Index("ix_eventor_leases_held", leases.c.pool, leases.c.released_at)

tries = Table(
    "eventor_tries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("step", String(256), nullable=False),
    Column("sequence", String(256), nullable=False),
    Column("try", Integer, nullable=False),  # 1 for the first execution of the task
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("pid", Integer),
    Column("error_type", String(256)),
    Column("error_message", Text),
    Column("traceback", Text),
    Column("exit_code", Integer),
    UniqueConstraint("run_id", "attempt", "step", "sequence", "try", name="uq_try_once"),
)

# Schema version 6 -------------------------------------------------------------------------

slots = Table(
    "eventor_slots",
    metadata,
    Column("schedule", String(256), primary_key=True),  # the schedule's name (its flow's)
    Column("slot_at", Float, primary_key=True),  # the slot's time: claimed once, by one run
    Column("run_id", String(64), nullable=False),  # the run started for it
    Column("claimed_at", Float, nullable=False),
    Column("host", String(256)),
    Column("pid", Integer),
)

# What each version adds to the one before: an older store is upgraded in place (see
# SqlStore._upgrade). New tables, and new nullable columns of existing tables.
UPGRADES: dict[int, tuple[tuple[Table, ...], tuple[Column[Any], ...]]] = {
    2: ((leases, tries), ()),
    3: ((), (triggers.c.origin, triggers.c.origin_step, triggers.c.origin_sequence)),
    4: ((), (attempts.c.heartbeat_at,)),
    5: ((), (tasks.c.output, attempts.c.params)),
    6: ((slots,), ()),
    7: ((), ()),
}
# Tables a version recreates in their new definition, keeping their rows.
REBUILDS: dict[int, tuple[Table, ...]] = {7: (triggers, tasks)}

TABLES = tuple(t.name for t in metadata.sorted_tables)
