"""
Schedules: a flow run once per slot of a cron expression or an interval.

Each slot is claimed in the run store before its run starts (`Store.claim_slot`), so a slot
runs once however many schedulers share the store, and a restarted scheduler computes the
next slot from the store's latest claimed one, not from memory. Cron expressions are read
by croniter, imported when the first one is.
"""

from __future__ import annotations

import datetime as dt
import os
import queue
import re
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventor.clock import Clock, SystemClock
from eventor.exceptions import EventorConfigError

if TYPE_CHECKING:  # a flow class with a schedule loads neither the store nor the logging
    from eventor.log import EventLogger
    from eventor.store.base import Store

__all__ = ["Schedule", "Scheduler", "parse_interval"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ALIASES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
            "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
            "@hourly": "0 * * * *"}
_CRON_HELP = ("write five fields (minute hour day-of-month month day-of-week), e.g. '0 2 * * *' "
              "for 02:00 every day, or @hourly, @daily, @weekly, @monthly, @yearly")


def _looks_like_cron(text: str) -> bool:
    fields = text.split()
    return text.strip().startswith("@") or len(fields) >= 3 or "*" in text


def _check_cron(given: str, cron: str, tz: dt.tzinfo) -> None:
    """Refuse what is not a five-field cron expression that has a next time, naming the fix."""
    from croniter import CroniterError, croniter

    fields = cron.split()
    if len(fields) != 5 or not croniter.is_valid(cron):
        extra = " (a sixth field would be read as seconds)" if len(fields) == 6 else ""
        if len(fields) == 5:
            try:
                croniter(cron)
            except (CroniterError, ValueError) as exc:  # e.g. "[61] is not acceptable"
                extra = f" ({exc}: minute 0-59, hour 0-23, day 1-31, month 1-12, day-of-week 0-6)"
        raise EventorConfigError(f"{given!r} is not a cron expression{extra}; {_CRON_HELP}",
                                 key="schedule")
    try:
        croniter(cron, dt.datetime.now(tz)).get_next(float)
    except (CroniterError, ValueError) as exc:  # "0 0 30 2 *": February has no 30th
        raise EventorConfigError(f"{given!r} never comes due ({exc}); {_CRON_HELP}",
                                 key="schedule") from None
_INTERVAL = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def parse_interval(text: str) -> float:
    """Seconds in an interval written as ``90s``, ``15m``, ``1h30m``, ``2d`` or ``3600``."""
    spec = text.strip().lower().removeprefix("every").strip()
    try:
        return float(spec)
    except ValueError:
        pass
    parts = _INTERVAL.findall(spec)
    if not parts or _INTERVAL.sub("", spec).strip():
        raise EventorConfigError(
            f"{text!r} is not an interval; write it as 90s, 15m, 1h30m, 2d or seconds (3600)",
            key="schedule")
    return sum(float(n) * _UNITS[unit] for n, unit in parts)


