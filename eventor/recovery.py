"""
What recovery and continue decide, before the engine acts: which run, which attempt, and,
per task, skip or rerun, and why.

Recovery is a new attempt of a run. Each task that existed in the recovered attempt is
skipped or rerun by its step's ``recovery`` policy, keyed by the status it had there
(default: success -> skip, anything else -> rerun). Tasks an engine left ``ready`` or
``active`` when it died (a *zombie* attempt: not ended, and no live process owns it) count
as ``active``. `plan_recovery` shows the decisions without running anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventor.enums import StepReplay, StepStatus
from eventor.exceptions import EventorUsageError, RunClaimedError, RunNotFoundError
from eventor.graph import FlowGraph, StepSpec
from eventor.log import EventLogger
from eventor.store.base import HEARTBEAT_GRACE, Row, Store

__all__ = [
    "HEARTBEAT_GRACE",
    "Continued",
    "PlannedTask",
    "Recovered",
    "RecoveryPlan",
    "changed_steps",
    "claim_attempt",
    "fingerprint",
    "load_continued",
    "load_recovered",
    "note_code_changes",
    "owner_alive",
    "pick_attempt",
    "pick_run",
    "plan_recovery",
    "replay",
    "user_triggers",
]

DEFAULT_REPLAY = {
    StepStatus.success: StepReplay.skip,
    StepStatus.failure: StepReplay.rerun,
    StepStatus.ready: StepReplay.rerun,
    StepStatus.active: StepReplay.rerun,
}


def replay(step: StepSpec, status: StepStatus) -> tuple[StepReplay, str]:
    """What recovery does with a task of ``step`` that had ``status``, and the rule that says so."""
    if status in step.recovery:
        return step.recovery[status], f"recovery={{{status}: {step.recovery[status]}}}"
    complete = StepStatus.complete
    if status in (StepStatus.success, StepStatus.failure) and complete in step.recovery:
        return step.recovery[complete], f"recovery={{complete: {step.recovery[complete]}}}"
    return DEFAULT_REPLAY[status], f"default for {status}"




def owner_alive(attempt: Mapping[str, Any], *, grace: float = HEARTBEAT_GRACE,
                now: float | None = None) -> bool:
    """
    True when the engine that ran ``attempt`` may still be running it.

    An ended attempt has no owner. An attempt whose engine has not recorded a heartbeat for
    more than ``grace`` seconds is dead, on any host (its engine was killed, or its host
    lost). Within the grace, on this host the engine's pid is checked too; on another
    host the heartbeat is all there is to go by. An attempt from before heartbeats counts
    its start as its last sign of life.
    """
    if attempt.get("ended_at") is not None:
        return False
    now = time.time() if now is None else now
    last = attempt.get("heartbeat_at")
    if last is None:
        last = attempt.get("started_at")
    if last is not None and now - float(last) > grace:
        return False  # silent for too long
    pid, host = attempt.get("pid"), attempt.get("host")
    if host not in (None, "", socket.gethostname()) or not pid:
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process holds that pid
    return not _exited(int(pid))


def _exited(pid: int) -> bool:
    """
    True for a process that has exited: reaped since it was signalled, or a zombie that its
    parent has not reaped yet (Linux; without ``/proc``, one that answers signals runs).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # reaped since it was signalled? Or no /proc
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].startswith("Z")


