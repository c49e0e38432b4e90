"""
Eventor: synchronize tasks with events.

Steps run when events fire; steps fire events when they succeed or fail; every run is
recorded in a SQLAlchemy store.
"""

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
    NotAStoreError,
    NotSupportedError,
    ParameterError,
    ResultNotStoredError,
    RunNotFoundError,
    SchemaVersionError,
    StoreError,
    StoreIntegrityError,
    StoreUnavailableError,
    StoreURLError,
)
from eventor.executors.base import task_env
from eventor.flow import Flow, flow
from eventor.graph import FlowGraph
from eventor.recovery import RecoveryPlan
from eventor.resources import Resource, ResourcePool
from eventor.store import purge

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
    "MockClock",
    "NotAStoreError",
    "NotSupportedError",
    "ParameterError",
    "RUN_CONTINUE",
    "RUN_RECOVER",
    "RUN_RESTART",
    "RecoveryPlan",
    "Resource",
    "ResourcePool",
    "ResultNotStoredError",
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
    "SchemaVersionError",
    "StepContext",
    "StepReplay",
    "StepStatus",
    "StoreError",
    "StoreIntegrityError",
    "StoreURLError",
    "StoreUnavailableError",
    "SystemClock",
    "TaskResult",
    "flow",
    "load_config",
    "or_",
    "purge",
    "step",
    "task_env",
]