class Schedule:
    """
    When a flow runs: every slot of a cron expression, or of an interval.

    Args:
        when: a cron expression (``"0 2 * * *"``, ``"@daily"``), or an interval: a
            `datetime.timedelta`, seconds, or text (``"15m"``, ``"1h30m"``, ``"every 2d"``).
        param: the flow parameter that receives each slot's time: a ``datetime`` parameter
            gets it as an aware datetime in ``tz``, a ``date`` parameter its date, a ``str``
            parameter its ISO 8601 text (or ``format``'s, a strftime format).
        catchup: when the scheduler starts after slots it missed, run every one of them,
            oldest first; by default only the latest missed slot runs.
        tz: the time zone of the cron expression and of the slot times passed (an IANA
            name, e.g. ``"Europe/Paris"``; default: this machine's local time).
        start: an interval's slots are counted from it (default the Unix epoch, so that
            ``1h`` falls on the hour); with ``catchup``, a schedule that never ran runs the
            slots since it.
        format: a strftime format for a ``str`` ``param`` (``"%Y-%m-%d"`` for a day).

    Raises:
        EventorConfigError: the expression, interval or time zone is not valid (when the
            schedule is made, never when it runs).

    Attributes:
        cron: The cron expression, with its fields separated by single spaces and an
            ``@daily``-style alias spelled out (``0 0 * * *``); None for an interval.
        every: The interval in seconds, or None for a cron expression.
        tz: The time zone, as a ``tzinfo`` (this machine's local zone when none was given).
        tz_name: The time zone's name as given, or None.
        start: The ``start`` given, made aware in ``tz`` when it was naive; or None.
        param: The flow parameter that receives each slot's time, or None.
        catchup: Whether every missed slot runs, not only the latest.
        format: The strftime format for a ``str`` ``param``, or None.
    """

    def __init__(self, when: str | float | dt.timedelta, *, param: str | None = None,
                 catchup: bool = False, tz: str | None = None,
                 start: dt.datetime | None = None, format: str | None = None) -> None:
        self.tz: dt.tzinfo = _zone(tz)
        self.tz_name = tz
        self.cron: str | None = None
        self.every: float | None = None
        if isinstance(when, dt.timedelta):
            self.every = when.total_seconds()
        elif isinstance(when, int | float) and not isinstance(when, bool):
            self.every = float(when)
        elif isinstance(when, str) and _looks_like_cron(when):
            self.cron = _ALIASES.get(when.strip().lower(), " ".join(when.split()))
            _check_cron(when, self.cron, self.tz)
        elif isinstance(when, str):
            self.every = parse_interval(when)
        else:
            raise EventorConfigError(
                f"schedule={when!r} is not a schedule; give a cron expression ('0 2 * * *'), "
                "an interval ('15m', timedelta(hours=1)) or a Schedule", key="schedule")
        if self.every is not None and not self.every > 0:
            raise EventorConfigError(f"schedule interval must be more than 0 s, got {when!r}",
                                     key="schedule")
        if start is not None and start.tzinfo is None:
            start = start.replace(tzinfo=self.tz)
        self.start = start
        self.param = param
        self.catchup = bool(catchup)
        if format is not None:
            probe = dt.datetime(2001, 2, 3, 4, 5, 6, tzinfo=self.tz)
            if not isinstance(format, str) or probe.strftime(format) == format:
                raise EventorConfigError(
                    f"format={format!r} has no strftime directive, so every slot would get "
                    "the same text; write e.g. '%Y-%m-%d' for the day, '%Y-%m-%dT%H:%M' for "
                    "the minute", key="schedule format")
        self.format = format

    def replace(self, **changes: Any) -> Schedule:
        """This schedule with the keywords of `Schedule` given here changed."""
        when = self.cron if self.cron is not None else self.every
        kept: dict[str, Any] = {"param": self.param, "catchup": self.catchup, "tz": self.tz_name,
                                "start": self.start, "format": self.format}
        kept.update({k: v for k, v in changes.items() if v is not None and k != "when"})
        return Schedule(changes.get("when") or when, **kept)  # type: ignore[arg-type]

    def same_text(self) -> bool:
        """True when two slots in a row get the same ``format`` text (hourly runs of a day)."""
        if self.format is None:
            return False
        first = self.next_after(dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC).timestamp())
        second = self.next_after(first)
        return self.value(first, str) == self.value(second, str)

    def __repr__(self) -> str:
        what = repr(self.cron) if self.cron is not None else f"every={self.every:g}s"
        extra = "".join(f", {k}={v!r}" for k, v in (("param", self.param), ("tz", self.tz_name))
                        if v)
        return f"Schedule({what}{extra}{', catchup=True' if self.catchup else ''})"

    # -- slots ---------------------------------------------------------------------------

    def next_after(self, t: float) -> float:
        """The first slot strictly after ``t`` (seconds since the epoch)."""
        begin = self.start.timestamp() if self.start else None
        if begin is not None and t < begin:
            t = begin - 1e-3  # no slot before start
        if self.every is not None:
            anchor = begin if begin is not None else 0.0
            n = (t - anchor) // self.every + 1
            slot = anchor + n * self.every
            return round(slot if slot > t else slot + self.every, 3)
        it = self._cron(t)
        slot = it.get_next(float)
        while self._repeated(slot):
            slot = it.get_next(float)
        return float(slot)

    def latest_by(self, t: float) -> float:
        """The last slot at or before ``t`` (minus infinity before ``start``)."""
        begin = self.start.timestamp() if self.start else None
        if begin is not None and t < begin:
            return float("-inf")
        if self.every is not None:
            anchor = begin if begin is not None else 0.0
            return round(anchor + ((t - anchor) // self.every) * self.every, 3)
        nxt = self.next_after(t - 1e-3)
        if nxt <= t:
            return nxt
        it = self._cron(t)
        slot = it.get_prev(float)
        while self._repeated(slot):
            slot = it.get_prev(float)
        return float(slot)

    def _repeated(self, slot: float) -> bool:
        """
        A cron slot at a wall-clock time that already came once this night: when the clocks
        go back, a job at a fixed hour runs once, as cron runs it (one whose hour field is
        a wildcard, such as @hourly, runs in both hours).
        """
        assert self.cron is not None
        if self.cron.split()[1].startswith("*"):
            return False
        when = dt.datetime.fromtimestamp(slot, self.tz)
        if when.fold == 0:
            return False
        first = when.replace(fold=0).timestamp()  # the same wall-clock time, an hour earlier
        return first != slot and abs(self._cron(slot).get_prev(float) - first) < 1e-3

    def between(self, after: float, upto: float) -> list[float]:
        """The slots after ``after`` and at or before ``upto``, oldest first."""
        found, slot = [], self.next_after(after)
        while slot <= upto:
            found.append(slot)
            slot = self.next_after(slot)
        return found

    def value(self, slot: float, tp: Any) -> Any:
        """A slot's time as a parameter of type ``tp`` receives it."""
        when = dt.datetime.fromtimestamp(slot, self.tz)
        if tp is dt.date:
            return when.date()
        if tp is str or self.format:
            return when.strftime(self.format) if self.format else when.isoformat()
        return when

    def _cron(self, t: float) -> Any:
        from croniter import croniter

        assert self.cron is not None
        return croniter(self.cron, dt.datetime.fromtimestamp(t, self.tz))


def _zone(name: str | None) -> dt.tzinfo:
    if name is None:
        return _local_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise EventorConfigError(f"unknown time zone {name!r}; give an IANA name such as "
                                 "'UTC' or 'Europe/Paris'", key="schedule tz") from None


def _local_zone() -> dt.tzinfo:
    """
    This machine's time zone with its daylight saving rules: from $TZ (``Europe/Paris``,
    ``:Europe/Paris``, or a file path), else /etc/localtime. Only when neither can be read
    is it today's fixed offset, with a warning, since slots would then drift by an hour
    when the clocks change.
    """
    spec = os.environ.get("TZ", "").lstrip(":")
    candidates = [spec] if spec else []
    candidates.append("/etc/localtime")
    for candidate in candidates:
        try:
            if candidate.startswith("/"):
                real = os.path.realpath(candidate)
                if "/zoneinfo/" in real:  # a link into the tz database: its name, e.g. Europe/Paris
                    return ZoneInfo(real.split("/zoneinfo/", 1)[1])
                with open(real, "rb") as file:
                    return ZoneInfo.from_file(file, key=candidate)
            return ZoneInfo(candidate)
        except (OSError, ZoneInfoNotFoundError, ValueError):
            continue
    import warnings

    local = dt.datetime.now().astimezone().tzinfo
    assert local is not None
    warnings.warn(f"this machine's time zone could not be read; schedules use today's UTC offset "
                  f"({local}), which moves when the clocks change: give tz=", stacklevel=3)
    return local


class Scheduler:
    """
    Runs ``run_slot(slot, run_id)`` once per slot of ``schedule`` that this scheduler claims
    in ``store`` under ``name``; stops after ``runs`` slot runs, at ``until``, or on `stop`.

    A slot is claimed before its run starts; a slot another scheduler claimed first is
    skipped. On start, the slots missed since the store's latest claimed one are run (all
    with ``catchup``, else the latest); a schedule the store never saw waits for its next
    slot (or, with ``catchup`` and a ``start``, runs the slots since it). ``tend`` is
    called on each wake, before the due slots run (`Flow.schedule` finishes there the slots
    of schedulers that died).
    """

    def __init__(self, schedule: Schedule, name: str, store: Store,
                 run_slot: Callable[[float, str], Any], new_run_id: Callable[[], str], *,
                 clock: Clock | None = None, log: EventLogger | None = None,
                 runs: int | None = None, until: float | None = None,
                 recheck: float | None = 60.0, tend: Callable[[], Any] | None = None) -> None:
        self.schedule, self.name, self.store = schedule, name, store
        self._run_slot, self._new_run_id = run_slot, new_run_id
        self.clock: Clock = clock or SystemClock()
        if log is None:
            from eventor.log import null_logger

            log = null_logger()
        self.log = log
        self.runs, self.until = runs, until
        self.recheck = recheck  # wake at least this often: the wall clock may jump (suspend, NTP)
        self._tend = tend  # called on each wake, before the due slots: see Flow.schedule
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stopped = False
        self._started = self.clock.now()
        self.ran: list[tuple[float, str]] = []  # (slot, run id) of the slots this one ran

    def stop(self) -> None:
        """End `run` once the slot running now (if any) has finished."""
        self._stopped = True
        self._inbox.put(None)

    def due(self, now: float) -> list[float]:
        """The slots to run at ``now``, oldest first."""
        schedule, since = self.schedule, self.store.last_slot(self.name)
        if since is None:  # never run: from this scheduler's start, or catch up from start=
            since = self._started
            if schedule.catchup and schedule.start is not None:
                since = schedule.start.timestamp() - 1e-3
        if schedule.catchup:
            return schedule.between(since, now)
        latest = schedule.latest_by(now)
        return [latest] if latest > since else []

    def run(self) -> list[tuple[float, str]]:
        """Run slots until stopped; returns the (slot, run id) of those this scheduler ran."""
        self.log.info("schedule_started", schedule=self.name, when=repr(self.schedule))
        host, pid = socket.gethostname(), os.getpid()
        self._started = self.clock.now()
        while not self._stopped:
            if self._tend is not None:
                self._tend()
            now = self.clock.now()
            due = [s for s in self.due(now) if self.until is None or s <= self.until]
            for slot in due:
                if self._stopped:
                    break
                run_id = self._new_run_id()
                if not self.store.claim_slot(self.name, slot, run_id=run_id, now=now, host=host,
                                             pid=pid):
                    self.log.info("slot_taken", schedule=self.name, slot=_shown(slot))
                    continue
                self.log.info("slot_started", schedule=self.name, slot=_shown(slot), run_id=run_id)
                self._run_slot(slot, run_id)
                self.ran.append((slot, run_id))
                if self.runs is not None and len(self.ran) >= self.runs:
                    return self.ran
            if due:
                continue  # a run may have taken past the next slot: look again before waiting
            upcoming = self.schedule.next_after(max(now, self.store.last_slot(self.name) or 0.0))
            if self.until is not None and upcoming > self.until:
                break
            deadline = upcoming if self.recheck is None else min(upcoming, now + self.recheck)
            self.clock.wait(self._inbox, deadline)
        return self.ran


def _shown(slot: float) -> str:
    return dt.datetime.fromtimestamp(slot, dt.UTC).isoformat()