def pick_run(store: Store, run_id: str, *, program: str, shared_db: bool,
             log: EventLogger | None = None) -> str:
    """
    The run to recover or continue: ``run_id`` when given, else the latest of ``program``.

    Raises:
        RunNotFoundError: no such run, or no run of the program in the store.
        EventorUsageError: ``shared_db`` is set and the program has several runs, so
            picking the latest could pick another user's run.
    """
    if run_id:
        if store.run(run_id) is None:
            known = [r["run_id"] for r in store.runs()][-5:]
            hint = f" Runs in it: {', '.join(known)}." if known else " The store holds no run."
            raise RunNotFoundError(f"no run {run_id!r} in {store.address}.{hint}",
                                   run_id=run_id, store=store.address)
        return run_id
    mine = [r for r in store.runs() if r["program"] == program]
    if not mine:
        raise RunNotFoundError(
            f"no run of program {program!r} in {store.address} to recover or continue; "
            "run it first, or give run_id=", run_id="", store=store.address)
    if shared_db and len(mine) > 1:
        latest = ", ".join(r["run_id"] for r in mine[-3:])
        raise EventorUsageError(
            f"the shared store {store.address} holds {len(mine)} runs of {program!r}; "
            f"say which with run_id= (the latest: {latest})")
    chosen = str(mine[-1]["run_id"])
    if log is not None:
        log.info("run_picked", run_id=chosen, program=program, runs=len(mine))
    return chosen


def interrupted(store: Store, *, grace: float = HEARTBEAT_GRACE, program: str | None = None,
                flow: str | None = None, now: float | None = None) -> list[Row]:
    """
    The runs in ``store`` that were interrupted: the engine of their latest attempt died
    without ending it (its pid is gone from this host, or it sent no heartbeat for ``grace``
    seconds), or a recovery ended it and died before beginning its own. Oldest first; each
    row is the latest attempt's, with its run's ``program`` and ``info``. ``program`` and
    ``flow`` keep only the runs of that program and flow.
    """
    return [row for row in store.unfinished()
            if (program is None or row["program"] == program)
            and (flow is None or row["info"].get("flow") == flow)
            and not owner_alive(row, grace=grace, now=now)]


def pick_attempt(store: Store, run_id: str, attempt: int | None) -> Row:
    """
    The attempt row to recover from or continue: ``attempt``, or the latest.

    Raises:
        RunNotFoundError: the run has no such attempt.
    """
    rows = store.attempts(run_id)
    if attempt is None:
        if not rows:
            raise RunNotFoundError(f"run {run_id!r} has no attempt in {store.address}",
                                   run_id=run_id, store=store.address)
        return dict(rows[-1])
    for row in rows:
        if row["attempt"] == attempt:
            return dict(row)
    have = ", ".join(str(r["attempt"]) for r in rows) or "none"
    raise RunNotFoundError(
        f"run {run_id!r} has no attempt {attempt} (attempts: {have}); give recovery_run= one "
        "of those", run_id=run_id, store=store.address)


def claim_attempt(store: Store, run_id: str, attempt: Row, *, now: float,
                  log: EventLogger, grace: float = HEARTBEAT_GRACE) -> Row:
    """
    ``attempt``, to be recovered or continued by the caller: when its engine died without
    ending it (a zombie), it is ended as ``crashed`` and the leases it held are released.

    Raises:
        RunClaimedError: a live engine still runs it.
    """
    if owner_alive(attempt, grace=grace):
        raise RunClaimedError(
            f"run {run_id!r} attempt {attempt['attempt']} is still running (pid "
            f"{attempt['pid']} on {attempt['host']}, alive within the last {grace:g} s); "
            "wait for it to end, or stop it first", run_id=run_id)
    if attempt["ended_at"] is None:  # its engine died (killed, power lost)
        store.release_attempt(run_id, attempt["attempt"], now=now)
        store.end_attempt(run_id, attempt["attempt"], "crashed", now=now)
        log.warning("zombie_attempt", run_id=run_id, attempt=attempt["attempt"], pid=attempt["pid"])
    return attempt


@dataclass(frozen=True)
class Recovered:
    """What a recovery reads of the attempt it recovers from."""

    attempt: int
    zombie: bool  # its engine died: ready tasks count as active
    tasks: Mapping[tuple[str, str], Row]  # (step, sequence) -> its task row
    triggered: Mapping[tuple[str, str], tuple[tuple[str, str], ...]]  # task -> its ctx.trigger calls
    delays_started: Mapping[tuple[str, str, str], float]  # (event, target, sequence) -> when

    def recorded(self, step: str, sequence: str) -> tuple[StepStatus, Row] | None:
        """
        The status the task had (active for a zombie's ready task) and its row, or None
        when the attempt had no such task.
        """
        row = self.tasks.get((step, sequence))
        if row is None:
            return None
        return _as_recovered(row["status"], self.zombie), row


