"""Shared helpers: every test gets real sqlite files in its own tmp dir."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import eventor as evr

POSTGRES = os.environ.get("CI_POSTGRES_URL", "")  # set by .ci/run, which starts a server


@dataclass
class Backend:
    """A run store for a test: a sqlite file, or a fresh schema of the test PostgreSQL server."""

    kind: str
    store: str  # what store= takes
    config: dict[str, Any] = field(default_factory=dict)  # the config that names it

    def open(self) -> Any:
        from eventor.store import open_store

        return open_store(self.store, databases=self.config.get("DATABASES"))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: Any, tmp_path: Path):
    """Each test that takes it runs twice: on a sqlite file and on a real PostgreSQL server."""
    if request.param == "sqlite":
        yield Backend("sqlite", str(tmp_path / "backend.run.db"))
        return
    if not POSTGRES:
        if os.environ.get("CI_REQUIRE_POSTGRES"):
            pytest.fail("no PostgreSQL server, and CI requires one (.ci/run starts it)")
        pytest.skip("no PostgreSQL server: .ci/run starts one and sets CI_POSTGRES_URL")
    from sqlalchemy import create_engine, make_url, text

    url = make_url(POSTGRES)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    database = {"dialect": "postgresql", "username": url.username, "password": url.password,
                "host": url.host, "port": url.port, "database": url.database, "schema": schema}
    yield Backend("postgresql", "pg", {"DATABASES": {"pg": database}})
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def ctrl_c():
    """
    SIGINT as at a terminal, for tests of Ctrl-C: a test run started in the background (by
    a non-interactive shell's ``&``) inherits SIGINT ignored, and so would its children.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def make_eventor(tmp_path: Path):
    """Build Eventors on a real sqlite file in tmp_path, closed at the end of the test."""
    made: list[evr.Eventor] = []

    def make(config: dict[str, Any] | None = None, **kwargs: Any) -> evr.Eventor:
        cfg = {"LOGGING": {"console": False}, "task_construct": "thread", **(config or {})}
        kwargs.setdefault("name", "t")
        kwargs.setdefault("store", str(tmp_path / "t.run.db"))
        ev = evr.Eventor(config=cfg, **kwargs)
        made.append(ev)
        return ev

    yield make
    for ev in made:
        ev.close()


@pytest.fixture
def opts(tmp_path: Path) -> dict[str, Any]:
    """Flow options for a test: a real sqlite file in tmp_path, no console logging."""
    return {"store": str(tmp_path / "flow.run.db"), "config": {"LOGGING": {"console": False}}}


def one_step(make_eventor: Any, func: Any, executor: str = "process", **kw: Any) -> evr.Eventor:
    """An Eventor with one step ``s`` on event ``e``, triggered in sequence 5."""
    ev = make_eventor(config={"task_construct": executor})
    e = ev.add_event("e")
    ev.add_assoc(e, ev.add_step("s", func=func, **kw))
    ev.trigger_event(e, 5)
    return ev


def statuses(ev: evr.Eventor) -> dict[tuple[str, str], str]:
    """(step, sequence) -> stored status, for the Eventor's run."""
    return {(t["step"], t["sequence"]): t["status"] for t in ev.store.tasks(ev.run_id)}


def fired(ev: evr.Eventor) -> list[tuple[str, str]]:
    """(event, sequence) of the run's stored triggers, in order."""
    return [(t["event"], t["sequence"]) for t in ev.store.triggers(ev.run_id)]


class Meeting:
    """
    Thread steps that, once started, wait until ``size`` of them run at once (or all
    ``total`` have started): a cap's full overlap is then reached however slow the machine,
    and a step beyond the cap still shows as one more at once.
    """

    def __init__(self, size: int, total: int, timeout: float = 10.0) -> None:
        self.size, self.total, self.timeout = size, total, timeout
        self._cond = threading.Condition()
        self._running = self._started = 0

    def enter(self) -> None:
        with self._cond:
            self._running += 1
            self._started += 1
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._running >= self.size or self._started >= self.total,
                                self.timeout)

    def leave(self) -> None:
        with self._cond:
            self._running -= 1


def slow_then(record: list, name: str, seconds: float, meeting: Meeting | None = None):
    """A step that records ("start"|"end", name, monotonic time) around ``seconds`` of work
    (after its ``meeting``, if any)."""
    def run():
        record.append(("start", name, time.monotonic()))
        if meeting is not None:
            meeting.enter()
        time.sleep(seconds)
        record.append(("end", name, time.monotonic()))
        if meeting is not None:
            meeting.leave()
        return name
    return run


def max_overlap(record: list) -> int:
    """The most steps of ``record`` (from `slow_then`) that ran at once."""
    events = sorted((t, 1 if kind == "start" else -1) for kind, _, t in record)
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    return peak


def fan_out(ev: evr.Eventor, steps: int | list[str], record: list, seconds: float = 0.03,
            meet: int | None = None, **step_kw: Any) -> None:
    """
    One event, ``go``, running ``steps`` (a count, or names) of `slow_then`, in sequence 1;
    with ``meet``, each waits until that many run at once (see `Meeting`).
    """
    names = [f"s{i}" for i in range(steps)] if isinstance(steps, int) else steps
    meeting = None if meet is None else Meeting(meet, len(names))
    go = ev.add_event("go")
    for name in names:
        ev.add_step(name, func=slow_then(record, name, seconds, meeting), **step_kw)
        ev.add_assoc(go, name)
    ev.trigger_event(go, 1)


ROOT = Path(__file__).resolve().parents[1]


def ssh_env() -> dict[str, str]:
    """The loopback sshd that .ci/run starts (.ci/sshd.sh), or a skip (a failure in CI)."""
    names = ("CI_SSH_ADDRESS", "CI_SSH_PORT", "CI_SSH_USER", "CI_SSH_KEY", "CI_SSH_KNOWN_HOSTS")
    if not all(os.environ.get(n) for n in names):
        if os.environ.get("CI_REQUIRE_SSH"):
            pytest.fail("no sshd, and CI requires one (.ci/run starts it with .ci/sshd.sh)")
        pytest.skip("no sshd: .ci/run starts one (.ci/sshd.sh) and sets CI_SSH_*")
    return {n: os.environ[n] for n in names}


def host_config(address: str | None = None, port: int | None = None, **settings: Any) -> dict[str, Any]:
    """A HOSTS entry for the test sshd: this interpreter, the repository as working directory."""
    env = ssh_env()
    return {"address": address or env["CI_SSH_ADDRESS"],
            "port": port or int(env["CI_SSH_PORT"]), "user": env["CI_SSH_USER"],
            "key_file": env["CI_SSH_KEY"], "known_hosts": env["CI_SSH_KNOWN_HOSTS"],
            "python": sys.executable, "workdir": str(ROOT), "connect_timeout": 10,
            **settings}


@pytest.fixture
def loop_host() -> dict[str, Any]:
    """HOSTS with one host, ``loop``: the loopback sshd."""
    return {"loop": host_config()}
