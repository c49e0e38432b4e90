"""
Eventor: synchronize tasks with events.

Steps run when events fire; steps fire events when they succeed or fail; every run is
recorded in a SQLAlchemy store.
"""

from eventor.classic import Eventor
from eventor.clock import Clock, MockClock, SystemClock
from eventor.config import Config, load_config
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
    NotAStoreError,
    NotSupportedError,
    SchemaVersionError,
    StoreError,
    StoreIntegrityError,
    StoreUnavailableError,
    StoreURLError,
)
from eventor.executors.base import task_env
from eventor.graph import FlowGraph, or_

__all__ = [
    "Clock",
    "Config",
    "Eventor",
    "EventorConfigError",
    "EventorError",
    "EventorUsageError",
    "FlowDefinitionError",
    "FlowGraph",
    "MockClock",
    "NotAStoreError",
    "NotSupportedError",
    "RUN_CONTINUE",
    "RUN_RECOVER",
    "RUN_RESTART",
    "RunMode",
    "RunSummary",
    "STEP_ACTIVE",
    "STEP_COMPLETE",
    "STEP_FAILURE",
    "STEP_READY",
    "STEP_RERUN",
    "STEP_SKIP",
    "STEP_SUCCESS",
    "SchemaVersionError",
    "StepReplay",
    "StepStatus",
    "StoreError",
    "StoreIntegrityError",
    "StoreURLError",
    "StoreUnavailableError",
    "SystemClock",
    "load_config",
    "or_",
    "task_env",
]