_STATUS = {s.value: s for s in StepStatus}  # the enum's lookup, without its call per task


def _as_recovered(status: str, zombie: bool) -> StepStatus:
    """A recorded status as recovery reads it: a dead engine's ready task may have started."""
    recorded = _STATUS[status]
    return StepStatus.active if zombie and recorded is StepStatus.ready else recorded


# What a recovery reads of each task it recovers: a skipped task keeps its outcome.
_OUTCOME = ("step", "sequence", "status", "host", "pid", "result_kind", "result", "error_type",
            "error_message")


def load_recovered(store: Store, run_id: str, prior: Row) -> Recovered:
    """Read the attempt ``prior`` (a claimed attempt row) for a recovery of ``run_id``."""
    attempt = prior["attempt"]
    triggered: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for row in store.triggers(run_id, attempt, origin="trigger"):  # its ctx.trigger calls
        origin = (row["origin_step"], row["origin_sequence"])
        triggered.setdefault(origin, []).append((row["event"], row["sequence"]))
    return Recovered(
        attempt, prior["ended_at"] is None,
        {(r["step"], r["sequence"]): r for r in store.tasks(run_id, attempt, columns=_OUTCOME)},
        {k: tuple(v) for k, v in triggered.items()},
        {(d["event"], d["target"], d["sequence"]): d["activated_at"]
         for d in store.delays(run_id, attempt)},
    )


def note_code_changes(store: Store, run_id: str, graph: FlowGraph, log: EventLogger) -> None:
    """Warn of steps changed since the run was recorded, and record the code as it is now."""
    info = dict((store.run(run_id) or {}).get("info") or {})
    now_print = fingerprint(graph)
    changed = changed_steps(info.get("fingerprint") or {}, now_print)
    if changed:
        log.warning("code_changed", run_id=run_id, steps=", ".join(changed))
    if info.get("fingerprint") != now_print:
        store.update_run_info(run_id, {**info, "fingerprint": now_print})


def user_triggers(store: Store, run_id: str, attempt: int) -> list[tuple[str, str]]:
    """(event, sequence) of the triggers the user made in an attempt, for a recovery to fire again."""
    return [(row["event"], row["sequence"])
            for row in store.triggers(run_id, attempt, origin="user")]


@dataclass(frozen=True)
class Continued:
    """What continue reads of the attempt it picks up where it stopped."""

    fired: Mapping[str, frozenset[str]]  # sequence -> events fired there
    tries: Mapping[tuple[str, str], int]  # (step, sequence) -> tries recorded as failed
    tasks: tuple[Row, ...]  # its tasks, in the order they were created
    delays: tuple[Row, ...]  # its delays that have not fired
    children: tuple[tuple[str, str, str], ...] = ()  # (event, child, parent) of ctx.triggers


def load_continued(store: Store, run_id: str, attempt: int) -> Continued:
    """Read attempt ``attempt`` of ``run_id`` for continue."""
    fired: dict[str, set[str]] = {}
    children = []
    for row in store.triggers(run_id, attempt):
        fired.setdefault(row["sequence"], set()).add(row["event"])
        if row["origin"] == "trigger":
            children.append((row["event"], row["sequence"], row["origin_sequence"]))
    tries: dict[tuple[str, str], int] = {}
    for row in store.tries(run_id, attempt):
        key = (row["step"], row["sequence"])
        tries[key] = max(tries.get(key, 0), row["try"])
    return Continued(
        {seq: frozenset(events) for seq, events in fired.items()}, tries,
        tuple(store.tasks(run_id, attempt)),
        tuple(d for d in store.delays(run_id, attempt) if d["fired_at"] is None),
        tuple(children),
    )


