"""
The ``invoke`` executor runs a task in the engine's own thread, before the engine goes on;
`CallbackExecutor` is its twin for tests, calling a handler instead of the step.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar

from eventor.executors.base import (
    Emit,
    Executor,
    Outcome,
    TaskRun,
    encode_result,
    failure,
    install_task_environ,
    install_task_streams,
    run_task,
)


class InvokeExecutor(Executor):
    """Runs each task synchronously in the engine; no isolation, no concurrency, no overhead."""

    name: ClassVar[str] = "invoke"

    def __init__(self) -> None:
        install_task_environ()  # the step sees its own variables in os.environ
        install_task_streams()  # and keeps what it prints

    def submit(self, task: TaskRun, done: Emit) -> None:
        done(run_task(task, os.getpid(), done, keep_output=True))



class CallbackExecutor(Executor):
    """
    Runs each task by calling ``handler(task)`` in the engine's thread: the in-memory twin
    for tests of the engine (as httpx's ``MockTransport``).

    ``handler`` returns the task's `Outcome`, or any other value for a success with that
    result; what it raises is the task's failure.
    """

    name: ClassVar[str] = "callback"

    def __init__(self, handler: Callable[[TaskRun], Any]) -> None:
        self.handler = handler

    def submit(self, task: TaskRun, done: Emit) -> None:
        try:
            value = self.handler(task)
        except Exception as exc:
            done(failure(task.key, exc))
            return
        if isinstance(value, Outcome):
            done(value)
        else:
            kind, text = encode_result(value)
            done(Outcome(task.key, True, kind, text))
