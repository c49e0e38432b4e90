"""
Executors run tasks; the engine looks them up by name in an explicit registry.

``process`` (the default) forks a child per task, ``thread`` uses a thread pool, and
``invoke`` runs the task in the engine itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventor.enums import executor_alias
from eventor.exceptions import EventorConfigError
from eventor.executors.base import Executor, Outcome, TaskRun, encode_result, run_task, task_env
from eventor.executors.inline import InvokeExecutor
from eventor.executors.process import ProcessExecutor
from eventor.executors.thread import ThreadExecutor

__all__ = [
    "REGISTRY",
    "Executor",
    "InvokeExecutor",
    "Outcome",
    "ProcessExecutor",
    "TaskRun",
    "ThreadExecutor",
    "encode_result",
    "executor_name",
    "run_task",
    "task_env",
]

# name -> factory(graph, engine options) -> Executor
REGISTRY: dict[str, Callable[[Any, Any], Executor]] = {
    "process": lambda graph, options: ProcessExecutor(graph.steps, options.max_tasks_per_child),
    "thread": lambda graph, options: ThreadExecutor(options.thread_workers),
    "invoke": lambda graph, options: InvokeExecutor(),
}


def executor_name(value: Any, *, key: str = "task_construct") -> str:
    """
    The registry name for what a user gave as ``task_construct`` (see `executor_alias`).

    Raises:
        EventorConfigError: naming ``key`` and the accepted values.
    """
    name = executor_alias(value)
    if name is not None and name in REGISTRY:
        return name
    raise EventorConfigError(
        f"unknown executor {value!r}; use one of {', '.join(map(repr, REGISTRY))}", key=key
    )