@dataclass(frozen=True, slots=True)
class PlannedTask:
    """One task of the recovered attempt and what recovery will do with it."""

    step: str
    sequence: str
    status: str  # its status in the recovered attempt
    decision: str  # "skip", "rerun", or "drop" (its step is no longer in the flow)
    reason: str

    def __str__(self) -> str:
        return f"{self.step}[{self.sequence}]: {self.status} -> {self.decision} ({self.reason})"


@dataclass(frozen=True)
class RecoveryPlan:
    """
    What recovering ``run_id`` from ``attempt`` would skip and rerun; nothing is run to make it.

    Iterating yields the planned tasks; ``str(plan)`` lists them, one line each, with the
    rule behind each decision (a step's ``recovery`` policy, or the default: a success is
    skipped, anything else rerun).

    Attributes:
        run_id: The run to recover.
        attempt: The attempt it would recover from.
        zombie: That attempt's engine died without ending it, so its ``ready`` tasks
            count as ``active``.
        tasks: Every task of that attempt, in the order they were recorded, each with its ``step``,
            ``sequence``, ``status`` there, ``decision`` (``skip``, ``rerun``, or ``drop``
            when its step is no longer in the flow) and ``reason``.
        changed: The steps added, removed, or changed in code or wiring since the run was
            recorded, sorted by name.
    """

    run_id: str
    attempt: int  # the attempt recovered from
    zombie: bool  # that attempt's engine died without ending it
    tasks: tuple[PlannedTask, ...]
    changed: tuple[str, ...] = ()  # steps whose code or wiring changed since the run

    def __iter__(self) -> Iterator[PlannedTask]:
        return iter(self.tasks)

    @property
    def skip(self) -> tuple[tuple[str, str], ...]:
        """The ``(step, sequence)`` of every task recovery would skip, keeping its outcome."""
        return tuple((t.step, t.sequence) for t in self.tasks if t.decision == "skip")

    @property
    def rerun(self) -> tuple[tuple[str, str], ...]:
        """The ``(step, sequence)`` of every task recovery would run again."""
        return tuple((t.step, t.sequence) for t in self.tasks if t.decision == "rerun")

    def __str__(self) -> str:
        head = f"recovery of run {self.run_id} from attempt {self.attempt}"
        if self.zombie:
            head += " (its engine died: ready and active tasks count as active)"
        lines = [head + ":", *(f"  {t}" for t in self.tasks)]
        if self.changed:
            lines.append(f"  changed since the run: {', '.join(self.changed)}")
        return "\n".join(lines)


def plan_recovery(store: Store, graph: FlowGraph, run_id: str,
                  recovery_run: int | None = None) -> RecoveryPlan:
    """
    Per task of the attempt to recover, skip or rerun and why, without running anything.

    Raises:
        RunNotFoundError: no such run or attempt.
    """
    if store.run(run_id) is None:
        pick_run(store, run_id, program="", shared_db=False)  # raises, naming the runs
    attempt = pick_attempt(store, run_id, recovery_run)
    zombie = attempt.get("ended_at") is None
    planned = []
    rows = store.tasks(run_id, attempt["attempt"])
    on_joins = _on_joins(graph) if graph.joins() else frozenset()
    reruns = any(replay(graph.steps[r["step"]], _as_recovered(r["status"], zombie))[0]
                 is not StepReplay.skip for r in rows if r["step"] in graph.steps)
    for row in rows:
        step = graph.steps.get(row["step"])
        status = _as_recovered(row["status"], zombie)
        if step is None:
            planned.append(PlannedTask(row["step"], row["sequence"], row["status"], "drop",
                                       "the step is no longer in the flow"))
            continue
        decision, reason = replay(step, status)
        if decision is StepReplay.skip and reruns and step.name in on_joins:
            reason += ("; but it runs again if a task of its join's fan-out, run again, ends "
                       "otherwise than recorded")
        planned.append(PlannedTask(row["step"], row["sequence"], row["status"],
                                   decision.value, reason))
    recorded = (store.run(run_id) or {}).get("info", {}).get("fingerprint", {})
    return RecoveryPlan(run_id, attempt["attempt"], zombie, tuple(planned),
                        changed_steps(recorded, fingerprint(graph)))


