"""The ``invoke`` executor: runs a task in the engine's own thread, before the engine goes on."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from eventor.executors.base import TaskRun, run_task


class InvokeExecutor:
    """Runs each task synchronously in the engine; no isolation, no concurrency, no overhead."""

    name = "invoke"

    def submit(self, task: TaskRun, done: Callable[[Any], None]) -> None:
        done(run_task(task, os.getpid(), done))

    def close(self) -> None:
        pass
