"""
The ``dask`` executor: tasks run on a Dask distributed cluster.

The config's ``DASK`` section says which cluster: ``address`` (a running scheduler), or a
cluster started for the run and closed with it (``cluster_class`` by import path, default
`distributed.LocalCluster`, with ``cluster_kwargs``). Each task is sent with cloudpickle
(Dask's own serializer for functions) under a key of its own, runs in a worker thread, and
comes back as its `Outcome` with its ``ctx.trigger`` requests (in order, before the
outcome); the engine records them, so workers need no database credentials.

Eventor's promises on a cluster:

- Retries are Eventor's. A temporary cluster is started with
  ``distributed.scheduler.allowed-failures: 0``, so a worker that dies mid-step ends that
  try as a `ProcessDied` failure naming the worker (Dask's ``KilledWorker``) instead of
  being run again silently on another worker; a running scheduler with another setting is
  used, with a warning, since Dask would then rerun such a task itself.
- A step past its ``timeout`` is given ``timeout_grace`` seconds; then its worker is
  restarted (a thread cannot be stopped otherwise), which also fails the other tasks that
  worker was running, and the step ends as a `StepTimeout`. Workers must run under a nanny
  (the default) for that.
- Step logs stay in the workers' logs.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

import cloudpickle  # type: ignore[import-untyped]
import dask
import distributed

from eventor.exceptions import EventorConfigError, ProcessDied
from eventor.executors.base import (
    Emit,
    Executor,
    Message,
    Outcome,
    TaskRun,
    TriggerRequest,
    failure,
    install_task_environ,
    qualified_names,
    run_task,
)

__all__ = ["DaskExecutor", "check_steps"]

_DIED_MRO = qualified_names(ProcessDied)
_UNGUARDED = (
    "Dask starts each worker process of a cluster it makes by importing the program's script "
    "again, which must not start the run again; start the run under "
    "'if __name__ == \"__main__\":', as multiprocessing requires")
_log = logging.getLogger("eventor.dask")


def _run(payload: bytes, key: int) -> tuple[Outcome, list[TriggerRequest]]:
    """On a worker: run one task; its outcome and ``ctx.trigger`` requests, as data."""
    try:
        where = distributed.get_worker().address
    except ValueError:  # not on a worker (a test calling it directly)
        where = None
    try:
        task: TaskRun = cloudpickle.loads(payload)
    except BaseException as exc:  # the step's module is not importable on the worker
        outcome = failure(key, exc, os.getpid())
        outcome.error_message = (f"step cannot be loaded on Dask worker {where}: "
                                 f"{outcome.error_message}")
        outcome.host = where
        return outcome, []
    install_task_environ()  # each thread's task sees its own EVENTOR_* variables
    triggers: list[TriggerRequest] = []

    def emit(message: Message) -> None:  # ctx.trigger(...): sent back with the outcome
        if isinstance(message, TriggerRequest):
            triggers.append(message)

    try:
        outcome = run_task(task, os.getpid(), emit)
    except BaseException as exc:  # KeyboardInterrupt raised by the step: its failure
        outcome = failure(key, exc, os.getpid())
    outcome.host = where
    return outcome, triggers


def check_steps(steps: Any, settings: Mapping[str, Any]) -> None:
    """
    What the engine checks when it is made: each dask step can be sent (cloudpickle), and
    a ``cluster_class`` can be imported.

    Raises:
        EventorConfigError: naming the step or the key, and what to change.
    """
    if settings.get("cluster_class"):
        _cluster_class(settings["cluster_class"])
    for step in steps:
        try:
            cloudpickle.dumps((step.func, step.args, dict(step.kwargs)))
        except Exception as exc:
            raise EventorConfigError(
                f"step {step.name!r} runs on Dask, but its function or arguments cannot be "
                f"sent to a worker ({type(exc).__name__}: {exc}); give it arguments that pickle",
                key=f"step {step.name!r} task_construct") from None


def _cluster_class(path: str) -> Any:
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise EventorConfigError(f"cannot import {path!r}: {exc}; install the package that "
                                 "provides it", key="DASK.cluster_class") from None


def _allowed_failures(dask_scheduler: Any) -> int:
    return int(dask_scheduler.allowed_failures)


class DaskExecutor(Executor):
    """
    Submits each task to a Dask cluster, connected (or started) when the run first needs it.

    Args:
        settings: the config's ``DASK`` section.
        resources: the steps' ``worker_resources``, by step name.
    """

    name: ClassVar[str] = "dask"

    def __init__(self, settings: Mapping[str, Any] | None = None,
                 resources: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self._settings = dict(settings or {})
        self._resources = dict(resources or {})
        self._lock = threading.Lock()
        self._client: distributed.Client | None = None
        self._cluster: Any = None
        self._unusable: str | None = None  # why the cluster cannot be used, once that is known
        self._tasks: dict[Any, tuple[TaskRun, Emit, distributed.Future]] = {}  # by Dask key
        self._queued: list[tuple[TaskRun, Emit, bytes]] = []  # for the submitter thread
        self._wake = threading.Condition(self._lock)
        self._completed: distributed.as_completed | None = None
        self._threads: list[threading.Thread] = []
        self._closed = False

    # -- the cluster ---------------------------------------------------------------------

    def _connect(self) -> distributed.Client:
        with self._lock:
            if self._client is not None:
                return self._client
            if self._unusable is not None:
                raise RuntimeError(self._unusable)
            try:
                client = self._open()
                self._completed = distributed.as_completed([], loop=client.loop)
            except Exception as exc:
                self._unusable = f"the Dask cluster cannot be used: {type(exc).__name__}: {exc}"
                raise RuntimeError(self._unusable) from None
            self._client = client
            for target in (self._send, self._collect):
                thread = threading.Thread(target=target, name="eventor-dask", daemon=True)
                self._threads.append(thread)
                thread.start()
            return self._client

    def _open(self) -> distributed.Client:
        settings = self._settings
        timeout = settings.get("connect_timeout", 30)
        address = settings.get("address")
        if address:
            client = distributed.Client(address, timeout=timeout, set_as_default=False)
            failures = client.run_on_scheduler(_allowed_failures)
            if failures:
                _log.warning(
                    "The Dask scheduler at %s reruns a task whose worker died (allowed-failures "
                    "%s): such a step may run twice. Start it with "
                    "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0 for Eventor's retries only.",
                    address, failures)
            return client
        kwargs = dict(settings.get("cluster_kwargs") or {})
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            try:
                if settings.get("cluster_class"):
                    self._cluster = _cluster_class(settings["cluster_class"])(**kwargs)
                else:
                    kwargs.setdefault("dashboard_address", None)
                    self._cluster = distributed.LocalCluster(**kwargs)
            except Exception as exc:
                raise RuntimeError(f"{type(exc).__name__}: {exc} (if the program starts its run "
                                   f"at the top level of its script: {_UNGUARDED})") from None
        return distributed.Client(self._cluster, timeout=timeout, set_as_default=False)

    # -- tasks ---------------------------------------------------------------------------

    def submit(self, task: TaskRun, done: Emit) -> None:
        try:
            self._connect()
        except RuntimeError as exc:
            done(Outcome(task.key, False, error_type="DaskClusterError",
                         error_message=f"step {task.step!r}: {exc}"))
            return
        try:
            payload = cloudpickle.dumps(task)
        except Exception as exc:
            done(Outcome(task.key, False, error_type=type(exc).__qualname__,
                         error_message=f"step {task.step!r} cannot be sent to the Dask cluster: {exc}"))
            return
        with self._lock:
            self._queued.append((task, done, payload))
            self._wake.notify_all()

    def _send(self) -> None:
        """
        The submitter thread: the tasks the engine handed over since the last pass go to the
        scheduler together (one ``client.map`` per set of worker resources), so the engine's
        thread never waits on the cluster.
        """
        client = self._client
        assert client is not None and self._completed is not None
        while True:
            with self._lock:
                while not self._queued and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                batch, self._queued = self._queued, []
            groups: dict[tuple[tuple[str, float], ...], list[tuple[TaskRun, Emit, bytes]]] = {}
            for item in batch:
                wants = tuple(sorted((self._resources.get(item[0].step) or {}).items()))
                groups.setdefault(wants, []).append(item)
            for wants, items in groups.items():
                # A key of its own on a shared cluster: other runs, retries and engines never
                # collide. Dask groups tasks by the key's leading words ("eventor", or
                # "eventor-extract" for a step named extract): one group per step, never one
                # per task, which would swamp the scheduler.
                keys = [f"eventor-{t.step}-{t.run_id}-{t.recovery}-{t.key}-{uuid.uuid4().hex[:12]}"
                        for t, _, _ in items]
                try:
                    futures = client.map(_run, [p for _, _, p in items], [t.key for t, _, _ in items],
                                         key=keys, pure=False, retries=0,
                                         resources=dict(wants) or None)
                except Exception as exc:  # the client closed under us, or refused the tasks
                    for task, done, _ in items:
                        done(Outcome(task.key, False, error_type="DaskClusterError",
                                     error_message=f"step {task.step!r} could not be submitted "
                                                   f"to the Dask cluster: {exc}"))
                    continue
                with self._lock:  # known before they can be reported
                    for (task, done, _), future in zip(items, futures, strict=True):
                        self._tasks[future.key] = (task, done, future)
                self._completed.update(futures)
                with self._lock:
                    self._wake.notify_all()  # the collector may be waiting for work

    def _collect(self) -> None:
        """
        The collector thread: take the futures that finished, fetch their results in one
        gather, and hand each outcome (after its triggers) to the engine.
        """
        client, completed = self._client, self._completed
        assert client is not None and completed is not None
        while not self._closed:
            try:
                batch = completed.next_batch(block=True)
            except StopIteration:  # nothing submitted right now
                with self._lock:
                    if not self._closed and not self._tasks and not self._queued:
                        self._wake.wait(0.5)
                continue
            finished = [f for f in batch if f.status == "finished"]
            try:
                results = client.gather(finished, errors="skip", direct=True) if finished else []
            except Exception:
                results = None
            if results is None or len(results) != len(finished):  # fetch them one by one
                results = [self._result(f) for f in finished]
            for future, result in zip(finished, results, strict=True):
                self._report(future, result)
            for future in batch:
                if future.status != "finished":
                    self._report(future, self._result(future))

    @staticmethod
    def _result(future: distributed.Future) -> Any:
        try:
            return future.result(timeout=30) if future.status == "finished" else future.exception(10)
        except BaseException as exc:  # what went wrong is the result
            return exc

    def _report(self, future: distributed.Future, result: Any) -> None:
        with self._lock:
            entry = self._tasks.pop(future.key, None)
        if entry is None:
            return  # already ended (stopped at its timeout)
        task, done, _ = entry
        if future.status == "finished" and isinstance(result, tuple) and len(result) == 2:
            outcome, triggers = result
            for request in triggers:
                done(request)
            done(outcome)
            return
        done(self._failed(task, future, result))

    def _failed(self, task: TaskRun, future: distributed.Future, error: Any) -> Outcome:
        if isinstance(error, tuple) and len(error) == 3:  # (type, exception, traceback)
            error = error[1]
        if isinstance(error, distributed.KilledWorker):
            worker = getattr(getattr(error, "last_worker", None), "address", None) or "?"
            return Outcome(task.key, False, error_type=ProcessDied.__name__, error_mro=_DIED_MRO,
                           host=worker, error_message=(
                               f"the Dask worker {worker} running step {task.step!r} died "
                               "mid-step"))
        if future.status == "cancelled":
            return Outcome(task.key, False, error_type="CancelledError", error_message=(
                f"step {task.step!r} was cancelled on the Dask cluster (its scheduler or "
                "client went away)"))
        mro = qualified_names(type(error)) if isinstance(error, BaseException) else ()
        return Outcome(task.key, False, error_type=type(error).__qualname__,
                       error_message=f"step {task.step!r} failed on the Dask cluster: {error}",
                       error_mro=mro)

    def cancel(self, key: int, grace: float) -> bool:
        """
        A step past its timeout: give it ``grace`` seconds, then restart the worker running
        it (its thread cannot be stopped otherwise), which ends it.
        """
        with self._lock:
            entry = next((e for e in self._tasks.values() if e[0].key == key), None)
        if entry is None:
            return False
        timer = threading.Timer(grace, self._stop, args=(entry,))
        timer.daemon = True
        timer.start()
        return True

    def _stop(self, entry: tuple[TaskRun, Emit, distributed.Future]) -> None:
        task, done, future = entry
        with self._lock:
            if self._tasks.get(future.key) is not entry or self._closed:
                return  # it ended within the grace
            del self._tasks[future.key]
        client = self._client
        assert client is not None
        worker = next((w for w, keys in client.processing().items() if future.key in keys), None)
        future.cancel()
        restarted = ""
        if worker is not None:
            try:
                client.restart_workers([worker], raise_for_error=True)
                restarted = f"; its worker {worker} was restarted to stop it"
            except Exception as exc:
                restarted = f"; its worker {worker} could not be restarted ({exc}), so it may run on"
                _log.warning("The thread of step %r may still run on Dask worker %s: %s",
                             task.step, worker, exc)
        done(Outcome(task.key, False, error_type="StepTimeout", host=worker,
                     error_message=f"step {task.step!r} overran its timeout on the Dask "
                                   f"cluster{restarted}"))

    def close(self) -> None:
        """Cancel what is still queued or running, and close a cluster started for the run."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()
            futures = [entry[2] for entry in self._tasks.values()]
            self._tasks.clear()
            self._queued.clear()
            client, cluster = self._client, self._cluster
        if client is None:
            return
        with contextlib.suppress(Exception):
            client.cancel(futures)
        if self._completed is not None:
            self._completed.clear()
        with contextlib.suppress(Exception):
            client.close(timeout=10)
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=10)
        for thread in self._threads:
            thread.join(5)