def _on_joins(graph: FlowGraph) -> frozenset[str]:
    """The steps a join event reaches, through associations and the expressions it is in."""
    seen: set[str] = set()
    events = [ev.name for ev in graph.joins()]
    steps: set[str] = set()
    while events:
        event = events.pop()
        if event in seen:
            continue
        seen.add(event)
        events.extend(graph.dependents(event))
        for assoc in graph.assocs_from(event):
            if assoc.target in graph.steps:
                steps.add(assoc.target)
            else:
                events.append(assoc.target)
    return frozenset(steps)


def _code_parts(code: Any) -> Iterator[bytes]:
    yield code.co_code
    yield repr(code.co_names).encode()
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            yield from _code_parts(const)
        else:
            yield repr(const).encode()


def _function(func: Callable[..., Any] | None) -> Any:
    seen = 0
    while func is not None and seen < 5:  # StepCall, functools.partial, bound methods
        inner = getattr(func, "func", None) or getattr(func, "__func__", None) or getattr(
            func, "__wrapped__", None)
        if inner is None or inner is func:
            break
        func, seen = inner, seen + 1
    return func


def fingerprint(graph: FlowGraph) -> dict[str, str]:
    """
    A short hash per step of its code and wiring, to tell which steps changed since a run.

    The code part covers the bytecode, names and constants (not line numbers, so moving a
    function does not count as a change); the wiring covers the events that run the step
    (and their expressions or joins), the events it triggers or emits, its recovery policy,
    its config and its arguments.
    """
    into: dict[str, list[str]] = {}
    for assoc in graph.assocs:
        spec = graph.events.get(assoc.event)
        expr = None if spec is None else spec.expr if spec.join is None else spec.join
        into.setdefault(assoc.target, []).append(f"{assoc.event}={expr}/{assoc.delay}")
    codes: dict[int, bytes] = {}  # many steps share one function: hash its code once
    seen: dict[tuple[int, str], str] = {}
    prints = {}
    for step in graph.steps.values():
        func = _function(step.func)
        code = getattr(func, "__code__", None)
        key = id(code) if code is not None else id(func)
        code_digest = codes.get(key)
        if code_digest is None:
            digest = hashlib.sha256()
            for part in _code_parts(code) if code is not None else [repr(func).encode()]:
                digest.update(part)
            code_digest = codes[key] = digest.digest()
        incoming = into.get(step.name, ())
        wiring = ",".join(sorted(incoming)) if len(incoming) > 1 else "".join(incoming)
        if step.triggers:
            wiring += "|" + repr(sorted((str(k), v) for k, v in step.triggers.items()))
        if step.emits:
            wiring += "|emits:" + ",".join(map(str, step.emits))
        if step.recovery:
            wiring += "|" + repr(sorted((str(k), str(v)) for k, v in step.recovery.items()))
        if not step.options.is_unset():
            wiring += "|" + json.dumps(step.options.to_config(), sort_keys=True, default=_stable)
        if step.args or step.kwargs:
            wiring += "|" + json.dumps([step.args, dict(step.kwargs)], default=_stable)
        text = seen.get((key, wiring))
        if text is None:  # steps alike in code and wiring (a fan-out) share one hash
            text = seen[key, wiring] = hashlib.sha256(code_digest + wiring.encode()).hexdigest()[:16]
        prints[step.name] = text
    return prints


def _stable(value: Any) -> str:
    """A value's type, for values JSON cannot show (their repr would hold a memory address)."""
    return f"<{type(value).__qualname__}>"


def changed_steps(before: Mapping[str, str], now: Mapping[str, str]) -> tuple[str, ...]:
    """Steps added, removed or changed between two fingerprints."""
    if not before:
        return ()
    return tuple(sorted(name for name in {*before, *now} if before.get(name) != now.get(name)))

