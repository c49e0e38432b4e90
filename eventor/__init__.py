"""
Eventor: synchronize tasks with events.

Steps run when events fire; steps fire events when they succeed or fail; every run is
recorded in a SQLAlchemy store.

Every public name is re-exported here, and loaded on first use: ``import eventor.graph``
(or ``from eventor import Event``) does not load the engine, the executors or SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventor.classic import Eventor
    from eventor.clock import Clock, MockClock, SystemClock
    from eventor.config import Config, load_config
    from eventor.context import RunResult, StepContext, TaskResult
    from eventor.dsl import Event, or_, step
    from eventor.engine import RunSummary
    from eventor.enums import (
        RUN_CONTINUE,
        RUN_RECOVER,
        RUN_RESTART,
        STEP_ACTIVE,
        STEP_COMPLETE,
        STEP_FAILURE,
        STEP_READY,
        STEP_RERUN,
        STEP_SKIP,
        STEP_SUCCESS,
        RunMode,
        StepReplay,
        StepStatus,
    )
    from eventor.exceptions import (
        EventorConfigError,
        EventorError,
        EventorUsageError,
        FlowDefinitionError,
        HostError,
        NotAStoreError,
        NotSupportedError,
        ParameterError,
        ProcessDied,
        ResourceDeadlock,
        ResultNotStoredError,
        RunClaimedError,
        RunNotFoundError,
        SchemaVersionError,
        StepFailure,
        StepTimeout,
        StoreError,
        StoreIntegrityError,
        StoreUnavailableError,
        StoreURLError,
    )
    from eventor.executors.base import task_env
    from eventor.flows import Flow, flow
    from eventor.graph import FlowGraph, join
    from eventor.recovery import RecoveryPlan
    from eventor.resources import Resource, ResourcePool
    from eventor.schedule import Schedule
    from eventor.session import purge

# public name -> the module that defines it
_EXPORTS = {
    "Clock": "eventor.clock",
    "Config": "eventor.config",
    "Event": "eventor.dsl",
    "Eventor": "eventor.classic",
    "EventorConfigError": "eventor.exceptions",
    "EventorError": "eventor.exceptions",
    "EventorUsageError": "eventor.exceptions",
    "Flow": "eventor.flows",
    "FlowDefinitionError": "eventor.exceptions",
    "FlowGraph": "eventor.graph",
    "MockClock": "eventor.clock",
    "NotAStoreError": "eventor.exceptions",
    "NotSupportedError": "eventor.exceptions",
    "ParameterError": "eventor.exceptions",
    "HostError": "eventor.exceptions",
    "ProcessDied": "eventor.exceptions",
    "RUN_CONTINUE": "eventor.enums",
    "RUN_RECOVER": "eventor.enums",
    "RUN_RESTART": "eventor.enums",
    "RecoveryPlan": "eventor.recovery",
    "Resource": "eventor.resources",
    "ResourceDeadlock": "eventor.exceptions",
    "ResourcePool": "eventor.resources",
    "ResultNotStoredError": "eventor.exceptions",
    "RunClaimedError": "eventor.exceptions",
    "RunMode": "eventor.enums",
    "RunNotFoundError": "eventor.exceptions",
    "RunResult": "eventor.context",
    "RunSummary": "eventor.engine",
    "Schedule": "eventor.schedule",
    "STEP_ACTIVE": "eventor.enums",
    "STEP_COMPLETE": "eventor.enums",
    "STEP_FAILURE": "eventor.enums",
    "STEP_READY": "eventor.enums",
    "STEP_RERUN": "eventor.enums",
    "STEP_SKIP": "eventor.enums",
    "STEP_SUCCESS": "eventor.enums",
    "SchemaVersionError": "eventor.exceptions",
    "StepContext": "eventor.context",
    "StepFailure": "eventor.exceptions",
    "StepReplay": "eventor.enums",
    "StepStatus": "eventor.enums",
    "StepTimeout": "eventor.exceptions",
    "StoreError": "eventor.exceptions",
    "StoreIntegrityError": "eventor.exceptions",
    "StoreURLError": "eventor.exceptions",
    "StoreUnavailableError": "eventor.exceptions",
    "SystemClock": "eventor.clock",
    "TaskResult": "eventor.context",
    "flow": "eventor.flows",
    "join": "eventor.graph",
    "load_config": "eventor.config",
    "or_": "eventor.dsl",
    "purge": "eventor.session",
    "step": "eventor.dsl",
    "task_env": "eventor.executors.base",
}

__all__ = [
    "Clock",
    "Config",
    "Event",
    "Eventor",
    "EventorConfigError",
    "EventorError",
    "EventorUsageError",
    "Flow",
    "FlowDefinitionError",
    "FlowGraph",
    "HostError",
    "MockClock",
    "NotAStoreError",
    "NotSupportedError",
    "ParameterError",
    "ProcessDied",
    "RUN_CONTINUE",
    "RUN_RECOVER",
    "RUN_RESTART",
    "RecoveryPlan",
    "Resource",
    "ResourceDeadlock",
    "ResourcePool",
    "ResultNotStoredError",
    "RunClaimedError",
    "RunMode",
    "RunNotFoundError",
    "RunResult",
    "RunSummary",
    "STEP_ACTIVE",
    "STEP_COMPLETE",
    "STEP_FAILURE",
    "STEP_READY",
    "STEP_RERUN",
    "STEP_SKIP",
    "STEP_SUCCESS",
    "Schedule",
    "SchemaVersionError",
    "StepContext",
    "StepFailure",
    "StepReplay",
    "StepStatus",
    "StepTimeout",
    "StoreError",
    "StoreIntegrityError",
    "StoreURLError",
    "StoreUnavailableError",
    "SystemClock",
    "TaskResult",
    "flow",
    "join",
    "load_config",
    "or_",
    "purge",
    "step",
    "task_env",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        try:  # eventor.store, eventor.exceptions, ...: a submodule, as an eager package had it
            return importlib.import_module(f"eventor.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"eventor.{name}":
                raise
            raise AttributeError(f"module 'eventor' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
