"""The clock the engine waits with: the real one, and MockClock, which tests move or jump."""

from __future__ import annotations

import queue
import time

from eventor.clock import EMPTY, MockClock, SystemClock


def test_the_system_clock_waits_for_the_inbox_until_the_deadline():
    clock, inbox = SystemClock(), queue.SimpleQueue()
    inbox.put("outcome")
    assert clock.wait(inbox, None) == "outcome"
    started = time.monotonic()
    assert clock.wait(inbox, clock.now() + 0.05) is EMPTY
    assert 0.04 <= time.monotonic() - started < 5


def test_a_mock_clock_jumps_to_the_deadline_once_nothing_reports():
    clock, inbox = MockClock(start=100.0, autojump_threshold=0.01), queue.SimpleQueue()
    assert clock.wait(inbox, 100.0 + 6 * 3600) is EMPTY
    assert clock.now() == 100.0 + 6 * 3600  # six hours passed at once


def test_a_mock_clock_without_autojump_moves_only_by_hand():
    clock, inbox = MockClock(start=0.0, autojump=False, autojump_threshold=0.01), queue.SimpleQueue()
    assert clock.wait(inbox, 60.0) is EMPTY
    assert clock.now() == 0.0
    clock.advance(61.0)
    inbox.put("late")
    assert clock.wait(inbox, 60.0) == "late"  # a deadline passed: what is there, at once
    assert clock.wait(inbox, 60.0) is EMPTY
