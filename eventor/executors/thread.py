"""The ``thread`` executor: runs tasks on a pool of threads in the engine's process."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from eventor.executors.base import Outcome, TaskRun, run_task


class ThreadExecutor:
    """
    Runs tasks on up to ``workers`` threads; more wait in the pool's queue.

    Threads share ``os.environ``, so a thread step reads its Eventor variables with
    `eventor.task_env()`, never from the environment.
    """

    name = "thread"

    def __init__(self, workers: int = 32) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eventor-step")
        self._pid = os.getpid()

    def submit(self, task: TaskRun, done: Callable[[Outcome], None]) -> None:
        self._pool.submit(self._run, task, done)

    def _run(self, task: TaskRun, done: Callable[[Outcome], None]) -> None:
        done(run_task(task, self._pid))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
