"""
The engine's one timer heap: delayed associations, retries and timeouts come due here.

As trio keeps one ``Deadlines`` heap, the engine keeps one `Timers`: ``add`` a due item,
ask `next_deadline` how long it may wait for its inbox, and `expire` what came due. The
clock only turns that deadline into a wait; nothing here knows what an item means.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["Timers"]

T = TypeVar("T")


class Timers(Generic[T]):
    """Items due at clock times, expired in order of due time (then of adding)."""

    __slots__ = ("_counts", "_heap", "_order")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, T]] = []
        self._order = itertools.count()
        self._counts: Counter[type] = Counter()

    def add(self, due: float, item: T, rank: int = 0) -> None:
        """
        Make ``item`` come due at clock time ``due``; of items due at the same time, those of
        a lower ``rank`` expire first, then those added first.
        """
        heapq.heappush(self._heap, (due, rank, next(self._order), item))
        self._counts[type(item)] += 1

    def next_deadline(self) -> float | None:
        """When the earliest item is due, or None when nothing is waiting."""
        return self._heap[0][0] if self._heap else None

    def expire(self, now: float) -> list[T]:
        """Remove and return the items due at or before ``now``, earliest first."""
        heap, due = self._heap, []
        while heap and heap[0][0] <= now:
            item = heapq.heappop(heap)[3]
            self._counts[type(item)] -= 1
            due.append(item)
        return due

    def remove(self, kind: type) -> list[tuple[float, T]]:
        """Take every item of ``kind`` out, with its due time, earliest first."""
        taken = sorted(e for e in self._heap if isinstance(e[3], kind))
        if taken:
            self._heap = [e for e in self._heap if not isinstance(e[3], kind)]
            heapq.heapify(self._heap)
            self._counts[kind] = 0
        return [(due, item) for due, _, _, item in taken]

    def expire_kind(self, kind: type, now: float) -> list[T]:
        """Remove and return the items of ``kind`` due at or before ``now``, earliest first."""
        due = sorted(e for e in self._heap if isinstance(e[3], kind) and e[0] <= now)
        if due:
            self._heap = [e for e in self._heap if not (isinstance(e[3], kind) and e[0] <= now)]
            heapq.heapify(self._heap)
            self._counts[kind] -= len(due)
        return [item for _, _, _, item in due]

    def next_of(self, kind: type) -> float | None:
        """When the earliest item of ``kind`` is due, or None."""
        return min((e[0] for e in self._heap if isinstance(e[3], kind)), default=None)

    def count(self, kind: type) -> int:
        """How many items of ``kind`` are waiting."""
        return self._counts[kind]

    def pending(self, kind: type) -> Iterator[tuple[float, T]]:
        """The waiting items of ``kind`` with their due times, earliest first."""
        for due, _, _, item in sorted(self._heap):
            if isinstance(item, kind):
                yield due, item

    def __len__(self) -> int:
        return len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)
