"""
The statuses, replay policies and run modes shared by the graph, the engine and the store.

They are `StrEnum`s so that they store and print as their plain names.
"""

from __future__ import annotations

from enum import StrEnum


class StepStatus(StrEnum):
    """A task's status; each may trigger events (``triggers={StepStatus.success: (ev,)}``)."""

    ready = "ready"
    """Triggered, waiting to start."""
    active = "active"
    """Started, and not yet ended."""
    success = "success"
    """The step returned."""
    failure = "failure"
    """The step raised, or failed in a way Eventor saw (`StepFailure`: it timed out, ...)."""
    complete = "complete"
    """
    Success or failure: only a ``triggers`` or ``recovery`` key (it applies to both),
    never a stored status.
    """


class StepReplay(StrEnum):
    """What recovery does with a task, by the status it had in the recovered attempt."""

    rerun = "rerun"
    """Run the task again in the new attempt."""
    skip = "skip"
    """
    Do not run the task: keep its stored outcome (result or error) from the recovered
    attempt, and fire again the events that outcome triggered and its ``ctx.trigger``
    calls. A task of a step on a join event is rerun anyway when a child it joins ran again.
    """


class RunMode(StrEnum):
    """How a run starts: fresh, as a recovery of a failed run, or continuing a stopped one."""

    restart = "restart"
    """A new run, from nothing: its attempt 0."""
    recover = "recover"
    """
    A new attempt of a run: each task the recovered attempt had is skipped or rerun by
    its step's ``recovery`` policy (see `StepReplay`).
    """
    continue_ = "continue"
    """
    The same attempt, picked up where it stopped (paused, or its engine died): its fired
    events, pending delays and tries are read back from the store.
    """


STEP_READY = StepStatus.ready
"""Eventor 5.1's name for `StepStatus.ready`."""
STEP_ACTIVE = StepStatus.active
"""Eventor 5.1's name for `StepStatus.active`."""
STEP_SUCCESS = StepStatus.success
"""Eventor 5.1's name for `StepStatus.success`."""
STEP_FAILURE = StepStatus.failure
"""Eventor 5.1's name for `StepStatus.failure`."""
STEP_COMPLETE = StepStatus.complete
"""Eventor 5.1's name for `StepStatus.complete`."""
STEP_RERUN = StepReplay.rerun
"""Eventor 5.1's name for `StepReplay.rerun`."""
STEP_SKIP = StepReplay.skip
"""Eventor 5.1's name for `StepReplay.skip`."""
RUN_RESTART = RunMode.restart
"""Eventor 5.1's name for `RunMode.restart`."""
RUN_RECOVER = RunMode.recover
"""Eventor 5.1's name for `RunMode.recover`."""
RUN_CONTINUE = RunMode.continue_
"""Eventor 5.1's name for `RunMode.continue_`."""

EXECUTORS = ("process", "thread", "invoke", "ssh", "dask")  # the executor registry's names


_DOTTED = {"threading.Thread": "thread", "multiprocessing.Process": "process"}


def executor_alias(value: object) -> str | None:
    """
    The executor name for what a user gave as ``task_construct``, or None when unknown.

    Besides the names, Eventor 5.1's spellings are accepted: ``threading.Thread`` and
    ``multiprocessing.Process`` (or any of its context's ``Process`` classes), as the
    classes or as their dotted names (what a YAML config can say).
    """
    if isinstance(value, str):
        return value if value in EXECUTORS else _DOTTED.get(value)
    if isinstance(value, type):
        if value.__module__ == "threading" and value.__name__ == "Thread":
            return "thread"
        if value.__module__.startswith("multiprocessing") and value.__name__.endswith("Process"):
            return "process"
    return None
