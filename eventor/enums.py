"""
The statuses, replay policies and run modes shared by the graph, the engine and the store.

They are `StrEnum`s so that they store and print as their plain names.
"""

from __future__ import annotations

from enum import StrEnum


class StepStatus(StrEnum):
    """A task's status; each may trigger events (``triggers={StepStatus.success: (ev,)}``)."""

    ready = "ready"  # triggered, waiting to start
    active = "active"  # started
    success = "success"  # returned
    failure = "failure"  # raised, died, or timed out
    complete = "complete"  # success or failure: only a trigger key, never a stored status


class StepReplay(StrEnum):
    """What recovery does with a task, by the status it had in the recovered attempt."""

    rerun = "rerun"
    skip = "skip"


class RunMode(StrEnum):
    """How a run starts: fresh, as a recovery of a failed run, or continuing a stopped one."""

    restart = "restart"
    recover = "recover"
    continue_ = "continue"


STEP_READY = StepStatus.ready
STEP_ACTIVE = StepStatus.active
STEP_SUCCESS = StepStatus.success
STEP_FAILURE = StepStatus.failure
STEP_COMPLETE = StepStatus.complete
STEP_RERUN = StepReplay.rerun
STEP_SKIP = StepReplay.skip
RUN_RESTART = RunMode.restart
RUN_RECOVER = RunMode.recover
RUN_CONTINUE = RunMode.continue_

EXECUTORS = ("process", "thread", "invoke", "ssh", "dask")  # the executor registry's names


def executor_alias(value: object) -> str | None:
    """
    The executor name for what a user gave as ``task_construct``, or None when unknown.

    Besides the names, Eventor 5.1's spellings are accepted: ``threading.Thread`` and
    ``multiprocessing.Process`` (or any of its context's ``Process`` classes).
    """
    if isinstance(value, str):
        return value if value in EXECUTORS else None
    if isinstance(value, type):
        if value.__module__ == "threading" and value.__name__ == "Thread":
            return "thread"
        if value.__module__.startswith("multiprocessing") and value.__name__.endswith("Process"):
            return "process"
    return None
