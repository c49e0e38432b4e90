"""
The run store's interface: what the engine hands a store (typed records, gathered per
round in a `Batch`) and what it asks of one (`Store`). Nothing here touches a database, and
no column name is spelled outside the store: `eventor.store.sql` maps each record's fields
to the columns of the same names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

__all__ = [
    "SCHEMA_VERSION",
    "HEARTBEAT_GRACE",
    "Batch",
    "DelayFired",
    "DelayRecord",
    "LeaseRequest",
    "PoolRelease",
    "Row",
    "Store",
    "TaskRecord",
    "TaskStart",
    "TaskRelease",
    "TriggerRecord",
    "TryRecord",
]

SCHEMA_VERSION = 7  # 2: leases, tries; 3: trigger origins; 4: heartbeats; 5: task output, attempt
# params; 6: schedule slots; 7: triggers and tasks keyed by what they are (no row ids)

Row = dict[str, Any]  # a row as read back: column name -> value

HEARTBEAT_GRACE = 60.0  # seconds an attempt may go without a heartbeat before it counts as dead


# -- what the engine hands the store: one record type per kind of row -------------------------
# Named tuples rather than frozen dataclasses: as immutable and as typed, and the engine
# makes one per task and trigger on its hot path, where a tuple is made several times faster.

class TriggerRecord(NamedTuple):
    """An event fired in a sequence, and what fired it."""

    run_id: str
    attempt: int
    event: str
    sequence: str
    created_at: float
    source: str  # the origin as text: "user", "step:status", "assoc:event", "expr", "step[seq]:trigger"
    origin: str  # its kind: user, status, assoc, expr, trigger (see `eventor.engine.Origin`)
    origin_step: str | None = None  # the task that fired it (status, trigger)
    origin_sequence: str | None = None  # that task's sequence (trigger)
    acted: bool = True  # its associations were expanded in the same transaction


class TaskRecord(NamedTuple):
    """A task as it stands: inserted when it is created, updated as its status changes."""

    run_id: str
    attempt: int
    step: str
    sequence: str
    status: str
    executor: str
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    host: str | None = None
    pid: int | None = None
    result_kind: str | None = None
    result: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    exit_code: int | None = None
    output: str | None = None  # what the task printed: the end of its stdout and stderr


class TaskStart(NamedTuple):
    """
    A task handed to its executor, and nothing else changed since it was last written: its
    update sets these fields only (a third of a full `TaskRecord`'s cost on sqlite).
    """

    run_id: str
    attempt: int
    step: str
    sequence: str
    status: str
    started_at: float
    host: str | None


class DelayRecord(NamedTuple):
    """A delayed association started in a sequence: ``target`` is due at ``due_at``."""

    run_id: str
    attempt: int
    event: str
    target: str
    sequence: str
    activated_at: float
    due_at: float
    fired_at: float | None = None


class DelayFired(NamedTuple):
    """A delayed association that fired."""

    run_id: str
    attempt: int
    event: str
    target: str
    sequence: str
    fired_at: float


class TryRecord(NamedTuple):
    """A failed try of a task that will be tried again."""

    run_id: str
    attempt: int
    step: str
    sequence: str
    try_: int  # 1 for the first execution (the column is ``try``)
    started_at: float | None
    ended_at: float | None
    pid: int | None
    error_type: str | None
    error_message: str | None
    traceback: str | None
    exit_code: int | None


class LeaseRequest(NamedTuple):
    """A task asks for units of pools: ``wants`` holds (pool, units, limit) triples."""

    key: int  # the engine's handle on the task, returned when granted
    run_id: str
    attempt: int
    step: str
    sequence: str
    wants: tuple[tuple[str, int, int], ...]


class TaskRelease(NamedTuple):
    """Release every lease one task holds."""

    run_id: str
    attempt: int
    step: str
    sequence: str
    released_at: float | None


class PoolRelease(NamedTuple):
    """Release the leases of ``pool`` held in one run and sequence (``releases=[pool]``)."""

    run_id: str
    sequence: str
    pool: str
    released_at: float | None


@dataclass(slots=True)
class Batch:
    """
    Everything one scheduling round changed; the store writes it in one transaction.

    A trigger or task may come as its record (`TriggerRecord`, `TaskRecord`) or as the plain
    tuple of the record's fields, in order, which is how the engine makes them: the garbage
    collector stops looking at a plain tuple of plain values, never at a NamedTuple, and a
    round of a 100,000-task recovery holds 200,000 of them.

    A task that only started since it was last written comes in ``task_starts`` (a
    `TaskStart`: set those fields, keep the rest), never also in ``task_updates``; a store
    that ignored them would show started tasks as ready until they end.
    """

    triggers: list[TriggerRecord | tuple[Any, ...]] = field(default_factory=list)
    new_tasks: list[TaskRecord | tuple[Any, ...]] = field(default_factory=list)
    task_starts: list[TaskStart | tuple[Any, ...]] = field(default_factory=list)
    task_updates: list[TaskRecord | tuple[Any, ...]] = field(default_factory=list)
    delays: list[DelayRecord] = field(default_factory=list)
    delays_fired: list[DelayFired] = field(default_factory=list)
    tries: list[TryRecord] = field(default_factory=list)  # failed tries that will be retried
    releases: list[TaskRelease | PoolRelease] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.triggers or self.new_tasks or self.task_starts or self.task_updates or self.delays
            or self.delays_fired or self.tries or self.releases
        )


class Store(Protocol):
    """What the engine needs of a run store. Every method commits before it returns."""

    address: str  # printable: the password of a URL is masked

    def begin_attempt(self, run_id: str, program: str, mode: str, *, now: float, host: str,
                      pid: int, info: Mapping[str, Any] | None = None,
                      after: int | None = None) -> int:
        """
        Record a new attempt of ``run_id`` (creating the run, with ``info``, when new) and
        its parameters (``info["params"]``); return its number.

        With ``after`` (the attempt a recovery starts from), the new attempt is recorded only
        if ``after`` is still the run's latest: of several programs recovering one attempt at
        once, exactly one succeeds, and the others get `RunClaimedError`.
        """
        ...

    def claim_slot(self, schedule: str, slot_at: float, *, run_id: str, now: float, host: str,
                   pid: int) -> bool:
        """
        Record that ``run_id`` runs ``schedule``'s slot at ``slot_at``: True for the one
        caller that records it, False for every other (the slot was claimed already).
        """
        ...

    def last_slot(self, schedule: str) -> float | None:
        """The time of ``schedule``'s latest claimed slot, or None when it has none."""
        ...

    def slots(self, schedule: str, *, last: int | None = None) -> list[Row]:
        """``schedule``'s claimed slots (only the ``last`` latest, if given), oldest first."""
        ...

    def unfinished(self) -> list[Row]:
        """
        The latest attempt of each run whose latest attempt did not finish: it never ended
        (its engine runs, or died) or it ended ``crashed`` (ended by a recovery that did not
        begin its own). Each row has the attempt's columns and the run's ``program`` and
        ``info``; whether its engine is alive is for `eventor.recovery.owner_alive` to say.
        """
        ...

    def write(self, batch: Batch) -> None:
        """Write one round's changes atomically."""
        ...

    def acquire(self, requests: list[LeaseRequest], *, now: float) -> set[int]:
        """
        Grant leases, all or nothing per request, in order; return the granted requests' keys.

        A request is granted when every pool it wants has room under its limit, counting
        the leases every run in the store holds; a request never overtakes an earlier one
        waiting for the same pool.
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

    def heartbeat(self, run_id: str, attempt: int, *, at: float) -> None:
        """Record that the attempt's engine is alive at ``at`` (real time, seconds)."""
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
    def tasks(self, run_id: str, attempt: int | None = None, *,
              columns: Iterable[str] | None = None) -> list[Row]:
        """A run's tasks (of one attempt), oldest first: every column, or only ``columns``."""
        ...
    def triggers(self, run_id: str, attempt: int | None = None, *,
                 origin: str | None = None) -> list[Row]:
        """A run's triggers (of one attempt; only those of one ``origin``, e.g. "trigger")."""
        ...
    def delays(self, run_id: str, attempt: int | None = None) -> list[Row]: ...
    def close(self) -> None: ...
