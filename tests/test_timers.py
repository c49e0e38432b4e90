"""The engine's one timer heap: items come due in order of time, then of adding."""

from __future__ import annotations

from dataclasses import dataclass

from eventor.timers import Timers


@dataclass(frozen=True)
class Delay:
    name: str


@dataclass(frozen=True)
class Retry:
    name: str


def test_items_expire_in_due_order_and_only_when_due():
    timers: Timers[object] = Timers()
    timers.add(5.0, Delay("late"))
    timers.add(1.0, Retry("early"))
    timers.add(1.0, Delay("early, added second"))
    assert timers.next_deadline() == 1.0
    assert timers.expire(0.5) == []
    assert timers.expire(1.0) == [Retry("early"), Delay("early, added second")]
    assert timers.next_deadline() == 5.0 and len(timers) == 1
    assert timers.expire(10.0) == [Delay("late")]
    assert timers.next_deadline() is None and not timers


def test_items_are_counted_and_listed_by_kind():
    timers: Timers[object] = Timers()
    timers.add(3.0, Delay("b"))
    timers.add(2.0, Delay("a"))
    timers.add(1.0, Retry("r"))
    assert (timers.count(Delay), timers.count(Retry)) == (2, 1)
    assert list(timers.pending(Delay)) == [(2.0, Delay("a")), (3.0, Delay("b"))]
    assert timers.remove(Delay) == [(2.0, Delay("a")), (3.0, Delay("b"))]
    assert timers.count(Delay) == 0 and timers.next_deadline() == 1.0
