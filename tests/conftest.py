"""Shared helpers: every test gets real sqlite files in its own tmp dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import eventor as evr


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


def statuses(ev: evr.Eventor) -> dict[tuple[str, str], str]:
    """(step, sequence) -> stored status, for the Eventor's run."""
    return {(t["step"], t["sequence"]): t["status"] for t in ev.store.tasks(ev.run_id)}


def fired(ev: evr.Eventor) -> list[tuple[str, str]]:
    """(event, sequence) of the run's stored triggers, in order."""
    return [(t["event"], t["sequence"]) for t in ev.store.triggers(ev.run_id)]
