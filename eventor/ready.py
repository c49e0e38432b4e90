"""
Ready tasks waiting to start: one queue per executor, taken in the order they became ready.

A queue per executor, rather than one for all, so that the tasks of an executor with no
room (its workers all busy) are passed over without being looked at: a fan-out of 10,000
process steps on 6 workers costs each round a look at the heads of the queues, not at
every waiting task.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain
from typing import Generic, Protocol, TypeVar

__all__ = ["ReadyTasks"]


class _Queued(Protocol):
    key: int  # rises with the order tasks are made ready in
    executor: str


T = TypeVar("T", bound=_Queued)


class ReadyTasks(Generic[T]):
    """Tasks ready to start, by executor; iterating gives them all, in no promised order."""

    __slots__ = ("_count", "_queues")

    def __init__(self) -> None:
        self._queues: dict[str, deque[T]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __iter__(self) -> Iterator[T]:
        return chain.from_iterable(self._queues.values())

    def append(self, task: T) -> None:
        queue = self._queues.get(task.executor)
        if queue is None:
            queue = self._queues[task.executor] = deque()
        queue.append(task)
        self._count += 1

    def remove(self, task: T) -> None:
        self._queues[task.executor].remove(task)
        self._count -= 1

    def put_back(self, tasks: Iterable[T]) -> None:
        """Return tasks taken but not started to the front of their queues, oldest first."""
        for task in sorted(tasks, key=lambda t: t.key, reverse=True):
            self._queues[task.executor].appendleft(task)
            self._count += 1

    def take(self, room: Mapping[str, int]) -> Iterator[T]:
        """
        Take ready tasks, oldest first, from the executors with room.

        ``room`` maps an executor to how many more tasks it may start (an executor it does not
        name has no bound); it is read before each task, so a caller that counts down the
        room of the tasks it starts stops that executor's queue when it is full.
        """
        queues = self._queues
        while self._count:
            best: deque[T] | None = None
            for name, queue in queues.items():
                if queue and room.get(name, 1) > 0 and (best is None or queue[0].key < best[0].key):
                    best = queue
            if best is None:
                return
            self._count -= 1
            yield best.popleft()
