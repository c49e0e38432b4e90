"""
The executor registry: each executor's name and the factory that makes it for a run.

The engine looks executors up here by name; an executor joins by adding its entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from eventor.enums import executor_alias
from eventor.exceptions import EventorConfigError
from eventor.executors.base import Executor
from eventor.graph import FlowGraph, StepSpec
from eventor.options import EngineOptions

__all__ = ["CHECKS", "REGISTRY", "ExecutorFactory", "executor_name"]


class ExecutorFactory(Protocol):
    """Makes the executor of a name for one run: ``factory(graph, options)``."""

    def __call__(self, graph: FlowGraph, options: EngineOptions, /) -> Executor: ...


def _process(graph: FlowGraph, options: EngineOptions) -> Executor:
    from eventor.executors.process import ProcessExecutor

    return ProcessExecutor(graph.steps, options.max_tasks_per_child)


def _thread(graph: FlowGraph, options: EngineOptions) -> Executor:
    from eventor.executors.thread import ThreadExecutor

    return ThreadExecutor(options.thread_workers)


def _invoke(graph: FlowGraph, options: EngineOptions) -> Executor:
    from eventor.executors.inline import InvokeExecutor

    return InvokeExecutor()


def _ssh(graph: FlowGraph, options: EngineOptions) -> Executor:
    from eventor.executors.ssh import SSHExecutor, module_files, resolve_hosts

    remote = [s for s in graph.steps.values() if s.host is not None]
    hosts = resolve_hosts({s.host for s in remote if s.host is not None}, options.hosts,
                          options.ssh_config)
    return SSHExecutor(hosts, module_files(s.func for s in remote),
                       logging.getLogger(f"eventor.{graph.name}"))


def _dask(graph: FlowGraph, options: EngineOptions) -> Executor:
    from eventor.executors.dask import DaskExecutor

    resources = {name: options.for_step(step.options).worker_resources or {}
                 for name, step in graph.steps.items()}
    return DaskExecutor(options.dask, {k: v for k, v in resources.items() if v})


def _check_dask(steps: Sequence[StepSpec], options: EngineOptions) -> None:
    try:
        from eventor.executors.dask import check_steps
    except ImportError as exc:
        raise EventorConfigError(
            f"the dask executor needs Dask's distributed package ({exc}); install it with "
            "pip install -e '.[dask]'", key="task_construct") from None

    check_steps(steps, options.dask)


def _check_ssh(steps: Sequence[StepSpec], options: EngineOptions) -> None:
    from eventor.executors.ssh import check_steps

    check_steps(steps, options.hosts, options.ssh_config)


# name -> the factory of its executor (each module is imported when a run first needs it)
REGISTRY: dict[str, ExecutorFactory] = {"process": _process, "thread": _thread, "invoke": _invoke,
                                        "ssh": _ssh, "dask": _dask}

# name -> what the engine checks, when it is made, of the steps this executor will run
CHECKS: dict[str, Callable[[Sequence[StepSpec], EngineOptions], None]] = {
    "ssh": _check_ssh, "dask": _check_dask}


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
