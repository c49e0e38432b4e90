"""
The statuses, replay policies and run modes shared by the graph, the engine and the store.

They are `str` enums so that they store and print as their plain names.
"""

from __future__ import annotations

from enum import Enum


class StepStatus(str, Enum):
    """A task's status; each may trigger events (``triggers={StepStatus.success: (ev,)}``)."""

    ready = "ready"  # triggered, waiting to start
    active = "active"  # started
    success = "success"  # returned
    failure = "failure"  # raised, died, or timed out
    complete = "complete"  # success or failure: only a trigger key, never a stored status

    def __str__(self) -> str:
        return self.value


class StepReplay(str, Enum):
    """What recovery does with a task, by the status it had in the recovered attempt."""

    rerun = "rerun"
    skip = "skip"

    def __str__(self) -> str:
        return self.value


class RunMode(str, Enum):
    """How a run starts: fresh, as a recovery of a failed run, or continuing a stopped one."""

    restart = "restart"
    recover = "recover"
    continue_ = "continue"

    def __str__(self) -> str:
        return self.value


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
